// The install, proven on a real kube-apiserver (test/harness/controlplane.ts):
// - manifests/ and its overlays render, and the API server accepts them (server-side dry-run);
// - RBAC applied for real: each ServiceAccount may make exactly its calls (kubectl auth can-i);
// - `node dist/cli.js reaper` with the reaper's ServiceAccount token syncs its caches, evicts an
//   early pod, records Events and holds its Lease, and no call it makes is forbidden;
// - two `node dist/cli.js serve` replicas, started together with the webhook's ServiceAccount
//   token, create ONE certificate Secret, inject its CA into both webhook configurations, and
//   serve admission called by the API server;
// - certificate rotation (serving renewals, a CA rotation with old+new CA, a prune) with two
//   replicas sharing the Secret, under a bounded load of direct HTTPS requests to both and
//   DaemonSet creates through the API server: no request fails, and every Secret version is
//   exactly one replica's one step.
// The webhook configurations use url clientConfig to 127.0.0.1 (a Service would resolve to a
// ClusterIP nothing routes here); everything else is what manifests/ installs.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubeConfig, Watch, type V1Secret } from '@kubernetes/client-node';
import { kubeconfigAccess } from '../../src/cluster/kube-config.js';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertController } from '../../src/certs/cert-controller.js';
import { inspect, splitPem, type CertMaterial } from '../../src/certs/plan.js';
import { openView, type ViewSource } from '../../src/commands/common.js';
import { loadConfigFile, parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { Metrics } from '../../src/metrics.js';
import { CONFIGURATION_NAME, mutatingWebhookConfiguration, validatingWebhookConfiguration } from '../../src/registration.js';
import { startServer, type ServerHandle } from '../../src/server/start.js';
import { servingCertSans } from '../../src/certs/local.js';
import { daemonSetAffinityHandler } from '../../src/webhooks/daemonset-affinity.js';
import { podPlacementHandler } from '../../src/webhooks/pod-placement.js';
import { POD_CIDR, startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { ciliumManages } from '../harness/cilium.js';
import { applyDaemonSetFixture, waitForDaemonSetOn } from '../harness/workloads.js';
import { daemonSetRequest, review } from '../support/reviews.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CRDS = ['ciliumnodes', 'ciliumendpoints'].map((name) => fileURLToPath(new URL(`./crds/${name}.yaml`, import.meta.url)));
const NS = 'cilium-migration-guard';
const SECRET = 'cilium-migration-guard-tls';
const WEBHOOK_SA = 'cilium-migration-guard-webhook';
const REAPER_SA = 'cilium-migration-guard-reaper';
const REAPER_LEASE = 'cilium-migration-guard-reaper'; // the reaper's default --lease-name, the one its Role names
const CONFIG_FILE = join(root, 'manifests/base/config.yaml');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** One HTTPS request on a fresh connection (a fresh TLS handshake, as a new API server client makes). */
function post(url: string, ca: string, body: unknown): Promise<{ status: number; body: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = httpsRequest(
      url,
      { method: 'POST', ca, agent: false, timeout: 5_000, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256 ?? '';
        let data = '';
        res
          .setEncoding('utf8')
          .on('data', (d: string) => (data += d))
          .on('end', () => resolve({ status: res.statusCode ?? 0, body: data, fingerprint }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A DaemonSet the aws preset gives the `legacy` role: the webhook patches it. `nodeSelector`
 * (optional) is kept by the patch.
 */
function awsNode(name: string, namespace: string, nodeSelector?: Record<string, string>) {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace, labels: { 'k8s-app': 'aws-node' } },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { ...(nodeSelector ? { nodeSelector } : {}), containers: [{ name: 'aws-node', image: 'registry.k8s.io/pause:3.10' }] },
      },
    },
  };
}
/** No node has it: the load DaemonSets exercise admission only, the DaemonSet controller creates no pods for them. */
const NO_NODE = { 'cilium-migration-guard.io/e2e-no-such-node': 'true' };

interface Replica {
  proc: ChildProcess;
  port: number;
  certDir: string;
  log: () => Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

describe('install: manifests, RBAC, certificate lifecycle', () => {
  let cp: ControlPlane | undefined;
  let work = '';
  let saKubeconfig = '';
  const replicas: Replica[] = [];
  let view: ViewSource | undefined;
  /** The in-process replicas of the rotation test. */
  const rotating: Array<{ certs: CertController; server?: ServerHandle }> = [];
  let secretWatch: AbortController | undefined;
  let reaper: { proc: ChildProcess; exited: Promise<number | null> } | undefined;

  const plane = (): ControlPlane => {
    if (!cp) throw new Error('control plane not started');
    return cp;
  };
  const kubectl = (args: string[], input?: string) => plane().kubectl(args, input === undefined ? {} : { input });
  const render = async (dir: string): Promise<Obj[]> => parseAllDocuments((await kubectl(['kustomize', join(root, dir)])).stdout).map((d) => d.toJSON() as Obj);
  const getJson = async (path: string): Promise<any> => {
    const r = await plane().api('GET', path);
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.body}`);
    return JSON.parse(r.body);
  };
  const caBundleOf = async (kind: 'mutating' | 'validating'): Promise<string> => {
    const config = await getJson(`/apis/admissionregistration.k8s.io/v1/${kind}webhookconfigurations/${CONFIGURATION_NAME}`);
    return Buffer.from(config.webhooks[0].clientConfig.caBundle ?? '', 'base64').toString('utf8');
  };
  const secretData = async (): Promise<Record<string, string>> => {
    const secret = await getJson(`/api/v1/namespaces/${NS}/secrets/${SECRET}`);
    return Object.fromEntries(Object.entries(secret.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  };
  const registerWebhooks = (port: number) =>
    kubectl(
      ['apply', '--server-side', '--force-conflicts', '-f', '-'],
      [
        mutatingWebhookConfiguration({ endpoint: { url: `https://127.0.0.1:${port}` }, ownNamespace: NS }),
        validatingWebhookConfiguration({ endpoint: { url: `https://127.0.0.1:${port}` }, ownNamespace: NS }),
      ]
        .map((o) => stringify(o))
        .join('---\n'),
    );

  /** A kubeconfig that authenticates as the ServiceAccount `sa`, with a token from the API server (TokenRequest). */
  const kubeconfigFor = async (sa: string): Promise<string> => {
    const token = (await kubectl(['create', 'token', sa, '-n', NS, '--duration=1h'])).stdout.trim();
    const path = join(work, `${sa}.kubeconfig`);
    await writeFile(
      path,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'cmg', cluster: { server: plane().server, 'certificate-authority': plane().caFile } }],
        users: [{ name: sa, user: { token } }],
        contexts: [{ name: 'cmg', context: { cluster: 'cmg', user: sa } }],
        'current-context': 'cmg',
      }),
      { mode: 0o600 },
    );
    return path;
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'cmg-install-'));
    const build = promisify(execFile)('npm', ['run', 'build'], { cwd: root, timeout: 180_000 });
    cp = await startControlPlane({
      nodes: [{ name: 'node-legacy' }, { name: 'node-cilium', labels: { cni: 'cilium' } }],
      log: (l) => process.stderr.write(`[controlplane] ${l}\n`),
    });
    await build;
    for (const crd of CRDS) await kubectl(['apply', '-f', crd]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/ciliumnodes.cilium.io', 'crd/ciliumendpoints.cilium.io']);
  }, 40 * 60_000);

  afterAll(async () => {
    secretWatch?.abort();
    for (const r of rotating) {
      r.certs.stop();
      await r.server?.close();
    }
    await view?.stop();
    for (const r of [...replicas, ...(reaper ? [reaper] : [])]) {
      r.proc.kill('SIGTERM');
      await Promise.race([r.exited, sleep(10_000)]);
      if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
    }
    await cp?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  }, 90_000);

  it('renders the base and every overlay; the rendered registrations are src/registration.ts', async () => {
    const base = await render('manifests');
    const byKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
    const service = { endpoint: { service: { namespace: NS, name: 'cilium-migration-guard', port: 443 } }, ownNamespace: NS };
    expect(byKind(base, 'MutatingWebhookConfiguration')).toEqual([mutatingWebhookConfiguration(service)]);
    expect(byKind(base, 'ValidatingWebhookConfiguration')).toEqual([validatingWebhookConfiguration(service)]);

    const reaperArgs = (objs: Obj[]) =>
      (objs.find((o) => o.metadata.name === 'cilium-migration-guard-reaper' && o.kind === 'Deployment') as any).spec.template.spec.containers[0].args;
    expect(reaperArgs(await render('manifests/overlays/dry-run-reaper'))).toContain('--dry-run');
    expect(reaperArgs(base)).not.toContain('--dry-run');

    const certManager = await render('manifests/overlays/cert-manager');
    for (const config of [...byKind(certManager, 'MutatingWebhookConfiguration'), ...byKind(certManager, 'ValidatingWebhookConfiguration')] as any[]) {
      expect(config.metadata.annotations['cert-manager.io/inject-ca-from']).toBe(`${NS}/cilium-migration-guard-serving`);
    }
    const cmWebhook = certManager.find((o) => o.kind === 'Deployment' && o.metadata.name === 'cilium-migration-guard-webhook') as any;
    expect(cmWebhook.spec.template.spec.containers[0].args.join(' ')).not.toMatch(/--cert-secret|--webhook-config/);
    expect(certManager.some((o) => o.metadata.name === 'cilium-migration-guard-webhook-certs')).toBe(false);

    for (const cloud of ['aws', 'azure', 'gke']) {
      const objs = await render(`manifests/overlays/${cloud}`);
      const config = objs.find((o) => o.kind === 'ConfigMap') as any;
      expect(config.data['config.yaml']).toContain(`presets: [${cloud}]`);
      const deployment = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'cilium-migration-guard-webhook') as any;
      expect(deployment.spec.template.spec.hostNetwork).toBe(true);
      // The overlay's DaemonSet matchConditions are those of its own config (its presets only).
      const overlayConfig = parseConfig(parse(config.data['config.yaml']));
      expect((byKind(objs, 'MutatingWebhookConfiguration')[0] as any).webhooks).toEqual(
        mutatingWebhookConfiguration({ ...service, config: overlayConfig }).webhooks,
      );
      // AKS's Admissions Enforcer would otherwise drop kube-system, where azure-cns lives.
      for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
        const annotations = (byKind(objs, kind)[0] as any).metadata.annotations ?? {};
        expect(annotations['admissions.enforcer/disabled']).toBe(cloud === 'azure' ? 'true' : undefined);
      }
    }
  });

  it('is accepted by the API server (server-side dry-run), base and overlays', async () => {
    await kubectl(['apply', '--server-side', '-f', join(root, 'manifests/base/namespace.yaml')]); // dry-run does not create it
    for (const dir of ['manifests', 'manifests/overlays/aws', 'manifests/overlays/azure', 'manifests/overlays/gke', 'manifests/overlays/dry-run-reaper']) {
      const result = await kubectl(['apply', '--server-side', '--dry-run=server', '-k', join(root, dir)]);
      expect(result.stdout, dir).toMatch(/deployment.apps\/cilium-migration-guard-webhook serverside-applied \(server dry run\)/);
    }
    // cert-manager's CRDs are not installed here: everything else of that overlay.
    const certManager = (await render('manifests/overlays/cert-manager')).filter((o) => !o.apiVersion.startsWith('cert-manager.io/'));
    const result = await kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], certManager.map((o) => stringify(o)).join('---\n'));
    expect(result.stdout).toMatch(/validatingwebhookconfiguration.admissionregistration.k8s.io\/cilium-migration-guard serverside-applied/);
  });

  it('grants each ServiceAccount its calls and nothing more (kubectl auth can-i)', async () => {
    const rbac = (await render('manifests')).filter((o) => /ServiceAccount|Role|RoleBinding|Namespace/.test(o.kind));
    await kubectl(['apply', '--server-side', '-f', '-'], rbac.map((o) => stringify(o)).join('---\n'));
    const can = async (sa: string, args: string[]) => {
      const r = await plane().kubectl(['auth', 'can-i', ...args, `--as=system:serviceaccount:${NS}:${sa}`], { allowFail: true });
      return r.stdout.trim();
    };
    const check = async (sa: string, allowed: string[][], denied: string[][]) => {
      const results: Record<string, string> = {};
      for (const args of [...allowed, ...denied]) results[args.join(' ')] = await can(sa, args);
      expect(results).toEqual(Object.fromEntries([...allowed.map((a) => [a.join(' '), 'yes']), ...denied.map((a) => [a.join(' '), 'no'])]));
    };
    const ns = ['-n', NS];
    await check(
      WEBHOOK_SA,
      [
        ['list', 'nodes'],
        ['watch', 'nodes'],
        ['get', 'nodes'],
        ['list', 'pods', '-A'],
        ['watch', 'pods', '-A'],
        ['get', 'pods', '-n', 'default'],
        ['list', 'ciliumnodes.cilium.io'],
        ['watch', 'ciliumnodes.cilium.io'],
        ['list', 'namespaces'],
        ['watch', 'namespaces'],
        ['get', `secrets/${SECRET}`, ...ns],
        ['update', `secrets/${SECRET}`, ...ns],
        ['create', 'secrets', ...ns],
        ['get', `mutatingwebhookconfigurations/${CONFIGURATION_NAME}`],
        ['patch', `mutatingwebhookconfigurations/${CONFIGURATION_NAME}`],
        ['get', `validatingwebhookconfigurations/${CONFIGURATION_NAME}`],
        ['patch', `validatingwebhookconfigurations/${CONFIGURATION_NAME}`],
      ],
      [
        ['delete', 'pods', '-n', 'default'],
        ['create', 'pods', '--subresource=eviction', '-n', 'default'],
        ['update', 'nodes'],
        ['patch', 'nodes'],
        ['list', 'secrets', ...ns],
        ['list', 'secrets', '-A'],
        ['get', 'secrets/other', ...ns],
        ['get', `secrets/${SECRET}`, '-n', 'kube-system'],
        ['create', 'secrets', '-n', 'default'],
        ['delete', `secrets/${SECRET}`, ...ns],
        ['patch', `secrets/${SECRET}`, ...ns],
        ['patch', 'mutatingwebhookconfigurations/other'],
        ['list', 'mutatingwebhookconfigurations'],
        ['delete', `validatingwebhookconfigurations/${CONFIGURATION_NAME}`],
        ['update', `validatingwebhookconfigurations/${CONFIGURATION_NAME}`],
        ['get', 'ciliumendpoints.cilium.io', '-n', 'default'],
        ['create', 'events', '-n', 'default'],
        ['create', 'leases.coordination.k8s.io', ...ns],
        ['get', 'ciliumnodes.cilium.io'],
        ['update', 'namespaces'],
        ['patch', 'namespaces'],
        ['*', '*'],
      ],
    );
    await check(
      REAPER_SA,
      [
        ['list', 'pods', '-A'],
        ['watch', 'pods', '-A'],
        ['get', 'pods', '-n', 'default'],
        ['create', 'pods', '--subresource=eviction', '-n', 'default'],
        ['list', 'nodes'],
        ['watch', 'nodes'],
        ['list', 'ciliumnodes.cilium.io'],
        ['watch', 'ciliumnodes.cilium.io'],
        ['get', 'ciliumendpoints.cilium.io', '-n', 'default'],
        ['list', 'ciliumendpoints.cilium.io', '-A'],
        ['watch', 'ciliumendpoints.cilium.io', '-A'],
        ['create', 'events', '-n', 'default'],
        ['patch', 'events', '-n', 'default'],
        ['get', 'leases.coordination.k8s.io/cilium-migration-guard-reaper', ...ns],
        ['update', 'leases.coordination.k8s.io/cilium-migration-guard-reaper', ...ns],
        ['create', 'leases.coordination.k8s.io', ...ns],
        // Cilium's ConfigMap, by name only (the informer's fieldSelector metadata.name=cilium-config).
        ['get', 'configmaps/cilium-config', '-n', 'kube-system'],
        ['list', 'configmaps/cilium-config', '-n', 'kube-system'],
        ['watch', 'configmaps/cilium-config', '-n', 'kube-system'],
      ],
      [
        ['list', 'configmaps', '-n', 'kube-system'],
        ['get', 'configmaps/other', '-n', 'kube-system'],
        ['get', 'configmaps/cilium-config', '-n', 'default'],
        ['update', 'configmaps/cilium-config', '-n', 'kube-system'],
        // delete pods comes only with components/reaper-delete (reaper.action: delete)
        ['delete', 'pods', '-n', 'default'],
        ['get', 'nodes'],
        ['update', 'nodes'],
        ['create', 'pods', '-n', 'default'],
        ['patch', 'pods', '-n', 'default'],
        ['update', 'pods/status', '-n', 'default'],
        ['get', 'secrets', ...ns],
        ['list', 'secrets', '-A'],
        ['delete', 'ciliumnodes.cilium.io'],
        ['delete', 'ciliumendpoints.cilium.io', '-n', 'default'],
        ['create', 'leases.coordination.k8s.io', '-n', 'kube-system'],
        ['delete', 'leases.coordination.k8s.io/cilium-migration-guard-reaper', ...ns],
        ['update', 'leases.coordination.k8s.io/other', ...ns],
        ['patch', `mutatingwebhookconfigurations/${CONFIGURATION_NAME}`],
        ['*', '*'],
      ],
    );
  });

  it('the `reaper` command with the reaper ServiceAccount token: syncs, evicts an early pod, records Events, holds the Lease, no 403', async () => {
    // Before any webhook is registered: the pod webhook would otherwise refuse the early pod.
    const reaperKubeconfig = await kubeconfigFor(REAPER_SA);
    const NODE = 'node-cilium';
    const apply = (obj: unknown) => kubectl(['apply', '-f', '-'], JSON.stringify(obj));
    const podJson = async (namespace: string, name: string): Promise<any> => {
      const r = await plane().api('GET', `/api/v1/namespaces/${namespace}/pods/${name}`);
      if (r.status === 404) return undefined;
      if (r.status !== 200) throw new Error(`GET pod ${namespace}/${name}: ${r.status} ${r.body}`);
      return JSON.parse(r.body);
    };
    const poll = async <T>(what: string, fn: () => Promise<T | undefined>, check?: () => void): Promise<T> => {
      for (let i = 0; i < 150; i++) {
        check?.();
        const value = await fn().catch(() => undefined);
        if (value !== undefined) return value;
        await sleep(200);
      }
      throw new Error(`timed out waiting for ${what}`);
    };
    const deployment = (name: string) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: 'default' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { nodeSelector: { 'kubernetes.io/hostname': NODE }, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
        },
      },
    });
    /** The running pod of Deployment `name` (ReplicaSet controller, kube-scheduler, kwok). */
    const podOf = (name: string) =>
      poll(`a running pod of Deployment ${name}`, async () => {
        const pods = (await getJson(`/api/v1/namespaces/default/pods?labelSelector=app%3D${name}`)).items as any[];
        const live = pods.find(
          (p) =>
            !p.metadata.deletionTimestamp &&
            p.status?.podIP &&
            p.status.startTime &&
            p.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'),
        );
        return live;
      });

    // The early-pod race on a Cilium node (test/e2e/reaper.e2e.test.ts has the full story): a
    // Deployment's pod gets its IP; then Cilium is rolled out (its agent DaemonSet, with the
    // affinity the webhook gives it) and the agent turns Ready on the node; then a pod that starts
    // once Cilium is ready gets the same IP and a CiliumEndpoint.
    await apply({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: NODE }, spec: { ipam: { podCIDRs: [POD_CIDR] } } });
    await apply(deployment('web'));
    const early = await podOf('web');
    await sleep(Math.max(0, Date.parse(early.status.startTime) + 1_100 - Date.now())); // startTime has second precision
    await applyDaemonSetFixture(plane(), 'cilium', {
      edit: (ds) => {
        ds.spec.template.spec.affinity.nodeAffinity = {
          requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'cni', operator: 'In', values: ['cilium'] }] }] },
        };
      },
    });
    const [agent] = await waitForDaemonSetOn(plane(), 'kube-system', 'cilium', [NODE]);
    expect(agent!.ready).toBe(true);
    const ip = early.status.podIP as string;
    await apply(deployment('web-after'));
    const after = await podOf('web-after');
    await ciliumManages(plane(), after.metadata, ip, 1001);

    // The shipped config, with the grace period and resync shortened for the test; default action (evict).
    const configFile = join(work, 'reaper-config.yaml');
    await writeFile(configFile, `${await readFile(CONFIG_FILE, 'utf8')}\nreaper:\n  gracePeriodSeconds: 1\n  resyncSeconds: 5\n  debounceMs: 200\n`);
    const port = await freePort();
    const { KUBERNETES_SERVICE_HOST: _inCluster, ...outOfCluster } = process.env;
    const output: string[] = [];
    const proc = spawn(
      process.execPath,
      [
        'dist/cli.js',
        'reaper',
        '--kubeconfig',
        reaperKubeconfig,
        '--config',
        configFile,
        '--lease-namespace',
        NS,
        '--identity',
        'sa-reaper',
        '--metrics-host',
        '127.0.0.1',
        '--metrics-port',
        String(port),
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...outOfCluster, KUBECONFIG: '' } },
    );
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    reaper = { proc, exited };
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => output.push(d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => output.push(d));
    const alive = () => {
      if (proc.exitCode !== null) throw new Error(`reaper exited ${proc.exitCode}:\n${output.join('').slice(-3000)}`);
    };
    const url = `http://127.0.0.1:${port}`;
    try {
      // Ready = every cache synced: list and watch of pods, nodes, CiliumNodes and CiliumEndpoints
      // with exactly the ClusterRole of manifests/base/rbac-reaper.yaml.
      await poll('the reaper /readyz 200', async () => ((await fetch(`${url}/readyz`)).status === 200 ? true : undefined), alive);
      await poll(
        'the early web pod evicted',
        async () => {
          const p = await podJson('default', early.metadata.name);
          return !p || p.metadata.deletionTimestamp ? true : undefined;
        },
        alive,
      );
      const events = async (name: string): Promise<any[]> =>
        (await getJson(`/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D${name}`)).items.filter(
          (e: any) => e.reportingComponent === 'cilium-migration-guard',
        );
      const evict = await poll('an Evict Event on the early web pod', async () => (await events(early.metadata.name)).find((e) => e.action === 'Evict'), alive);
      expect(evict).toMatchObject({ reason: 'DuplicatePodIP', reportingInstance: 'sa-reaper', involvedObject: { kind: 'Pod', uid: early.metadata.uid } });
      const nodeEvent = await poll(
        'an Evict Event on the node',
        async () => (await events(NODE)).find((e) => e.involvedObject.kind === 'Node' && e.action === 'Evict' && e.related?.name === early.metadata.name),
        alive,
      );
      expect(nodeEvent.reportingInstance).toBe('sa-reaper');
      const lease = await getJson(`/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${REAPER_LEASE}`);
      expect(lease.spec.holderIdentity).toBe('sa-reaper');
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toContain('cmg_reaper_removals_total{action="evict",result="removed",reason="DuplicatePodIP"} 1');
      expect(metrics).toContain('cmg_reaper_leader 1');
      // The Cilium-managed pod with the same IP stays.
      expect((await podJson('default', after.metadata.name))?.metadata.deletionTimestamp).toBeUndefined();
    } finally {
      proc.kill('SIGTERM');
      await Promise.race([exited, sleep(20_000)]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
    expect(await exited).toBe(0);
    const log = output.join('');
    expect(log).toContain('reaper started');
    expect(log).toContain('released the lease');
    // Every call it made was allowed: no 403 anywhere (a denied list/watch would only retry and log).
    expect(log).not.toMatch(/\b403\b|forbidden/i);
    expect((await getJson(`/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${REAPER_LEASE}`)).spec.holderIdentity).toBeUndefined();
  });

  it('two `serve` replicas with the webhook token: one Secret, the same CA, caBundle injected, admission served', async () => {
    saKubeconfig = await kubeconfigFor(WEBHOOK_SA);
    const [portA, portB] = [await freePort(), await freePort()];
    await registerWebhooks(portA); // replica A is the one the API server calls

    const start = (port: number, name: string): Replica => {
      const certDir = join(work, `certs-${name}`);
      const lines: string[] = [];
      const proc = spawn(
        process.execPath,
        [
          'dist/cli.js',
          'serve',
          `--kubeconfig=${saKubeconfig}`,
          `--config=${CONFIG_FILE}`,
          `--cert-secret=${NS}/${SECRET}`,
          `--webhook-config=${CONFIGURATION_NAME}`,
          `--cert-dir=${certDir}`,
          '--host=127.0.0.1',
          `--port=${port}`,
        ],
        { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: '' } },
      );
      proc.stdout!.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
      proc.stderr!.setEncoding('utf8').on('data', (d: string) => process.stderr.write(`[serve ${name}] ${d}`));
      const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
      const log = () =>
        lines.flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        });
      return { proc, port, certDir, exited, log };
    };
    replicas.push(start(portA, 'a'), start(portB, 'b')); // at the same time: the create race

    const ready = async (r: Replica) => {
      for (let i = 0; i < 120; i++) {
        if (r.proc.exitCode !== null) throw new Error(`serve exited ${r.proc.exitCode}: ${JSON.stringify(r.log().slice(-5))}`);
        try {
          const ca = (await secretData())['ca.crt']!;
          const res = await new Promise<number>((resolve, reject) =>
            httpsRequest(`https://127.0.0.1:${r.port}/readyz`, { ca, agent: false, timeout: 2_000 }, (x) => (x.resume(), resolve(x.statusCode ?? 0)))
              .on('error', reject)
              .end(),
          );
          if (res === 200) return;
        } catch {
          /* not yet */
        }
        await sleep(250);
      }
      throw new Error(`replica on ${r.port} not ready: ${JSON.stringify(r.log().slice(-5))}`);
    };
    await Promise.all(replicas.map(ready));

    const secrets = await getJson(`/api/v1/namespaces/${NS}/secrets`);
    expect(secrets.items.map((s: any) => s.metadata.name)).toEqual([SECRET]);
    const data = await secretData();
    const [a, b] = replicas as [Replica, Replica];
    // Both replicas serve the Secret's pair; exactly one of them created it.
    expect(await readFile(join(a.certDir, 'tls.crt'), 'utf8')).toBe(data['tls.crt']);
    expect(await readFile(join(b.certDir, 'tls.crt'), 'utf8')).toBe(data['tls.crt']);
    const issued = replicas.flatMap((r) => r.log().filter((l) => l.msg === 'certificate Secret updated' && l.step === 'issue'));
    expect(issued).toHaveLength(1);
    expect(await caBundleOf('mutating')).toBe(data['ca.crt']);
    expect(await caBundleOf('validating')).toBe(data['ca.crt']);

    // The API server calls replica A (failurePolicy Fail): the DaemonSet comes back patched.
    await kubectl(['apply', '-f', '-'], JSON.stringify(awsNode('aws-node', 'kube-system')));
    const stored = JSON.parse((await kubectl(['get', 'daemonset', 'aws-node', '-n', 'kube-system', '-o', 'json'])).stdout);
    expect(stored.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms).toEqual([
      { matchExpressions: [{ key: 'cni', operator: 'NotIn', values: ['cilium'] }] },
    ]);

    for (const r of replicas) r.proc.kill('SIGTERM');
    expect(await Promise.all(replicas.map((r) => r.exited))).toEqual([0, 0]);
  });

  it('rotates serving certificates and the CA with two replicas sharing the Secret: one writer per step, zero failed requests', async () => {
    expect(saKubeconfig).not.toBe('');
    const [portA, portB] = [await freePort(), await freePort()];
    await registerWebhooks(portA); // the API server calls replica A; the direct load goes to both
    await plane().api('DELETE', `/api/v1/namespaces/${NS}/secrets/${SECRET}`); // start over with a short-lived CA
    await plane().createNamespace('load');

    // Every version of the Secret from here on, with when it arrived: a watch from the list's
    // resourceVersion misses none.
    const versions: Array<{ rv: string; at: number; material: CertMaterial }> = [];
    const watchErrors: string[] = [];
    const adminKc = new KubeConfig();
    adminKc.loadFromFile(plane().kubeconfigPath);
    const listed = await getJson(`/api/v1/namespaces/${NS}/secrets`);
    let watching = true;
    secretWatch = await new Watch(adminKc).watch(
      `/api/v1/namespaces/${NS}/secrets`,
      { resourceVersion: listed.metadata.resourceVersion, fieldSelector: `metadata.name=${SECRET}` },
      (type: string, secret: V1Secret) => {
        if (type !== 'ADDED' && type !== 'MODIFIED') return;
        const read = (key: string) => Buffer.from(secret.data?.[key] ?? '', 'base64').toString('utf8');
        versions.push({
          rv: secret.metadata?.resourceVersion ?? '',
          at: Date.now(),
          material: { caBundle: read('ca.crt'), caKey: read('ca.key'), cert: read('tls.crt'), key: read('tls.key') },
        });
      },
      (err: unknown) => {
        if (watching) watchErrors.push(`the Secret watch ended: ${String(err)}`);
      },
    );

    const config = loadConfigFile(CONFIG_FILE);
    const logger = createLogger({ level: 'warn' });
    view = await openView({ kubeconfig: saKubeconfig }, config, logger);
    const source = view;
    // Seconds instead of days: serving renewals every 3 s, the CA renewed 7 s into its 14 s.
    const policy = {
      caValidityMs: 14_000,
      caRenewBeforeMs: 7_000,
      servingValidityMs: 6_000,
      servingRenewBeforeMs: 3_000,
      caOverlapMs: 1_000,
      backdateMs: 1_000,
    };
    const failures: string[] = [];
    // What `serve --cert-secret --webhook-config` composes (src/commands/serve.ts), in-process so
    // the policy can be seconds: each replica its own client, controller, cert dir, metrics, server.
    const startReplica = async (name: string, port: number) => {
      const kc = kubeconfigAccess([saKubeconfig], { explicit: true });
      const metrics = new Metrics({ defaultMetrics: false });
      const certDir = join(work, `certs-rotation-${name}`);
      const certs = new CertController({
        kc,
        secret: { namespace: NS, name: SECRET },
        webhookConfig: CONFIGURATION_NAME,
        certDir,
        sans: servingCertSans({ namespace: NS }),
        logger,
        registry: metrics.registry,
        intervalMs: 250,
        policy,
      });
      const replica: { certs: CertController; server?: ServerHandle } = { certs };
      rotating.push(replica);
      await certs.bootstrap();
      const server = await startServer({
        handlers: [
          { path: '/mutate/daemonsets', handler: daemonSetAffinityHandler(config, source.view) },
          { path: '/validate/pods', handler: podPlacementHandler(config, source.view, source.reader) },
        ],
        readiness: () => ({ ready: true, detail: {} }),
        metrics,
        logger,
        certDir,
        host: '127.0.0.1',
        port,
      });
      replica.server = server;
      // The invariant itself, checked at the moment each new pair goes into service (a timing-based
      // load test alone could miss a short window): the API server already trusts its issuer.
      certs.onPairWritten(async () => {
        const cert = new X509Certificate(await readFile(join(certDir, 'tls.crt'), 'utf8'));
        const trusted = splitPem(await caBundleOf('mutating')).map((pem) => new X509Certificate(pem));
        if (!trusted.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey)))
          failures.push(`${name}: pair ${cert.fingerprint256} served before its CA was in caBundle`);
        await server.certWatcher.check();
      });
      certs.start();
      return { name, port, certs, metrics, certDir };
    };
    // Started together: both race for the create, then for every step.
    const [a, b] = await Promise.all([startReplica('a', portA), startReplica('b', portB)]);
    const both = [a, b];

    const fingerprints = new Map<string, Set<string>>(both.map((r) => [r.name, new Set<string>()]));
    const body = review(daemonSetRequest(awsNode('aws-node', 'kube-system')));
    const deadline = Date.now() + 17_000;
    // Direct calls to both replicas in turn, trusting what the API server trusts: the caBundle.
    const direct = (async () => {
      for (let i = 0; i < 300 && Date.now() < deadline + 5_000; i++) {
        const r = both[i % 2]!;
        try {
          const res = await post(`https://127.0.0.1:${r.port}/mutate/daemonsets`, await caBundleOf('mutating'), body);
          fingerprints.get(r.name)!.add(res.fingerprint);
          if (res.status !== 200 || JSON.parse(res.body).response?.patchType !== 'JSONPatch')
            failures.push(`direct ${r.name} ${i}: ${res.status} ${res.body.slice(0, 200)}`);
        } catch (err) {
          failures.push(`direct ${r.name} ${i}: ${(err as Error).message}`);
        }
        await sleep(Math.max(0, (deadline - Date.now()) / (300 - i) - 5));
      }
    })();
    // Through the API server: DaemonSets are failurePolicy Fail, so a failed call fails the create.
    let created = 0;
    const viaApi = (async () => {
      for (let i = 0; i < 60 && Date.now() < deadline; i++) {
        const r = await plane().api('POST', '/apis/apps/v1/namespaces/load/daemonsets', awsNode(`aws-node-${i}`, 'load', NO_NODE));
        if (r.status !== 201 || !r.body.includes('"NotIn"')) failures.push(`api ${i}: ${r.status} ${r.body.slice(0, 300)}`);
        else created++;
        await sleep(300);
      }
    })();
    await Promise.all([direct, viaApi]);

    // Quiesce: no more timer passes; reconcile() runs after any pass in flight. After a round of
    // passes in which neither replica wrote, each has synced the newest pair and injected the bundle.
    for (const r of both) r.certs.stop();
    for (let round = 0; round < 5; round++) {
      const wrote = [];
      for (const r of both) wrote.push(...(await r.certs.reconcile()).steps);
      if (wrote.length === 0) break; // a round in which neither wrote: both hold the same version
    }
    const finalRv = (await getJson(`/api/v1/namespaces/${NS}/secrets/${SECRET}`)).metadata.resourceVersion as string;
    for (let i = 0; i < 100 && versions.at(-1)?.rv !== finalRv; i++) await sleep(100);
    watching = false;
    secretWatch.abort();

    expect(failures).toEqual([]);
    expect(watchErrors).toEqual([]);
    // Enough creates to overlap the rotations; the exact number depends on the machine's speed.
    expect(created).toBeGreaterThanOrEqual(10);

    // Exactly one writer per step. Each Secret version is one step applied to the version before
    // it, and the steps the replicas counted (summed) are exactly these versions, kind by kind.
    expect(versions.at(-1)?.rv).toBe(finalRv);
    expect(new Set(versions.map((v) => v.rv)).size).toBe(versions.length);
    const kinds = versions.map((v, i) => stepBetween(versions[i - 1]?.material, v.material));
    expect(kinds).not.toContain('not-one-step');
    const counted = async (step: string) => {
      let sum = 0;
      for (const r of both)
        sum += Number(new RegExp(`cmg_certificate_steps_total\\{result="${step}"\\} (\\d+)`).exec(await r.metrics.registry.metrics())?.[1] ?? 0);
      return sum;
    };
    const byKind = (kind: string) => kinds.filter((k) => k === kind).length;
    const stepKinds = ['issue', 'add-ca', 'reissue-serving', 'prune'];
    const countedByKind = Object.fromEntries(await Promise.all(stepKinds.map(async (k) => [k, await counted(k)])));
    expect(countedByKind).toEqual(Object.fromEntries(stepKinds.map((k) => [k, byKind(k)])));
    expect(await counted('error')).toBe(0);
    expect({ issue: byKind('issue'), addCa: byKind('add-ca') >= 1, prune: byKind('prune') >= 1, reissue: byKind('reissue-serving') >= 3 }).toEqual({
      issue: 1,
      addCa: true,
      prune: true,
      reissue: true,
    });
    // A second writer of the same step would show up as the same step again right after it: the
    // planner renews a serving certificate from the same CA at most every 6 - 3 s (minus 1 s of
    // X.509 second precision), and adds a CA at most every 14 - 7 s. Duplicates come within ms.
    const issuerOf = (m: CertMaterial) => {
      const state = inspect(m);
      return typeof state === 'string' ? state : state.serving.issuer?.x509.fingerprint256;
    };
    const tooSoon: string[] = [];
    let lastReissue: { at: number; issuer: string | undefined } | undefined;
    let lastAddCa: number | undefined;
    versions.forEach((v, i) => {
      if (kinds[i] === 'reissue-serving') {
        const issuer = issuerOf(v.material);
        if (lastReissue && lastReissue.issuer === issuer && v.at - lastReissue.at < 1_000)
          tooSoon.push(`reissue ${v.rv} ${v.at - lastReissue.at} ms after the last`);
        lastReissue = { at: v.at, issuer };
      }
      if (kinds[i] === 'add-ca') {
        if (lastAddCa !== undefined && v.at - lastAddCa < 3_000) tooSoon.push(`add-ca ${v.rv} ${v.at - lastAddCa} ms after the last`);
        lastAddCa = v.at;
      }
      // A prune drops only CAs that had expired when it was written.
      if (kinds[i] === 'prune') {
        const kept = new Set(splitPem(v.material.caBundle));
        for (const pem of splitPem(versions[i - 1]!.material.caBundle).filter((p) => !kept.has(p))) {
          if (new X509Certificate(pem).validToDate.getTime() > v.at) tooSoon.push(`prune ${v.rv} dropped a CA before it expired`);
        }
      }
    });
    expect(tooSoon).toEqual([]);

    // Both replicas switched pairs mid-load, and both end up serving the Secret's pair, which
    // verifies against the caBundle the API server uses (the handshake trusts only that bundle).
    const final = versions.at(-1)!.material;
    const state = inspect(final);
    if (typeof state === 'string') throw new Error(state);
    expect(state.serving.issuer).toBeDefined();
    expect(state.cas.length).toBeLessThanOrEqual(3);
    expect(await caBundleOf('mutating')).toBe(final.caBundle);
    expect(await caBundleOf('validating')).toBe(final.caBundle);
    for (const r of both) {
      expect(fingerprints.get(r.name)!.size, r.name).toBeGreaterThanOrEqual(2);
      expect(await readFile(join(r.certDir, 'tls.crt'), 'utf8')).toBe(final.cert);
      const res = await post(`https://127.0.0.1:${r.port}/mutate/daemonsets`, final.caBundle, body);
      expect(res.status).toBe(200);
      expect(res.fingerprint).toBe(new X509Certificate(final.cert).fingerprint256);
    }
  });
});

type StepKind = 'issue' | 'add-ca' | 'reissue-serving' | 'prune' | 'not-one-step';

/** Which lifecycle step turns `prev` into `next` (src/certs/issue.ts nextMaterial), by what changed. */
function stepBetween(prev: CertMaterial | undefined, next: CertMaterial): StepKind {
  if (!prev) return 'issue';
  const [prevCas, nextCas] = [splitPem(prev.caBundle), splitPem(next.caBundle)];
  const samePair = prev.cert === next.cert && prev.key === next.key;
  const sameCa = prev.caBundle === next.caBundle && prev.caKey === next.caKey;
  if (sameCa && !samePair && prev.cert !== next.cert && prev.key !== next.key) return 'reissue-serving';
  if (samePair && prev.caKey !== next.caKey && nextCas.length === prevCas.length + 1 && prevCas.every((pem, i) => nextCas[i] === pem)) return 'add-ca';
  if (samePair && prev.caKey === next.caKey && nextCas.length < prevCas.length && nextCas.every((pem) => prevCas.includes(pem))) return 'prune';
  return 'not-one-step';
}
