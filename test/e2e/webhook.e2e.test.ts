// The webhooks as users meet them: through a real kube-apiserver (v1.37, built from Go modules),
// with kubectl's own output, kube-scheduler's retries and the API server's audit log.

import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { readFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MUTATING_NAME, VALIDATING_NAME } from '../../src/registration.js';
import { startControlPlane, waitFor, type ControlPlane } from '../harness/controlplane.js';
import { installCiliumCrds, startGuard, type Guard } from '../harness/guard.js';
import { daemonSet } from '../support/fixtures.js';

const LEGACY = 'kwok-legacy-1';
const CILIUM_1 = 'kwok-cilium-1';
const CILIUM_2 = 'kwok-cilium-2';
const CILIUM_3 = 'kwok-cilium-3';

let cp: ControlPlane;
let guard: Guard;

const plane = () => cp;

async function apply(obj: unknown, allowFail = false) {
  return plane().kubectl(['apply', '-f', '-'], { input: typeof obj === 'string' ? obj : stringify(obj), allowFail });
}

async function getJson(args: string[]): Promise<any> {
  return JSON.parse((await plane().kubectl(['get', ...args, '-o', 'json'])).stdout);
}

function webPod(name: string, spec: Record<string, unknown> = {}, namespace = 'default') {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: 'web' } },
    spec: { containers: [{ name: 'nginx', image: 'nginx:1.27' }], ...spec },
  };
}

const onNode = (node: string) => ({
  affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] } } },
});

function agentPod(node: string, scheduled = true) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `cilium-${node}`, namespace: 'kube-system', labels: { 'k8s-app': 'cilium', 'app.kubernetes.io/part-of': 'cilium' } },
    spec: {
      hostNetwork: true,
      tolerations: [{ operator: 'Exists' }],
      containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium:v1.18.4' }],
      // A DaemonSet's pods are bound by kube-scheduler, pinned with matchFields (what the DaemonSet controller writes).
      ...(scheduled ? onNode(node) : { nodeName: node }),
    },
  };
}

const ciliumNode = (node: string) => ({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: node }, spec: { ipam: { podCIDRs: ['10.245.0.0/24'] } } });

async function makeCiliumReady(node: string) {
  await apply(ciliumNode(node));
  await apply(agentPod(node));
  await waitFor(
    `the Cilium agent pod on ${node} to be Ready`,
    async () => {
      const pod = await getJson(['pod', '-n', 'kube-system', `cilium-${node}`]);
      return pod.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
    },
    { timeoutMs: 30_000 },
  );
}

async function auditEvents(): Promise<any[]> {
  const text = await readFile(plane().auditLogPath, 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

function metricsText(): Promise<string> {
  return new Promise((res, rej) => {
    const req = httpsRequest(`${guard.url}/metrics`, { ca: guard.caPem, timeout: 3_000 }, (r) => {
      let body = '';
      r.setEncoding('utf8').on('data', (d) => (body += d));
      r.on('end', () => res(body));
    });
    req.on('error', rej);
    req.end();
  });
}

function placementCount(text: string): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith('cmg_admission_requests_total{') && line.includes('webhook="pod-placement"'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

beforeAll(async () => {
  cp = await startControlPlane({
    nodes: [{ name: LEGACY }, { name: CILIUM_1, labels: { cni: 'cilium' } }, { name: CILIUM_2, labels: { cni: 'cilium' } }, { name: CILIUM_3, labels: { cni: 'cilium' } }],
    log: (line) => process.stderr.write(`[controlplane] ${line}\n`),
  });
  await installCiliumCrds(cp);
  await cp.kubectl(['create', 'namespace', 'monitoring']);
  guard = await startGuard(cp);
  await guard.register();
});

afterAll(async () => {
  await guard?.stop();
  await cp?.stop();
});

describe('DaemonSets through kubectl apply', () => {
  it('stores aws-node with its own affinity plus cni NotIn [cilium], and kubectl shows the warning', async () => {
    const res = await apply(readFileSync(new URL('../fixtures/daemonsets/aws-node.yaml', import.meta.url), 'utf8'));
    expect(res.stdout).toContain('daemonset.apps/aws-node created');
    expect(res.stderr).toContain('Warning: cilium-migration-guard added nodeAffinity cni NotIn [cilium] to kube-system/aws-node (role legacy, rule aws-node)');
    const stored = await getJson(['daemonset', '-n', 'kube-system', 'aws-node']);
    const expressions = stored.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions;
    const original = daemonSet('aws-node').spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions;
    expect(expressions).toEqual([...original, { key: 'cni', operator: 'NotIn', values: ['cilium'] }]);
  });

  it('re-applying the same manifest writes nothing', async () => {
    // aws-node lists its own matchExpressions, an atomic list: client-side apply sends the list
    // as written, the webhook adds the expression again on UPDATE, and the API server sees a
    // no-op. kubectl prints "configured" but the object is not written (same resourceVersion).
    const before = await getJson(['daemonset', '-n', 'kube-system', 'aws-node']);
    await apply(readFileSync(new URL('../fixtures/daemonsets/aws-node.yaml', import.meta.url), 'utf8'));
    const after = await getJson(['daemonset', '-n', 'kube-system', 'aws-node']);
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(after.metadata.generation).toBe(before.metadata.generation);
    expect(after.spec.template.spec.affinity).toEqual(before.spec.template.spec.affinity);
  });

  it('stores the Cilium agent with cni In [cilium]', async () => {
    await apply(readFileSync(new URL('../fixtures/daemonsets/cilium.yaml', import.meta.url), 'utf8'));
    const stored = await getJson(['daemonset', '-n', 'kube-system', 'cilium']);
    expect(stored.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms).toEqual([
      { matchExpressions: [{ key: 'cni', operator: 'In', values: ['cilium'] }] },
    ]);
    // The chart's own podAntiAffinity is kept.
    expect(stored.spec.template.spec.affinity.podAntiAffinity).toEqual(daemonSet('cilium').spec.template.spec.affinity?.podAntiAffinity);
    // Re-applying writes nothing here either.
    await apply(readFileSync(new URL('../fixtures/daemonsets/cilium.yaml', import.meta.url), 'utf8'));
    const again = await getJson(['daemonset', '-n', 'kube-system', 'cilium']);
    expect(again.metadata.resourceVersion).toBe(stored.metadata.resourceVersion);
  });

  it('leaves an unrelated DaemonSet exactly as written', async () => {
    const res = await apply(readFileSync(new URL('../fixtures/daemonsets/node-exporter.yaml', import.meta.url), 'utf8'));
    expect(res.stderr).not.toContain('cilium-migration-guard');
    const stored = await getJson(['daemonset', '-n', 'monitoring', 'node-exporter']);
    expect(stored.spec.template.spec.affinity).toBeUndefined();
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

  it('admits the same pod once a CiliumNode exists and a Ready agent runs on the node', async () => {
    await makeCiliumReady(CILIUM_1);
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

  it("kube-scheduler's bind is refused (FailedScheduling carries the message) and succeeds once Cilium is ready", async () => {
    await apply(webPod('sched-1', onNode(CILIUM_2)));
    const event = await waitFor(
      'a FailedScheduling event with the webhook message',
      async () => {
        const events = await getJson(['events', '-n', 'default', '--field-selector', 'involvedObject.name=sched-1,reason=FailedScheduling']);
        return events.items.find((e: any) => String(e.message).includes(`admission webhook "${VALIDATING_NAME}" denied the request`));
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(event.message).toContain(`pod default/sched-1 cannot be placed on node ${CILIUM_2} yet`);
    expect(event.message).toContain('The scheduler will retry');
    expect((await getJson(['pod', 'sched-1'])).spec.nodeName).toBeUndefined();

    // Cilium's own agent is bound by the scheduler to the same unready node: never blocked.
    await apply(agentPod(CILIUM_2));
    const agentNode = await waitFor(
      'the Cilium agent pod to be bound',
      async () => (await getJson(['pod', '-n', 'kube-system', `cilium-${CILIUM_2}`])).spec.nodeName ?? undefined,
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(agentNode).toBe(CILIUM_2);

    await apply(ciliumNode(CILIUM_2));
    const bound = await waitFor(
      'the scheduler to bind sched-1 after Cilium became ready',
      async () => (await getJson(['pod', 'sched-1'])).spec.nodeName ?? undefined,
      { timeoutMs: 90_000, intervalMs: 1_000 },
    );
    expect(bound).toBe(CILIUM_2);
  });

  it('never blocks host-network pods or namespaces labelled exempt', async () => {
    const host = await apply(webPod('host-1', { nodeName: CILIUM_3, hostNetwork: true }), true);
    expect(host.code).toBe(0);
    // Created with its label in one step: the API server's namespace cache never sees it unlabelled.
    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'batch', labels: { 'cilium-migration-guard.io/exempt': 'true' } } });
    const exempt = await apply(webPod('batch-1', { nodeName: CILIUM_3 }, 'batch'), true);
    expect(exempt.code).toBe(0);
    const labelled = await apply({ ...webPod('labelled-1', { nodeName: CILIUM_3 }), metadata: { name: 'labelled-1', namespace: 'default', labels: { 'cilium-migration-guard.io/exempt': 'true' } } }, true);
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

describe('audit log', () => {
  it("records the webhook's audit annotations, prefixed with the webhook name, on pod and DaemonSet requests", async () => {
    const events = await waitFor(
      'audit events',
      async () => {
        const all = await auditEvents();
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
    expect(binding.objectRef.name).toBe('sched-1');
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
    const envoy = await apply(readFileSync(new URL('../fixtures/daemonsets/cilium-envoy.yaml', import.meta.url), 'utf8'), true);
    expect(envoy.code).toBe(0);
    expect(envoy.stdout).toContain('daemonset.apps/cilium-envoy created');
  });
});
