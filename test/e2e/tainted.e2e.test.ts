// Born tainted, end to end: nodes register the way a kubelet does (POST /api/v1/nodes as
// system:node:<name>, group system:nodes, with the NodeRestriction admission plugin on), and the
// real kube-apiserver, kube-scheduler and kwok show what the node webhook changes: the scheduler
// keeps pods off a migrated node until Cilium's startup taint is gone (instead of binding them and
// being refused by the pod webhook), Cilium's agent still lands there, and registration never
// waits on the webhook. Also the stuck-taint guard: serve's warning, its gauge, and `report`.

import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MUTATING_NODES_NAME } from '../../src/registration.js';
import { apiCall, KWOK_NODE_ANNOTATION, startControlPlane, waitFor, type ControlPlane } from '../harness/controlplane.js';
import { findAudit } from '../harness/audit.js';
import { CLI, installCiliumCrds, startGuard, type Guard } from '../harness/guard.js';

const KEY = 'node.cilium.io/agent-not-ready';
const STARTUP_TAINT = { key: KEY, value: 'true', effect: 'NoExecute' };
const LEGACY = 'kwok-legacy-1';

let cp: ControlPlane;
let guard: Guard;
let configFile: string;

const plane = () => cp;

async function getJson(args: string[]): Promise<any> {
  return JSON.parse((await plane().kubectl(['get', ...args, '-o', 'json'])).stdout);
}

/** A raw API call as the kubelet of `node` makes it: the admin token impersonating system:node:<node> in group system:nodes. */
function asKubelet(node: string, method: string, path: string, body?: unknown, timeoutMs = 15_000): Promise<{ status: number; body: string }> {
  return apiCall(plane().server, plane().token, readFileSync(plane().caFile, 'utf8'), method, path, body, {
    timeoutMs,
    headers: { 'impersonate-user': `system:node:${node}`, 'impersonate-group': 'system:nodes' },
  });
}

/**
 * Registers a node as the kubelet does (pkg/kubelet/kubelet_node_status.go: initialNode, then
 * POST): its labels (--node-labels), its own --register-with-taints, and the kwok annotation so
 * kwok plays the kubelet from here on (heartbeats, pod status). Returns the API server's answer.
 */
async function registerNode(name: string, labels: Record<string, string>, taints?: unknown[]) {
  const started = Date.now();
  const r = await asKubelet(name, 'POST', '/api/v1/nodes', {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', type: 'kwok', ...labels },
      annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0', 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' },
    },
    spec: taints ? { taints } : {},
  });
  return { ...r, ms: Date.now() - started, node: r.status === 201 ? JSON.parse(r.body) : undefined };
}

async function waitNodeReady(name: string) {
  await waitFor(
    `node ${name} Ready (kwok)`,
    async () => ((await getJson(['node', name])).status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') ? true : undefined),
    { timeoutMs: 60_000 },
  );
}

async function waitPodReady(namespace: string, name: string) {
  return waitFor(
    `pod ${namespace}/${name} bound and Ready`,
    async () => {
      const pod = await getJson(['pod', '-n', namespace, name]);
      return pod.spec.nodeName && pod.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') ? pod : undefined;
    },
    { timeoutMs: 60_000 },
  );
}

function agentPod(node: string) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `cilium-${node}`, namespace: 'kube-system', labels: { 'k8s-app': 'cilium', 'app.kubernetes.io/part-of': 'cilium' } },
    spec: {
      hostNetwork: true,
      // What Cilium's chart gives the agent DaemonSet: it tolerates every taint, the startup taint included.
      tolerations: [{ operator: 'Exists' }],
      containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium:v1.18.4' }],
      // Pinned as the DaemonSet controller pins its pods (matchFields), bound by kube-scheduler.
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] },
        },
      },
    },
  };
}

const ciliumNode = (node: string) => ({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNode',
  metadata: { name: node },
  spec: { ipam: { podCIDRs: ['10.245.0.0/24'] } },
});

async function apply(obj: unknown) {
  return plane().kubectl(['apply', '-f', '-'], { input: stringify(obj) });
}

const metricsText = (): Promise<string> => guard.metrics();

function metric(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) && wanted.every((w) => line.includes(w)))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

function guardLines(): any[] {
  return guard
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

function runReport(): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const { KUBERNETES_SERVICE_HOST: _inCluster, ...env } = process.env;
    const child = spawn(process.execPath, [CLI, 'report', '--kubeconfig', plane().kubeconfigPath, '--config', configFile], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', rej);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code: code ?? 1, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  cp = await startControlPlane({
    nodes: [{ name: LEGACY }],
    // NodeRestriction limits what a kubelet may write to its own Node; the taint comes from the webhook.
    extraApiServerArgs: ['--enable-admission-plugins=NodeRestriction'],
    // Node registrations only (kwok writes node status constantly): the webhook's auditAnnotations land here.
    auditPolicy: `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create"]
  resources:
  - group: ""
    resources: ["nodes"]
- level: None
`,
    log: (line) => process.stderr.write(`[controlplane] ${line}\n`),
  });
  await installCiliumCrds(cp);
  // Kubelets authorize as group system:nodes; with RBAC alone (no Node authorizer here) they get
  // the bootstrap ClusterRole system:node through this binding.
  await cp.kubectl(['create', 'clusterrolebinding', 'cmg-e2e-kubelets', '--clusterrole=system:node', '--group=system:nodes']);
  configFile = join(cp.dir, 'tainted-config.yaml');
  // A short stuck threshold so the guard's warning shows within the test.
  writeFileSync(configFile, stringify({ nodeTaint: { stuckAfterSeconds: 3, checkIntervalSeconds: 1 } }));
  guard = await startGuard(cp, { args: ['--config', configFile] });
  await guard.register();
});

afterAll(async () => {
  await guard?.stop();
  await cp?.stop();
});

describe('a node registering with the migration label', () => {
  it("is stored with Cilium's startup taint; the kubelet's own taint, labels and annotations stay", async () => {
    const own = { key: 'example.com/pool', value: 'blue', effect: 'PreferNoSchedule' };
    const r = await registerNode('kwok-cilium-1', { cni: 'cilium' }, [own]);
    expect(r.status).toBe(201);
    // Exactly the two taints: no timeAdded on ours — the API server does not default it
    // (pkg/registry/core/node/strategy.go), so the node's creationTimestamp dates it.
    expect(r.node.spec.taints).toEqual([own, STARTUP_TAINT]);
    expect(r.node.metadata.labels).toMatchObject({ cni: 'cilium', 'kubernetes.io/hostname': 'kwok-cilium-1', type: 'kwok' });
    expect(r.node.metadata.annotations).toMatchObject({ [KWOK_NODE_ANNOTATION]: 'fake', 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' });
    const stored = await getJson(['node', 'kwok-cilium-1']);
    expect(stored.spec.taints).toEqual([own, STARTUP_TAINT]);

    // The decision log line names the node and the kubelet that registered it; the metrics count it.
    const line = await waitFor(
      'the decision log line',
      async () => guardLines().find((l) => l.webhook === 'node-taint' && l.node === 'kwok-cilium-1' && l.msg === 'admission decision'),
      { timeoutMs: 5_000 },
    );
    expect(line).toMatchObject({ decision: 'patched', reason: 'tainted', node: 'kwok-cilium-1', operation: 'CREATE', user: 'system:node:kwok-cilium-1' });
    expect(metric(await metricsText(), 'cmg_admission_requests_total', { webhook: 'node-taint', operation: 'CREATE', decision: 'patched' })).toBe(1);

    // The audit log: the kubelet's create, our auditAnnotations under the webhook's name, and the
    // API server's own record that this webhook mutated the object.
    const event = await findAudit<any>(
      plane(),
      (e) => e.verb === 'create' && e.objectRef?.resource === 'nodes' && e.objectRef?.name === 'kwok-cilium-1' && e.stage === 'ResponseComplete',
      10_000,
    );
    // The request is the kubelet's identity (impersonated by the test's admin, as the audit log records).
    expect(event.impersonatedUser).toMatchObject({ username: 'system:node:kwok-cilium-1', groups: expect.arrayContaining(['system:nodes']) });
    expect(event.annotations).toMatchObject({
      [`${MUTATING_NODES_NAME}/action`]: 'tainted',
      [`${MUTATING_NODES_NAME}/taint`]: 'node.cilium.io/agent-not-ready=true:NoExecute',
    });
    expect(Object.values(event.annotations).some((v) => String(v).includes(`"webhook":"${MUTATING_NODES_NAME}","mutated":true`))).toBe(true);
  });

  it('an unlabelled node is stored as registered, and is never even sent to the webhook (matchConditions)', async () => {
    const r = await registerNode('kwok-legacy-2', {});
    expect(r.status).toBe(201);
    expect(r.node.spec.taints).toBeUndefined();
    expect(metric(await metricsText(), 'cmg_admission_requests_total', { webhook: 'node-taint' })).toBe(1);
  });

  it('a node that registers with a taint of that key already keeps it as it is', async () => {
    const poolTaint = { key: KEY, value: 'pool', effect: 'NoSchedule' };
    const r = await registerNode('kwok-cilium-2', { cni: 'cilium' }, [poolTaint]);
    expect(r.status).toBe(201);
    expect(r.node.spec.taints).toEqual([poolTaint]);
    expect(metric(await metricsText(), 'cmg_admission_requests_total', { webhook: 'node-taint', decision: 'allowed' })).toBe(1);
  });
});

describe('the scheduler and the tainted node', () => {
  it('a pending pod that selects migrated nodes stays Pending with the untolerated-taint reason, never bound and refused', async () => {
    await Promise.all(['kwok-cilium-1', 'kwok-cilium-2'].map(waitNodeReady));
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', namespace: 'default', labels: { app: 'web' } },
      spec: { nodeSelector: { cni: 'cilium' }, containers: [{ name: 'nginx', image: 'nginx:1.27' }] },
    });
    const condition = await waitFor(
      'PodScheduled=False for the pending pod',
      async () => (await getJson(['pod', '-n', 'default', 'web'])).status?.conditions?.find((c: any) => c.type === 'PodScheduled' && c.status === 'False'),
      { timeoutMs: 30_000 },
    );
    process.stderr.write(`[tainted] PodScheduled: ${condition.reason}: ${condition.message}\n`);
    expect(condition.reason).toBe('Unschedulable');
    expect(condition.message).toMatch(/untolerated taint/);
    // kube-scheduler filtered the nodes out itself (TaintToleration): no bind was attempted, so
    // the pod webhook never had to refuse one.
    const events = (await getJson(['events', '-n', 'default', '--field-selector', 'involvedObject.name=web,reason=FailedScheduling'])).items;
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) {
      expect(e.message).toMatch(/untolerated taint/);
      expect(e.message).not.toContain('denied the request');
    }
    expect(metric(await metricsText(), 'cmg_admission_requests_total', { webhook: 'pod-placement', decision: 'denied' })).toBe(0);
    expect((await getJson(['pod', '-n', 'default', 'web'])).spec.nodeName).toBeUndefined();
  });

  it("Cilium's agent pod, which tolerates every taint, is placed on the tainted node and runs", async () => {
    await apply(ciliumNode('kwok-cilium-1'));
    await apply(agentPod('kwok-cilium-1'));
    const pod = await waitPodReady('kube-system', 'cilium-kwok-cilium-1');
    expect(pod.spec.nodeName).toBe('kwok-cilium-1');
    // The taint is still there: nothing here removes it but "cilium-operator" in the next test.
    expect((await getJson(['node', 'kwok-cilium-1'])).spec.taints).toContainEqual(STARTUP_TAINT);
  });

  it('once the taint is removed, as cilium-operator removes it, the scheduler binds the pending pod there', async () => {
    const node = await getJson(['node', 'kwok-cilium-1']);
    // cilium-operator's patch (operator/watchers/node_taint.go removeNodeTaint): test, then replace the list without the key.
    const without = node.spec.taints.filter((t: any) => t.key !== KEY);
    await cp.kubectl([
      'patch',
      'node',
      'kwok-cilium-1',
      '--type=json',
      '-p',
      JSON.stringify([
        { op: 'test', path: '/spec/taints', value: node.spec.taints },
        { op: 'replace', path: '/spec/taints', value: without },
      ]),
    ]);
    const bound = await waitFor('the pending pod to be bound', async () => (await getJson(['pod', '-n', 'default', 'web'])).spec.nodeName || undefined, {
      timeoutMs: 60_000,
    });
    expect(bound).toBe('kwok-cilium-1');
    // Node UPDATEs are never sent to the webhook: the taint does not come back.
    expect((await getJson(['node', 'kwok-cilium-1'])).spec.taints).toEqual(without);
    expect(metric(await metricsText(), 'cmg_admission_requests_total', { webhook: 'node-taint', operation: 'UPDATE' })).toBe(0);
  });
});

describe('the stuck-taint guard', () => {
  it('a taint still there after the agent turned Ready: a warning from serve, the gauge, and STUCK in report', async () => {
    // kwok-cilium-2's own pool taint has the key; its agent turns Ready and no operator removes it.
    await apply(ciliumNode('kwok-cilium-2'));
    await apply(agentPod('kwok-cilium-2'));
    await waitPodReady('kube-system', 'cilium-kwok-cilium-2');
    const warning = await waitFor(
      'the stuck-taint warning in the serve log',
      async () => guardLines().find((l) => l.level === 'warn' && l.component === 'startup-taint' && l.node === 'kwok-cilium-2'),
      { timeoutMs: 30_000 },
    );
    expect(warning.msg).toContain("Cilium's startup taint is stuck on node kwok-cilium-2");
    expect(warning.msg).toContain('kubectl taint node kwok-cilium-2 node.cilium.io/agent-not-ready-');
    expect(warning).toMatchObject({ taint: KEY, agentPod: 'kube-system/cilium-kwok-cilium-2' });
    // kwok-cilium-1's taint was removed: only one node is stuck.
    expect(metric(await metricsText(), 'cmg_startup_taint_nodes', { state: 'stuck' })).toBe(1);

    // A fresh labelled node: tainted by the webhook, no agent yet → waiting.
    expect((await registerNode('kwok-cilium-3', { cni: 'cilium' })).node.spec.taints).toEqual([STARTUP_TAINT]);
    await waitFor(
      'the gauge to count the waiting node',
      async () => (metric(await metricsText(), 'cmg_startup_taint_nodes', { state: 'waiting' }) === 1 ? true : undefined),
      {
        timeoutMs: 10_000,
      },
    );

    const report = await runReport();
    process.stderr.write(`[tainted] report:\n${report.stdout}\n`);
    expect(report.code, report.stderr).toBe(0);
    expect(report.stdout).toContain("Nodes waiting on Cilium's startup taint node.cilium.io/agent-not-ready");
    expect(report.stdout).toMatch(
      /kwok-cilium-2\s+STUCK\s+\S+\s+\S+ \(creationTimestamp\)\s+taint still there .* after agent kube-system\/cilium-kwok-cilium-2 turned Ready/,
    );
    expect(report.stdout).toMatch(
      /kwok-cilium-3\s+waiting\s+\S+\s+\S+ \(creationTimestamp\)\s+tainted for \S+, waiting for a Ready Cilium agent pod on the node/,
    );
    expect(report.stdout).not.toMatch(/^kwok-cilium-1\s+(waiting|STUCK|agent-ready)/m);
  });
});

describe('failure mode', () => {
  it('with the webhook unreachable, a labelled node still registers at once (failurePolicy Ignore), untainted', async () => {
    await guard.stop();
    const r = await registerNode('kwok-cilium-4', { cni: 'cilium' });
    expect(r.status).toBe(201);
    expect(r.node.spec.taints).toBeUndefined();
    // Connection refused fails the call at once; the 2 s timeoutSeconds bounds a hung webhook.
    expect(r.ms).toBeLessThan(5_000);
    process.stderr.write(`[tainted] registration with the webhook down took ${r.ms} ms (${MUTATING_NODES_NAME})\n`);
  });
});
