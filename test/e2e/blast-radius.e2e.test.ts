// Blast radius and hands-off, through a real kube-apiserver (test/harness): the DaemonSet webhook
// receives only DaemonSets a rule can match (the generated matchConditions, evaluated by the API
// server's own CEL), Cilium's exemptions cover only what must run before Cilium is ready, the pod
// webhook's short timeout bounds what an unreachable webhook costs a placement, and a cloud-run
// Cilium (GKE Dataplane V2's anetd, reproduced as the cloud writes it) turns DaemonSet patching off.

import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { execFile } from 'node:child_process';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MUTATING_NAME, VALIDATING_NAME, validatingWebhookConfiguration } from '../../src/registration.js';
import { POD_WEBHOOK_TIMEOUT_SECONDS } from '../../src/timeouts.js';
import { startControlPlane, waitFor, type ControlPlane } from '../harness/controlplane.js';
import { CLI, installCiliumCrds, OWN_NAMESPACE, startGuard, type Guard } from '../harness/guard.js';

const LEGACY = 'kwok-legacy-1';
const MIGRATED = 'kwok-cilium-1'; // labelled, Cilium never ready there

let cp: ControlPlane;
let guard: Guard;

const fixture = (name: string) => readFileSync(new URL(`../fixtures/daemonsets/${name}.yaml`, import.meta.url), 'utf8');
const apply = (obj: unknown, allowFail = true) => cp.kubectl(['apply', '-f', '-'], { input: typeof obj === 'string' ? obj : stringify(obj), allowFail });
const getJson = async (args: string[]): Promise<any> => JSON.parse((await cp.kubectl(['get', ...args, '-o', 'json'])).stdout);

function pod(name: string, namespace: string, labels: Record<string, string>, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels },
    spec: { containers: [{ name: 'c', image: 'registry.example/c:1' }], ...spec },
  };
}

function httpsJson(path: string): Promise<{ status: number; body: any }> {
  return new Promise((res, rej) => {
    const req = httpsRequest(`${guard.url}${path}`, { ca: guard.caPem, timeout: 3_000 }, (r) => {
      let body = '';
      r.setEncoding('utf8').on('data', (d) => (body += d));
      r.on('end', () => res({ status: r.statusCode ?? 0, body: JSON.parse(body) }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end();
  });
}

beforeAll(async () => {
  cp = await startControlPlane({
    nodes: [{ name: LEGACY }, { name: MIGRATED, labels: { cni: 'cilium' } }],
    log: (line) => process.stderr.write(`[controlplane] ${line}\n`),
  });
  await installCiliumCrds(cp);
  await cp.kubectl(['create', 'namespace', 'monitoring']);
  guard = await startGuard(cp);
  await guard.register();
}, 600_000);

afterAll(async () => {
  await guard?.stop();
  await cp?.stop();
});

describe("Cilium's exemptions: only what must run before Cilium is ready", () => {
  it('a hubble-relay pod bound to an unready migrated node is refused; cilium-operator is not', async () => {
    // Labels as Cilium's chart sets them on hubble-relay and cilium-operator.
    const relay = pod(
      'hubble-relay-7d9f',
      'kube-system',
      { 'k8s-app': 'hubble-relay', 'app.kubernetes.io/part-of': 'cilium', 'app.kubernetes.io/name': 'hubble-relay' },
      { nodeName: MIGRATED },
    );
    const refused = await apply(relay);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(
      `admission webhook "${VALIDATING_NAME}" denied the request: pod kube-system/hubble-relay-7d9f cannot be placed on node ${MIGRATED} yet`,
    );

    const operator = pod(
      'cilium-operator-5c7f',
      'kube-system',
      { 'io.cilium/app': 'operator', name: 'cilium-operator', 'app.kubernetes.io/part-of': 'cilium' },
      { nodeName: MIGRATED },
    );
    const admitted = await apply(operator);
    expect(admitted.stderr).toBe('');
    expect(admitted.code).toBe(0);
  });
});

describe('a cloud-run Cilium (GKE Dataplane V2): hands off', () => {
  it('anetd itself is never sent to the webhook, and once its agent pods are seen no DaemonSet is patched', async () => {
    // anetd as GKE runs it: kube-system, k8s-app=cilium (the label rule would match it otherwise).
    const anetd = {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'anetd', namespace: 'kube-system', labels: { 'k8s-app': 'cilium', 'addonmanager.kubernetes.io/mode': 'Reconcile' } },
      spec: {
        selector: { matchLabels: { 'k8s-app': 'cilium' } },
        template: {
          metadata: { labels: { 'k8s-app': 'cilium' } },
          spec: { hostNetwork: true, containers: [{ name: 'cilium-agent', image: 'gke.gcr.io/cilium/cilium:v1' }] },
        },
      },
    };
    const created = await apply(anetd);
    expect(created.code).toBe(0);
    expect(created.stderr).not.toContain('cilium-migration-guard');
    const stored = await getJson(['daemonset', '-n', 'kube-system', 'anetd']);
    expect(stored.spec.template.spec.affinity).toBeUndefined();

    // Its agent pods come from the DaemonSet controller (kube-controller-manager runs in the harness),
    // owned by the DaemonSet, as on GKE.
    const readyz = await waitFor(
      '/readyz to report the managed dataplane',
      async () => {
        const r = await httpsJson('/readyz');
        return r.body.managedDataplane ? r : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(readyz.status).toBe(200);
    expect(readyz.body.managedDataplane).toMatch(/^GKE Dataplane V2 runs this cluster's Cilium \(pod kube-system\/anetd-[a-z0-9]{5} of DaemonSet anetd\)/);

    // A legacy agent the addon manager applies: admitted unchanged, with the reason.
    const calico = await apply(fixture('calico-node').replace(/namespace: \S+/g, 'namespace: kube-system'));
    expect(calico.code).toBe(0);
    expect(calico.stderr).toContain('Warning: cilium-migration-guard left kube-system/calico-node unchanged (role legacy)');
    expect(calico.stderr).toContain("Warning: GKE Dataplane V2 runs this cluster's Cilium: the migration does not apply");
    const calicoStored = await getJson(['daemonset', '-n', 'kube-system', 'calico-node']);
    expect(JSON.stringify(calicoStored.spec.template.spec.affinity ?? {})).not.toContain('"cni"');

    // A webhook started now says so in its log once its view has synced.
    const second = await startGuard(cp, { dir: `${cp.dir}/second` });
    try {
      await waitFor('the start-up log line', async () => (second.logs().includes('GKE Dataplane V2 runs this cluster') ? true : undefined), {
        timeoutMs: 15_000,
      });
      const line = second
        .logs()
        .split('\n')
        .find((l) => l.includes('GKE Dataplane V2 runs this cluster'))!;
      expect(JSON.parse(line)).toMatchObject({ level: 'warn', managedDataplane: 'gke-dataplane-v2' });
    } finally {
      await second.stop();
    }

    // `report` says so too.
    const report = await new Promise<string>((res, rej) =>
      execFile(process.execPath, [CLI, 'report', '--kubeconfig', cp.kubeconfigPath, '-o', 'json'], { timeout: 60_000 }, (err, stdout, stderr) =>
        err ? rej(new Error(`${err.message}\n${stderr}`)) : res(stdout),
      ),
    );
    expect(JSON.parse(report).managedDataplane).toContain('GKE Dataplane V2 runs this cluster');

    // Gone again (its pods may run on no node: the DaemonSet controller removes them): the
    // registered webhook patches as before. anetd itself stays for the next test.
    await cp.kubectl([
      'patch',
      'daemonset',
      '-n',
      'kube-system',
      'anetd',
      '--type=merge',
      '-p',
      '{"spec":{"template":{"spec":{"nodeSelector":{"cmg.test/no-such-node":"true"}}}}}',
    ]);
    await waitFor('/readyz to drop the note', async () => ((await httpsJson('/readyz')).body.managedDataplane ? undefined : true), { timeoutMs: 20_000 });
    const again = await apply(fixture('kube-router'));
    expect(again.stderr).toContain('Warning: cilium-migration-guard added nodeAffinity cni NotIn [cilium] to kube-system/kube-router');
  });
});

describe('with the webhook unreachable: only DaemonSets a rule matches wait on it', () => {
  it("node-exporter, an unrelated kube-system DaemonSet, netd, anetd and AKS's cilium are written; aws-node is refused", async () => {
    await guard.stop();
    const nodeExporter = await apply(fixture('node-exporter'));
    expect(nodeExporter.stderr).toBe('');
    expect(nodeExporter.stdout).toContain('daemonset.apps/node-exporter created');
    const ipMasq = await apply(fixture('ip-masq-agent'));
    expect(ipMasq.stderr).toBe('');
    expect(ipMasq.stdout).toContain('daemonset.apps/ip-masq-agent created');
    // Neither GKE's netd (no rule matches it: the lint check gke-netd-source-valid-mark judges it)
    // nor anetd is sent.
    const netd = await apply(fixture('netd'));
    expect(netd.stderr).toBe('');
    expect(netd.code).toBe(0);
    const anetd = await cp.kubectl(['label', 'daemonset', '-n', 'kube-system', 'anetd', 'touched=yes'], { allowFail: true });
    expect(anetd.code).toBe(0);

    // AKS's own Cilium (name and namespace of Cilium's agent rule, but labelled as AKS labels it): not sent either.
    const aksCilium = {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'cilium', namespace: 'kube-system', labels: { 'k8s-app': 'cilium', 'kubernetes.azure.com/managedby': 'aks' } },
      spec: {
        selector: { matchLabels: { 'k8s-app': 'cilium' } },
        template: {
          metadata: { labels: { 'k8s-app': 'cilium', 'kubernetes.azure.com/ebpf-dataplane': 'cilium' } },
          spec: { hostNetwork: true, containers: [{ name: 'cilium-agent', image: 'mcr.microsoft.com/containernetworking/cilium/cilium:v1' }] },
        },
      },
    };
    const aks = await apply(aksCilium);
    expect(aks.stderr).toBe('');
    expect(aks.code).toBe(0);

    const awsNode = await apply(fixture('aws-node'));
    expect(awsNode.code).not.toBe(0);
    expect(awsNode.stderr).toContain(`failed calling webhook "${MUTATING_NAME}"`);
  });
});

describe('the pod webhook unreachable (an endpoint that accepts and never answers)', () => {
  let blackhole: Server;
  const sockets = new Set<Socket>();

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((res) => (blackhole ? blackhole.close(() => res()) : res()));
  });

  it(`adds at most about ${POD_WEBHOOK_TIMEOUT_SECONDS} s to a pod placed with spec.nodeName, and to a scheduler bind`, async () => {
    blackhole = createServer((socket) => {
      sockets.add(socket); // accept, read nothing back, never answer
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((res) => blackhole.listen(0, '127.0.0.1', () => res()));
    const port = (blackhole.address() as { port: number }).port;
    const registration = validatingWebhookConfiguration({ endpoint: { url: `https://127.0.0.1:${port}` }, caPem: guard.caPem, ownNamespace: OWN_NAMESPACE });
    await apply(registration, false);

    const timed = async (args: string[], input: string) => {
      const start = performance.now();
      const r = await cp.kubectl(args, { input, allowFail: true });
      return { ...r, ms: performance.now() - start };
    };
    // The API server picks the registration up through its informer: wait until a placement waits on it.
    let n = 0;
    await waitFor(
      'the API server to call the blackholed pod webhook',
      async () => {
        const r = await timed(['create', '--dry-run=server', '-f', '-'], stringify(pod(`probe-${n++}`, 'default', {}, { nodeName: LEGACY })));
        return r.ms > 1_500 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );

    // Baseline: the same create where the webhook is not called (no spec.nodeName, so no matchCondition).
    const baseline = await timed(['create', '-f', '-'], stringify(pod('unplaced-1', 'default', {}, { nodeSelector: { nowhere: 'x' } })));
    expect(baseline.code).toBe(0);

    const placed = await timed(['create', '-f', '-'], stringify(pod('placed-1', 'default', {}, { nodeName: LEGACY })));
    expect(placed.code).toBe(0); // failurePolicy Ignore
    const added = placed.ms - baseline.ms;
    process.stderr.write(
      `[blast-radius] pod create with spec.nodeName, webhook blackholed: ${placed.ms.toFixed(0)} ms (baseline ${baseline.ms.toFixed(0)} ms, added ${added.toFixed(0)} ms)\n`,
    );
    expect(placed.ms).toBeGreaterThanOrEqual(POD_WEBHOOK_TIMEOUT_SECONDS * 1000 - 100); // it did wait on the webhook
    expect(added).toBeLessThan(3_000);

    // The scheduler's bind (pods/binding) waits the same bounded time, then goes through.
    const start = performance.now();
    await apply(pod('sched-1', 'default', {}, { nodeSelector: { 'kubernetes.io/hostname': LEGACY } }), false);
    const node = await waitFor('sched-1 to be bound', async () => (await getJson(['pod', 'sched-1'])).spec.nodeName ?? undefined, {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    const bindMs = performance.now() - start;
    process.stderr.write(`[blast-radius] create + schedule + bind, webhook blackholed: ${bindMs.toFixed(0)} ms\n`);
    expect(node).toBe(LEGACY);
    expect(bindMs).toBeGreaterThanOrEqual(POD_WEBHOOK_TIMEOUT_SECONDS * 1000 - 100);
    expect(bindMs).toBeLessThan(POD_WEBHOOK_TIMEOUT_SECONDS * 1000 + 3_000);
  });
});
