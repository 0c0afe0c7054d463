import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BadReview } from '../../src/admission/review.js';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import { trimPod } from '../../src/cluster/trim.js';
import type { PodInfo } from '../../src/cluster/view.js';
import { parseConfig } from '../../src/config.js';
import { decidePlacement, placementSubject, podPlacementHandler, type PlacementSubject } from '../../src/webhooks/pod-placement.js';
import type { ClusterReader } from '../../src/cluster/reader.js';
import { pod as podFixture } from '../support/fixtures.js';
import { bindingRequest, podRequest } from '../support/reviews.js';

const config = parseConfig({});
const MIGRATED = 'node-cilium';
const LEGACY = 'node-legacy';
const T0 = '2026-11-24T10:00:00Z';

function agentPod(node: string, ready: boolean, extra: Partial<PodInfo['metadata']> = {}): PodInfo {
  return {
    metadata: { name: `cilium-${node}`, namespace: 'kube-system', labels: { 'k8s-app': 'cilium' }, ...extra },
    spec: { nodeName: node, hostNetwork: true },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: T0 }] },
  };
}

interface State {
  ciliumNode?: boolean;
  agent?: 'none' | 'ready' | 'unready' | 'terminating';
}

function viewWith(state: State = {}): MemoryClusterView {
  const view = new MemoryClusterView(config);
  view.upsertNode({ metadata: { name: MIGRATED, labels: { cni: 'cilium', 'kubernetes.io/os': 'linux' } } });
  view.upsertNode({ metadata: { name: LEGACY, labels: { 'kubernetes.io/os': 'linux' } } });
  if (state.ciliumNode) view.upsertCiliumNode({ metadata: { name: MIGRATED } });
  const agent = state.agent ?? 'none';
  if (agent === 'ready') view.upsertPod(agentPod(MIGRATED, true));
  if (agent === 'unready') view.upsertPod(agentPod(MIGRATED, false));
  if (agent === 'terminating') view.upsertPod(agentPod(MIGRATED, true, { deletionTimestamp: T0 }));
  return view;
}

function webPod(overrides: any = {}): any {
  const pod = podFixture('nginx-pod');
  delete pod.spec.nodeName;
  delete pod.status;
  return { ...pod, ...overrides, metadata: { ...pod.metadata, ...(overrides.metadata ?? {}) }, spec: { ...pod.spec, ...(overrides.spec ?? {}) } };
}

function bindingSubject(pod: any, node = MIGRATED): PlacementSubject {
  return { via: 'binding', namespace: pod.metadata.namespace, name: pod.metadata.name, node };
}

function decide(pod: any, view: MemoryClusterView, node = MIGRATED) {
  return decidePlacement(bindingSubject(pod, node), { pod: trimPod(pod), node: view.node(node)! }, view, config);
}

describe('placement decision', () => {
  it('allows anything on a node without the migration label, without looking at Cilium', () => {
    expect(decide(webPod(), viewWith(), LEGACY)).toMatchObject({ allowed: true, reason: 'node-not-migrated', node: LEGACY });
  });

  it.each([
    [{ ciliumNode: false, agent: 'none' }, ['no-cilium-node', 'no-agent-pod'], [`no CiliumNode "${MIGRATED}"`, 'no Cilium agent pod runs on the node']],
    [{ ciliumNode: true, agent: 'none' }, ['no-agent-pod'], ['no Cilium agent pod runs on the node']],
    [{ ciliumNode: true, agent: 'unready' }, ['agent-not-ready'], [`Cilium agent pod kube-system/cilium-${MIGRATED} is not Ready`]],
    [{ ciliumNode: false, agent: 'ready' }, ['no-cilium-node'], [`no CiliumNode "${MIGRATED}"`]],
    [{ ciliumNode: true, agent: 'terminating' }, ['agent-terminating'], ['is terminating']],
  ] as const)('denies when Cilium is not ready: %j → %j', (state, gaps, phrases) => {
    const pod = webPod();
    const decision = decide(pod, viewWith(state));
    expect(decision.allowed).toBe(false);
    expect(decision.code).toBe(403);
    expect(decision.audit).toEqual({ decision: 'denied', node: MIGRATED, reason: gaps.join(',') });
    const message = decision.message!;
    expect(message).toContain(`pod ${pod.metadata.namespace}/${pod.metadata.name} cannot be placed on node ${MIGRATED}`);
    expect(message).toContain('labelled cni=cilium');
    for (const phrase of phrases) expect(message).toContain(phrase);
    expect(message).toContain('duplicate pod IPs');
    expect(message).toContain('The scheduler will retry');
    expect(message).toContain('cilium-migration-guard.io/exempt=true');
  });

  it('allows once a CiliumNode exists and a Ready agent runs there', () => {
    expect(decide(webPod(), viewWith({ ciliumNode: true, agent: 'ready' }))).toMatchObject({
      allowed: true,
      reason: 'cilium-ready',
      audit: { decision: 'allowed', node: MIGRATED, reason: 'cilium-ready' },
    });
  });

  it('an agent pod on another node does not make this node ready', () => {
    const view = viewWith({ ciliumNode: true });
    view.upsertPod(agentPod(LEGACY, true));
    expect(decide(webPod(), view).allowed).toBe(false);
  });

  it.each([
    ['host-network', () => webPod({ spec: { hostNetwork: true } })],
    ['mirror-pod', () => podFixture('kube-proxy-mirror-pod')],
    ['cilium-pod', () => podFixture('cilium-agent-pod')],
    ['own-pod', () => webPod({ metadata: { namespace: 'cilium-migration-guard', labels: { 'app.kubernetes.io/name': 'cilium-migration-guard' } } })],
    ['exempt-label', () => webPod({ metadata: { labels: { 'cilium-migration-guard.io/exempt': 'true' } } })],
  ])('never blocks: %s', (reason, make) => {
    const pod = make();
    pod.spec.hostNetwork = reason === 'host-network'; // isolate each exemption: host-network ranks first
    expect(decide(pod, viewWith())).toMatchObject({ allowed: true, reason });
  });

  it('exempt namespaces come from config', () => {
    const cfg = parseConfig({ exemptions: { namespaces: ['batch'] } });
    const pod = webPod({ metadata: { namespace: 'batch' } });
    const view = viewWith();
    expect(decidePlacement(bindingSubject(pod), { pod: trimPod(pod), node: view.node(MIGRATED)! }, view, cfg).reason).toBe('exempt-namespace');
  });

  it("Cilium's labels only exempt pods in Cilium's namespace", () => {
    const impostor = webPod({ metadata: { namespace: 'default', labels: { 'k8s-app': 'cilium' } } });
    expect(decide(impostor, viewWith()).allowed).toBe(false);
  });

  it('a pod created with spec.nodeName is told to retry itself, not to wait for the scheduler', () => {
    const pod = webPod({ spec: { nodeName: MIGRATED } });
    const result = placementSubject(podRequest(pod));
    if (!('subject' in result)) throw new Error('expected a subject');
    const view = viewWith();
    const decision = decidePlacement(result.subject, { pod: trimPod(pod), node: view.node(MIGRATED)! }, view, config);
    expect(decision.message).toContain('Create it again once Cilium is ready there');
    expect(decision.message).not.toContain('scheduler will retry');
  });

  it('lets a request through with a warning when the node or the pod cannot be found', () => {
    const view = viewWith();
    const subject = bindingSubject(webPod());
    expect(decidePlacement(subject, {}, view, config)).toMatchObject({ allowed: true, reason: 'node-unknown' });
    const podless = decidePlacement(subject, { node: view.node(MIGRATED)! }, view, config);
    expect(podless).toMatchObject({ allowed: true, reason: 'pod-unknown' });
    expect(podless.warnings?.[0]).toContain('could not find pod');
  });

  it('property: host-network and Cilium pods are never denied, whatever the state', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.constantFrom('none', 'ready', 'unready', 'terminating'),
        fc.constantFrom('host', 'cilium', 'mirror'),
        (ciliumNode, agent, which) => {
          const pod =
            which === 'host'
              ? webPod({ spec: { hostNetwork: true } })
              : which === 'cilium'
                ? podFixture('cilium-agent-pod')
                : podFixture('kube-proxy-mirror-pod');
          expect(decide(pod, viewWith({ ciliumNode, agent: agent as State['agent'] })).allowed).toBe(true);
        },
      ),
    );
  });

  it('property: an ordinary pod is denied exactly when the node is migrated and Cilium is not ready', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.constantFrom('none', 'ready', 'unready', 'terminating'), fc.boolean(), (ciliumNode, agent, migrated) => {
        const decision = decide(webPod(), viewWith({ ciliumNode, agent: agent as State['agent'] }), migrated ? MIGRATED : LEGACY);
        const ready = ciliumNode && agent === 'ready';
        expect(decision.allowed).toBe(!migrated || ready);
      }),
    );
  });
});

describe('placement subject', () => {
  it('a pod created without spec.nodeName is not placed yet', () => {
    expect(placementSubject(podRequest(webPod()))).toEqual({ skip: 'not-placed' });
  });
  it('a binding names the pod and its target node', () => {
    expect(placementSubject(bindingRequest('default', 'web-1', MIGRATED))).toEqual({
      subject: { via: 'binding', namespace: 'default', name: 'web-1', node: MIGRATED },
    });
  });
  it('a pod without metadata is a 4xx, not a crash', () => {
    expect(() => placementSubject(podRequest({ spec: { nodeName: MIGRATED } }))).toThrow(/request.object.metadata must be an object/);
  });
  it("an empty namespace in the object does not override the request's", () => {
    const request = bindingRequest('', 'web-1', MIGRATED);
    const result = placementSubject({ ...request, namespace: 'shop' });
    expect(result).toMatchObject({ subject: { namespace: 'shop' } });
  });
  it('refuses what it does not serve', () => {
    expect(() => placementSubject({ ...podRequest(webPod()), operation: 'UPDATE' })).toThrow(BadReview);
    const other = {
      ...podRequest(webPod()),
      resource: { group: '', version: 'v1', resource: 'services' },
      kind: { group: '', version: 'v1', kind: 'Service' },
    };
    expect(() => placementSubject(other)).toThrow(/not services/);
  });
});

describe('placement handler (edge)', () => {
  const pending = webPod({ metadata: { name: 'web-pending' } });

  it('finds a bound pod in the unscheduled-pods cache, without an API read', async () => {
    const view = viewWith();
    view.upsertPod(trimPod(pending));
    const reads: string[] = [];
    const reader: ClusterReader = {
      pod: async (ns, name) => (reads.push(`${ns}/${name}`), undefined),
      node: async () => undefined,
    };
    const decision = await podPlacementHandler(config, view, reader).handle(bindingRequest(pending.metadata.namespace, 'web-pending', MIGRATED));
    expect(decision.allowed).toBe(false);
    expect(reads).toEqual([]);
  });

  it('falls back to one API read on a cache miss', async () => {
    const reads: string[] = [];
    const reader: ClusterReader = {
      pod: async (ns, name) => (reads.push(`${ns}/${name}`), trimPod(pending)),
      node: async () => undefined,
    };
    const decision = await podPlacementHandler(config, viewWith(), reader).handle(bindingRequest(pending.metadata.namespace, 'web-pending', MIGRATED));
    expect(reads).toEqual([`${pending.metadata.namespace}/web-pending`]);
    expect(decision.reason).toBe('cilium-not-ready');
  });

  it('a failing API read lets the pod through with a warning instead of failing the bind', async () => {
    const reader: ClusterReader = {
      pod: async () => {
        throw new Error('connection refused');
      },
      node: async () => undefined,
    };
    const decision = await podPlacementHandler(config, viewWith(), reader).handle(bindingRequest('default', 'ghost', MIGRATED));
    expect(decision).toMatchObject({ allowed: true, reason: 'pod-unknown', audit: { lookup: 'connection refused' } });
    expect(decision.warnings?.[0]).toContain('(lookup failed: connection refused)');
  });

  it('does not read the pod at all for bindings to non-migrated nodes', async () => {
    const reads: string[] = [];
    const reader: ClusterReader = { pod: async (ns, n) => (reads.push(n), undefined), node: async () => undefined };
    const decision = await podPlacementHandler(config, viewWith(), reader).handle(bindingRequest('default', 'x', LEGACY));
    expect(decision.reason).toBe('node-not-migrated');
    expect(reads).toEqual([]);
  });
});
