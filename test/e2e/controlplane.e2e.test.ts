// Smoke test of the local control plane harness: real kube-apiserver/etcd/kube-scheduler/
// kube-controller-manager plus kwok. Runs on the shared control plane (test/harness/shared.ts),
// so it looks only at its own nodes and objects.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readPinnedVersions, waitFor, POD_CIDR, type ControlPlane } from '../harness/controlplane.js';
import { auditEvents, type AuditEvent } from '../harness/audit.js';
import { sharedControlPlane } from '../harness/shared.js';
import { podsOwnedBy } from '../harness/workloads.js';

const LABEL = { 'e2e-file': 'controlplane' };
const NODES = ['smoke-legacy', 'smoke-cilium'];
const NS = 'smoke';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('local control plane', () => {
  let cp: ControlPlane | undefined;
  const plane = (): ControlPlane => {
    if (!cp) throw new Error('control plane not started');
    return cp;
  };
  const apply = (obj: unknown) => plane().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
  const getJson = async (args: string[]): Promise<any> => JSON.parse((await plane().kubectl(['get', ...args, '-o', 'json'])).stdout);
  const audit = async (): Promise<AuditEvent[]> => auditEvents(plane());

  beforeAll(async () => {
    cp = await sharedControlPlane({ log: (l) => process.stderr.write(`[controlplane] ${l}\n`) });
    await cp.addNodes([
      { name: 'smoke-legacy', labels: LABEL },
      { name: 'smoke-cilium', labels: { ...LABEL, cni: 'cilium' } },
    ]);
    await cp.createNamespace(NS);
  }, 20 * 60_000);

  afterAll(async () => {
    // Leave nothing behind on the shared control plane: the namespace first (kwok completes the
    // deletion of its pods while their nodes exist), then the nodes.
    await cp?.kubectl(['delete', 'namespace', NS, '--ignore-not-found', '--timeout=30s'], { allowFail: true });
    await cp?.kubectl(['delete', 'node', ...NODES, '--ignore-not-found', '--wait=false'], { allowFail: true });
    await cp?.stop();
  }, 60_000);

  it('serves the pinned Kubernetes version', async () => {
    const { KUBE_VERSION } = readPinnedVersions();
    const r = await plane().kubectl(['version', '-o', 'json']);
    const v = JSON.parse(r.stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    expect(v.serverVersion.gitVersion).toBe(KUBE_VERSION);
    expect(v.clientVersion.gitVersion).toBe(KUBE_VERSION);
  }, 60_000);

  it('has Ready fake nodes with the requested labels and no taints', async () => {
    const nodes = (await getJson(['nodes', '-l', 'e2e-file=controlplane'])).items as Array<{
      metadata: { name: string; labels?: Record<string, string> };
      spec: { taints?: unknown[] };
      status: { conditions?: Array<{ type: string; status: string }> };
    }>;
    expect(nodes.map((n) => n.metadata.name).sort()).toEqual([...NODES].sort());
    for (const n of nodes) {
      expect(n.status.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
      // TaintNodesByCondition is off (nothing here would remove its not-ready taint).
      expect(n.spec.taints ?? []).toEqual([]);
    }
    expect(nodes.find((n) => n.metadata.name === 'smoke-cilium')?.metadata.labels?.cni).toBe('cilium');
    const selected = await plane().kubectl(['get', 'nodes', '-l', 'e2e-file=controlplane,cni=cilium', '-o', 'name']);
    expect(selected.stdout.trim()).toBe('node/smoke-cilium');
  }, 60_000);

  it('schedules a pod with kube-scheduler and kwok runs it with a pod IP; the create is audited', async () => {
    const name = 'smoke-pod';
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: NS, labels: { app: 'smoke' } },
      spec: { nodeSelector: LABEL, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
    });

    let pod: { spec: { nodeName?: string; serviceAccountName?: string }; status: { phase?: string; podIP?: string } } | undefined;
    const deadline = Date.now() + 45_000;
    while (Date.now() < deadline) {
      const r = await plane().kubectl(['get', 'pod', name, '-n', NS, '-o', 'json']);
      pod = JSON.parse(r.stdout) as typeof pod;
      if (pod?.status.phase === 'Running' && pod.status.podIP) break;
      await sleep(500);
    }
    expect(pod?.spec.nodeName).toMatch(/^smoke-(legacy|cilium)$/);
    expect(pod?.status.phase).toBe('Running');
    // The ServiceAccount admission plugin is on: the pod runs as its namespace's default ServiceAccount.
    expect(pod?.spec.serviceAccountName).toBe('default');
    const [prefix] = POD_CIDR.split('.0.0/');
    expect(pod?.status.podIP?.startsWith(`${prefix}.`)).toBe(true);

    const events = await audit();
    const created = events.find((e) => e.verb === 'create' && e.objectRef?.resource === 'pods' && !e.objectRef.subresource && e.objectRef.name === name);
    expect(created?.stage).toBe('ResponseComplete');
    const bound = events.find((e) => e.verb === 'create' && e.objectRef?.subresource === 'binding' && e.objectRef.name === name);
    expect(bound).toBeDefined();
  }, 60_000);

  it('kube-controller-manager runs the listed controllers, each under its own ServiceAccount, and not the node lifecycle ones', async () => {
    // --use-service-account-credentials: a controller gets its ServiceAccount in kube-system when it
    // starts (names from cmd/kube-controller-manager/app), so the list shows what runs.
    const running = [
      'daemon-set-controller',
      'deployment-controller',
      'replicaset-controller',
      'statefulset-controller',
      'job-controller',
      'generic-garbage-collector',
      'disruption-controller',
      'endpointslice-controller',
      'namespace-controller',
      'service-account-controller',
      'root-ca-cert-publisher',
      'clusterrole-aggregation-controller',
    ];
    const accounts = await waitFor(
      "the controllers' ServiceAccounts",
      async () => {
        const names = ((await getJson(['serviceaccounts', '-n', 'kube-system'])).items as Array<{ metadata: { name: string } }>).map((a) => a.metadata.name);
        return running.every((n) => names.includes(n)) ? names : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(accounts).toEqual(expect.arrayContaining(running));
    for (const left of ['node-controller', 'ttl-controller', 'pod-garbage-collector', 'endpoint-controller', 'cronjob-controller']) {
      expect(accounts, left).not.toContain(left);
    }
  }, 60_000);

  it("kube-controller-manager: a Deployment gets its ReplicaSet and pods, created under the controllers' own ServiceAccounts", async () => {
    await apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'smoke-web', namespace: NS },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'smoke-web' } },
        template: {
          metadata: { labels: { app: 'smoke-web' } },
          spec: { nodeSelector: LABEL, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
        },
      },
    });
    const available = await waitFor(
      'the Deployment to be available',
      async () => {
        const d = await getJson(['deployment', 'smoke-web', '-n', NS]);
        return d.status?.availableReplicas === 2 ? d : undefined;
      },
      { timeoutMs: 45_000, intervalMs: 500 },
    );
    expect(available.status.readyReplicas).toBe(2);
    const [rs] = (await getJson(['replicasets', '-n', NS, '-l', 'app=smoke-web'])).items;
    const pods = await podsOwnedBy(plane(), NS, 'ReplicaSet', rs.metadata.name);
    expect(pods.map((p) => p.phase)).toEqual(['Running', 'Running']);
    // Who created what: each controller under its own ServiceAccount (--use-service-account-credentials).
    const events = await audit();
    // The ReplicaSet controller creates pods with generateName: the audit event names no pod, its request does.
    const creates = events.filter(
      (e) =>
        e.verb === 'create' &&
        e.objectRef?.resource === 'pods' &&
        !e.objectRef.subresource &&
        e.requestObject?.metadata?.generateName === `${rs.metadata.name}-`,
    );
    expect(creates.map((e) => [e.user?.username, e.responseStatus?.code])).toEqual([
      ['system:serviceaccount:kube-system:replicaset-controller', 201],
      ['system:serviceaccount:kube-system:replicaset-controller', 201],
    ]);
  }, 60_000);

  it('kube-controller-manager: a DaemonSet gets one pod per node, a PodDisruptionBudget a computed status, and deleting the Deployment deletes its pods', async () => {
    await apply({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'smoke-agent', namespace: NS },
      spec: {
        selector: { matchLabels: { app: 'smoke-agent' } },
        template: {
          metadata: { labels: { app: 'smoke-agent' } },
          spec: { nodeSelector: LABEL, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
        },
      },
    });
    const agents = await waitFor(
      'a DaemonSet pod on each node',
      async () => {
        const pods = (await podsOwnedBy(plane(), NS, 'DaemonSet', 'smoke-agent')).filter((p) => p.ready);
        return pods.length === 2 ? pods : undefined;
      },
      { timeoutMs: 45_000, intervalMs: 500 },
    );
    expect(agents.map((p) => p.node).sort()).toEqual([...NODES].sort());

    await apply({
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'smoke-web', namespace: NS },
      spec: { minAvailable: 1, selector: { matchLabels: { app: 'smoke-web' } } },
    });
    const pdb = await waitFor(
      'the disruption controller to compute the PDB status',
      async () => {
        const p = await getJson(['pdb', 'smoke-web', '-n', NS]);
        return p.status?.observedGeneration === p.metadata.generation && p.status.expectedPods === 2 ? p : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(pdb.status).toMatchObject({ currentHealthy: 2, desiredHealthy: 1, disruptionsAllowed: 1, expectedPods: 2 });

    const [rs] = (await getJson(['replicasets', '-n', NS, '-l', 'app=smoke-web'])).items;
    await plane().kubectl(['delete', 'deployment', 'smoke-web', '-n', NS, '--wait=false']);
    await waitFor(
      'the garbage collector to delete the ReplicaSet and its pods',
      async () => {
        const left = await podsOwnedBy(plane(), NS, 'ReplicaSet', rs.metadata.name);
        const rsLeft = (await plane().api('GET', `/apis/apps/v1/namespaces/${NS}/replicasets/${rs.metadata.name}`)).status;
        return left.length === 0 && rsLeft === 404 ? true : undefined;
      },
      { timeoutMs: 45_000, intervalMs: 500 },
    );
  }, 120_000);
});
