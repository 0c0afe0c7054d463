// The webhooks as users meet them: through a real kube-apiserver (v1.37, built from Go modules),
// with kubectl's own output, kube-scheduler's retries, kube-controller-manager's DaemonSet,
// Deployment and ReplicaSet controllers, and the API server's audit log.
//
// kwok marks every pod Ready as soon as it is bound, so a Cilium agent pod is Ready the moment the
// DaemonSet controller and the scheduler have put it on a node. What keeps Cilium "not ready" on a
// migrated node here is the other half of readiness: the CiliumNode the agent registers at start-up.
// No agent runs, so the tests write each CiliumNode as the agent would, when they want Cilium ready.

import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MUTATING_NAME, VALIDATING_NAME } from '../../src/registration.js';
import { startControlPlane, waitFor, type ControlPlane } from '../harness/controlplane.js';
import { auditEvents } from '../harness/audit.js';
import { installCiliumCrds, startGuard, type Guard } from '../harness/guard.js';
import { applyDaemonSetFixture, podsOwnedBy, waitForDaemonSetOn } from '../harness/workloads.js';
import { daemonSet } from '../support/fixtures.js';

const LEGACY = 'kwok-legacy-1';
/** Starts as a legacy node; migrated (labelled cni=cilium) by the last DaemonSet test. */
const LEGACY_2 = 'kwok-legacy-2';
const CILIUM_1 = 'kwok-cilium-1';
const CILIUM_2 = 'kwok-cilium-2';
const CILIUM_3 = 'kwok-cilium-3';
const MIGRATED = [CILIUM_1, CILIUM_2, CILIUM_3];
const ALL_NODES = [LEGACY, LEGACY_2, ...MIGRATED];
/** The old CNIs' agents applied from the upstream fixtures (aws-node first, on its own). */
const LEGACY_AGENTS = [
  { fixture: 'aws-node', namespace: 'kube-system', name: 'aws-node' },
  { fixture: 'calico-node', namespace: 'kube-system', name: 'calico-node' },
  { fixture: 'kube-flannel-ds', namespace: 'kube-flannel', name: 'kube-flannel-ds' },
  { fixture: 'weave-net', namespace: 'kube-system', name: 'weave-net' },
  { fixture: 'kube-router', namespace: 'kube-system', name: 'kube-router' },
];

let cp: ControlPlane;
let guard: Guard;

const plane = () => cp;

async function apply(obj: unknown, allowFail = false) {
  return plane().kubectl(['apply', '-f', '-'], { input: typeof obj === 'string' ? obj : stringify(obj), allowFail });
}

async function getJson(args: string[]): Promise<any> {
  return JSON.parse((await plane().kubectl(['get', ...args, '-o', 'json'])).stdout);
}

/**
 * A bare pod, as a person creates one (`kubectl run`, a Pod manifest): the tests of pods created
 * with spec.nodeName are about exactly these. Workload pods come from a Deployment below.
 */
function webPod(name: string, spec: Record<string, unknown> = {}, namespace = 'default') {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: 'web' } },
    spec: { containers: [{ name: 'nginx', image: 'nginx:1.27' }], ...spec },
  };
}

const ciliumNode = (node: string) => ({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNode',
  metadata: { name: node },
  spec: { ipam: { podCIDRs: ['10.245.0.0/24'] } },
});

/** What the Cilium agent writes first on its node; with its (kwok-Ready) pod there, Cilium is ready. */
async function registerCiliumNode(node: string) {
  await apply(ciliumNode(node));
}

/** What a re-apply must leave alone: the spec, its generation, the DaemonSet's revisions and its pods. */
async function rolloutState(namespace: string, name: string, selector: string) {
  const ds = await getJson(['daemonset', '-n', namespace, name]);
  const revisions = (await getJson(['controllerrevisions', '-n', namespace, '-l', selector])).items.map((r: any) => r.metadata.name).sort();
  const pods = (await podsOwnedBy(plane(), namespace, 'DaemonSet', name)).map((p) => p.uid).sort();
  return { generation: ds.metadata.generation, spec: ds.spec, revisions, pods };
}

const fixtureText = (name: string) => readFileSync(new URL(`../fixtures/daemonsets/${name}.yaml`, import.meta.url), 'utf8');

const auditLog = async (): Promise<any[]> => auditEvents<any>(plane());

const metricsText = (): Promise<string> => guard.metrics();

function placementCount(text: string): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith('cmg_admission_requests_total{') && line.includes('webhook="pod-placement"'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

beforeAll(async () => {
  cp = await startControlPlane({
    nodes: [{ name: LEGACY }, { name: LEGACY_2 }, ...MIGRATED.map((name) => ({ name, labels: { cni: 'cilium' } }))],
    log: (line) => process.stderr.write(`[controlplane] ${line}\n`),
  });
  await installCiliumCrds(cp);
  guard = await startGuard(cp);
  await guard.register();
});

afterAll(async () => {
  await guard?.stop();
  await cp?.stop();
});

describe('DaemonSets through kubectl apply', () => {
  it('stores aws-node with its own affinity plus cni NotIn [cilium], and kubectl shows the warning', async () => {
    const res = await applyDaemonSetFixture(plane(), 'aws-node');
    expect(res.stdout).toContain('daemonset.apps/aws-node created');
    expect(res.stderr).toContain('Warning: cilium-migration-guard added nodeAffinity cni NotIn [cilium] to kube-system/aws-node (role legacy, rule aws-node)');
    const stored = await getJson(['daemonset', '-n', 'kube-system', 'aws-node']);
    const expressions = stored.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions;
    const original =
      daemonSet('aws-node').spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions;
    expect(expressions).toEqual([...original, { key: 'cni', operator: 'NotIn', values: ['cilium'] }]);
  });

  it('re-applying the same manifest changes nothing: same spec, no new revision, no pod restarted', async () => {
    // aws-node lists its own matchExpressions, an atomic list: client-side apply sends the list
    // as written and the webhook adds the expression again on UPDATE, so the stored spec is the
    // same. (kubectl prints "configured"; kube-apiserver may still record the apply in managedFields.)
    await waitForDaemonSetOn(plane(), 'kube-system', 'aws-node', [LEGACY, LEGACY_2]);
    const before = await rolloutState('kube-system', 'aws-node', 'k8s-app=aws-node');
    expect(before.revisions).toHaveLength(1);
    await apply(fixtureText('aws-node'));
    await new Promise((r) => setTimeout(r, 2_000)); // time for the DaemonSet controller to roll, were there anything to roll
    expect(await rolloutState('kube-system', 'aws-node', 'k8s-app=aws-node')).toEqual(before);
  });

  it('leaves an unrelated DaemonSet exactly as written', async () => {
    const res = await applyDaemonSetFixture(plane(), 'node-exporter');
    expect(res.stderr).not.toContain('cilium-migration-guard');
    const stored = await getJson(['daemonset', '-n', 'monitoring', 'node-exporter']);
    expect(stored.spec.template.spec.affinity).toBeUndefined();
  });

  it("the DaemonSet controller runs the old CNIs' agents on legacy nodes only, node-exporter everywhere", async () => {
    for (const agent of LEGACY_AGENTS.slice(1)) {
      const res = await applyDaemonSetFixture(plane(), agent.fixture);
      expect(res.stderr).toContain(`added nodeAffinity cni NotIn [cilium] to ${agent.namespace}/${agent.name}`);
    }
    for (const agent of LEGACY_AGENTS) {
      const pods = await waitForDaemonSetOn(plane(), agent.namespace, agent.name, [LEGACY, LEGACY_2]);
      expect(
        pods.map((p) => [p.node, p.phase]),
        agent.name,
      ).toEqual([
        [LEGACY, 'Running'],
        [LEGACY_2, 'Running'],
      ]);
    }
    const exporters = await waitForDaemonSetOn(plane(), 'monitoring', 'node-exporter', ALL_NODES);
    expect(exporters.map((p) => p.node)).toEqual([...ALL_NODES].sort());
  });
});

describe('pods placed on a cni=cilium node before Cilium is ready', () => {
  it('rejects a pod created with spec.nodeName, with the project message in kubectl', async () => {
    const res = await plane().kubectl(['create', '-f', '-'], { input: stringify(webPod('direct-1', { nodeName: CILIUM_1 })), allowFail: true });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(
      `admission webhook "${VALIDATING_NAME}" denied the request: pod default/direct-1 cannot be placed on node ${CILIUM_1} yet: the node is labelled cni=cilium but Cilium is not ready there (no CiliumNode "${CILIUM_1}" exists yet; no Cilium agent pod runs on the node)`,
    );
    expect(res.stderr).toContain('duplicate pod IPs');
    expect(res.stderr).toContain('Error from server (Forbidden)');
  });

  it("Cilium's agent DaemonSet is stored with cni In [cilium] and runs on migrated nodes only, bound there before Cilium is ready", async () => {
    await applyDaemonSetFixture(plane(), 'cilium');
    const stored = await getJson(['daemonset', '-n', 'kube-system', 'cilium']);
    expect(stored.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms).toEqual([
      { matchExpressions: [{ key: 'cni', operator: 'In', values: ['cilium'] }] },
    ]);
    // The chart's own podAntiAffinity is kept.
    expect(stored.spec.template.spec.affinity.podAntiAffinity).toEqual(daemonSet('cilium').spec.template.spec.affinity?.podAntiAffinity);

    const agents = await waitForDaemonSetOn(plane(), 'kube-system', 'cilium', MIGRATED);
    expect(agents.map((p) => p.node)).toEqual(MIGRATED);
    // Re-applying changes nothing here either.
    const before = await rolloutState('kube-system', 'cilium', 'k8s-app=cilium');
    await apply(fixtureText('cilium'));
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await rolloutState('kube-system', 'cilium', 'k8s-app=cilium')).toEqual(before);

    // kube-scheduler bound each of them to a node where Cilium is not ready (no CiliumNode yet):
    // the webhook let them through (host-network is the first exemption that applies to Cilium's
    // agent; it is also one of Cilium's own pods).
    const audits = await auditLog();
    for (const agent of agents) {
      const bind = audits.find((e) => e.objectRef?.subresource === 'binding' && e.objectRef?.name === agent.name && e.responseStatus?.code === 201);
      expect(bind?.annotations, agent.name).toMatchObject({
        [`${VALIDATING_NAME}/decision`]: 'allowed',
        [`${VALIDATING_NAME}/reason`]: 'host-network',
        [`${VALIDATING_NAME}/node`]: agent.node,
      });
    }
  });

  it('admits the same pod once the agent on the node has registered its CiliumNode', async () => {
    const denied = await plane().kubectl(['create', '-f', '-'], { input: stringify(webPod('direct-1', { nodeName: CILIUM_1 })), allowFail: true });
    expect(denied.stderr).toContain(`(no CiliumNode "${CILIUM_1}" exists yet)`);
    await registerCiliumNode(CILIUM_1);
    await waitFor(
      'the pod to be admitted',
      async () => {
        const r = await plane().kubectl(['create', '-f', '-'], { input: stringify(webPod('direct-1', { nodeName: CILIUM_1 })), allowFail: true });
        return r.code === 0 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    const pod = await getJson(['pod', 'direct-1']);
    expect(pod.spec.nodeName).toBe(CILIUM_1);
  });

  it('a Deployment whose pods are scheduled onto a migrated node waits there (FailedScheduling) and runs once Cilium is ready', async () => {
    await apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: { nodeSelector: { 'kubernetes.io/hostname': CILIUM_2 }, containers: [{ name: 'nginx', image: 'nginx:1.27' }] },
        },
      },
    });
    // The ReplicaSet controller creates the pods; kube-scheduler picks CILIUM_2 and its bind is refused.
    const pods = await waitFor(
      "the Deployment's two pods",
      async () => {
        const [rs] = (await getJson(['replicasets', '-n', 'default', '-l', 'app=web'])).items;
        if (!rs) return undefined;
        const owned = await podsOwnedBy(plane(), 'default', 'ReplicaSet', rs.metadata.name);
        return owned.length === 2 ? owned : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    for (const pod of pods) {
      const event = await waitFor(
        `a FailedScheduling event for ${pod.name} with the webhook message`,
        async () => {
          const events = await getJson(['events', '-n', 'default', '--field-selector', `involvedObject.name=${pod.name},reason=FailedScheduling`]);
          return events.items.find((e: any) => String(e.message).includes(`admission webhook "${VALIDATING_NAME}" denied the request`));
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      expect(event.message).toContain(`pod default/${pod.name} cannot be placed on node ${CILIUM_2} yet`);
      expect(event.message).toContain('The scheduler will retry');
    }
    const waiting = await getJson(['deployment', 'web']);
    expect(waiting.status.availableReplicas ?? 0).toBe(0);
    for (const pod of pods) expect((await getJson(['pod', pod.name])).spec.nodeName).toBeUndefined();

    await registerCiliumNode(CILIUM_2);
    const ready = await waitFor(
      'the Deployment to be available on the node once Cilium is ready there',
      async () => {
        const d = await getJson(['deployment', 'web']);
        return d.status.availableReplicas === 2 ? d : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 1_000 },
    );
    expect(ready.status.readyReplicas).toBe(2);
    for (const pod of pods) {
      const now = await getJson(['pod', pod.name]);
      expect([now.metadata.uid, now.spec.nodeName, now.status.phase]).toEqual([pod.uid, CILIUM_2, 'Running']);
    }
  });

  it('never blocks host-network pods or namespaces labelled exempt', async () => {
    const host = await apply(webPod('host-1', { nodeName: CILIUM_3, hostNetwork: true }), true);
    expect(host.code).toBe(0);
    // Created with its label in one step: the API server's namespace cache never sees it unlabelled.
    await plane().createNamespace('batch', { 'cilium-migration-guard.io/exempt': 'true' });
    const exempt = await apply(webPod('batch-1', { nodeName: CILIUM_3 }, 'batch'), true);
    expect(exempt.code).toBe(0);
    const labelled = await apply(
      {
        ...webPod('labelled-1', { nodeName: CILIUM_3 }),
        metadata: { name: 'labelled-1', namespace: 'default', labels: { 'cilium-migration-guard.io/exempt': 'true' } },
      },
      true,
    );
    expect(labelled.code).toBe(0);
    const plain = await apply(webPod('plain-1', { nodeName: CILIUM_3 }), true);
    expect(plain.code).not.toBe(0);
  });

  it('a pod left to the scheduler costs the webhook nothing until it is bound (matchConditions)', async () => {
    const before = placementCount(await metricsText());
    await apply(webPod('pending-1', { nodeSelector: { 'no-such-label': 'x' } }));
    await apply(webPod('host-2', { nodeName: LEGACY, hostNetwork: true }));
    // A request that does reach the webhook, as a marker that the two above were counted by now if ever.
    await apply(webPod('marker-1', { nodeName: LEGACY }));
    await waitFor('the marker to be counted', async () => (placementCount(await metricsText()) > before ? true : undefined), { timeoutMs: 10_000 });
    expect(placementCount(await metricsText())).toBe(before + 1);
  });
});

describe('migrating a node', () => {
  it("labelling it cni=cilium: the DaemonSet controller removes the old CNI's agents from it and starts Cilium's there", async () => {
    const exporterBefore = (await podsOwnedBy(plane(), 'monitoring', 'DaemonSet', 'node-exporter')).find((p) => p.node === LEGACY_2);
    expect(exporterBefore).toBeDefined();
    await plane().kubectl(['label', 'node', LEGACY_2, 'cni=cilium']);
    for (const agent of LEGACY_AGENTS) {
      const pods = await waitForDaemonSetOn(plane(), agent.namespace, agent.name, [LEGACY]);
      expect(
        pods.map((p) => p.node),
        agent.name,
      ).toEqual([LEGACY]);
    }
    const agents = await waitForDaemonSetOn(plane(), 'kube-system', 'cilium', [...MIGRATED, LEGACY_2]);
    expect(agents.map((p) => p.node)).toEqual([...MIGRATED, LEGACY_2].sort());
    // The node agent that is neither keeps running: same pod as before the label.
    const exporterAfter = (await podsOwnedBy(plane(), 'monitoring', 'DaemonSet', 'node-exporter')).find((p) => p.node === LEGACY_2);
    expect(exporterAfter?.uid).toBe(exporterBefore?.uid);
    expect(exporterAfter?.terminating).toBe(false);
  });
});

describe('audit log', () => {
  it("records the webhook's audit annotations, prefixed with the webhook name, on pod and DaemonSet requests", async () => {
    const events = await waitFor(
      'audit events',
      async () => {
        const all = await auditLog();
        return all.some((e) => e.annotations?.[`${VALIDATING_NAME}/decision`] === 'denied') ? all : undefined;
      },
      { timeoutMs: 15_000 },
    );
    const denied = events.find((e) => e.objectRef?.name === 'direct-1' && e.annotations?.[`${VALIDATING_NAME}/decision`] === 'denied');
    expect(denied.annotations).toMatchObject({
      [`${VALIDATING_NAME}/node`]: CILIUM_1,
      [`${VALIDATING_NAME}/reason`]: 'no-cilium-node,no-agent-pod',
    });
    expect(denied.responseStatus.code).toBe(403);
    const binding = events.find((e) => e.objectRef?.subresource === 'binding' && e.annotations?.[`${VALIDATING_NAME}/decision`] === 'denied');
    expect(binding.objectRef.name).toMatch(/^web-[a-z0-9]+-[a-z0-9]+$/); // a pod of the Deployment, bound by kube-scheduler
    expect(binding.annotations[`${VALIDATING_NAME}/node`]).toBe(CILIUM_2);
    const ds = events.find((e) => e.objectRef?.resource === 'daemonsets' && e.objectRef?.name === 'aws-node' && e.verb === 'create');
    expect(ds.annotations).toMatchObject({
      [`${MUTATING_NAME}/role`]: 'legacy',
      [`${MUTATING_NAME}/rule`]: 'aws-node',
      [`${MUTATING_NAME}/action`]: 'injected',
    });
  });
});

describe('with the webhook stopped (documented failure policies)', () => {
  it('pods: failurePolicy Ignore lets placements through; DaemonSets: failurePolicy Fail refuses writes', async () => {
    await guard.stop();
    const pod = await apply(webPod('while-down-1', { nodeName: CILIUM_3 }), true);
    expect(pod.code).toBe(0);
    const ds = await apply(
      stringify({ ...daemonSet('kube-flannel-ds'), metadata: { ...daemonSet('kube-flannel-ds').metadata, namespace: 'kube-system' } }),
      true,
    );
    expect(ds.code).not.toBe(0);
    expect(ds.stderr).toContain(`failed calling webhook "${MUTATING_NAME}"`);
    // Repairing Cilium never waits for this webhook: its DaemonSets have an entry with Ignore.
    const envoy = await applyDaemonSetFixture(plane(), 'cilium-envoy', { allowFail: true });
    expect(envoy.code).toBe(0);
    expect(envoy.stdout).toContain('daemonset.apps/cilium-envoy created');
  });
});
