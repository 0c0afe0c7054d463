// The install, proven on a real kube-apiserver (test/harness/controlplane.ts):
// - manifests/ and its overlays render, and the API server accepts them (server-side dry-run);
// - RBAC applied for real: each ServiceAccount may make exactly its calls (kubectl auth can-i);
// - two `node dist/cli.js serve` replicas, started together with the webhook's ServiceAccount
//   token, create ONE certificate Secret, inject its CA into both webhook configurations, and
//   serve admission called by the API server;
// - certificate rotation (serving renewals, a CA rotation with old+new CA, a prune) under a
//   bounded load of direct HTTPS requests and DaemonSet creates through the API server: no
//   request fails.
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
import { KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertController } from '../../src/certs/controller.js';
import { inspect, splitPem } from '../../src/certs/plan.js';
import { openView, type ViewSource } from '../../src/commands/common.js';
import { loadConfigFile } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { Metrics } from '../../src/metrics.js';
import { CONFIGURATION_NAME, mutatingWebhookConfiguration, validatingWebhookConfiguration } from '../../src/registration.js';
import { startServer, type ServerHandle } from '../../src/server/serve.js';
import { servingCertSans } from '../../src/server/tls.js';
import { daemonSetAffinityHandler } from '../../src/webhooks/daemonset-affinity.js';
import { podPlacementHandler } from '../../src/webhooks/pod-placement.js';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { daemonSetRequest, review } from '../support/reviews.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CRD = fileURLToPath(new URL('./crds/ciliumnodes.yaml', import.meta.url));
const NS = 'cilium-migration-guard';
const SECRET = 'cilium-migration-guard-tls';
const WEBHOOK_SA = 'cilium-migration-guard-webhook';
const REAPER_SA = 'cilium-migration-guard-reaper';
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
        res.setEncoding('utf8').on('data', (d: string) => (data += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body: data, fingerprint }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

/** A minimal CiliumEndpoint CRD (namespaced, cilium.io/v2): kubectl auth can-i resolves resources by discovery. */
const CILIUM_ENDPOINT_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'ciliumendpoints.cilium.io' },
  spec: {
    group: 'cilium.io',
    scope: 'Namespaced',
    names: { plural: 'ciliumendpoints', singular: 'ciliumendpoint', kind: 'CiliumEndpoint', listKind: 'CiliumEndpointList', shortNames: ['cep'] },
    versions: [{ name: 'v2', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
  },
};

/** A DaemonSet the aws preset gives the `legacy` role: the webhook patches it. */
function awsNode(name: string, namespace: string) {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace, labels: { 'k8s-app': 'aws-node' } },
    spec: {
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'aws-node', image: 'registry.k8s.io/pause:3.10' }] } },
    },
  };
}

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
  let server: ServerHandle | undefined;
  let certs: CertController | undefined;

  const plane = (): ControlPlane => {
    if (!cp) throw new Error('control plane not started');
    return cp;
  };
  const kubectl = (args: string[], input?: string) => plane().kubectl(args, input === undefined ? {} : { input });
  const render = async (dir: string): Promise<Obj[]> =>
    parseAllDocuments((await kubectl(['kustomize', join(root, dir)])).stdout).map((d) => d.toJSON() as Obj);
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

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'cmg-install-'));
    const build = promisify(execFile)('npm', ['run', 'build'], { cwd: root, timeout: 180_000 });
    cp = await startControlPlane({
      nodes: [{ name: 'node-legacy' }, { name: 'node-cilium', labels: { cni: 'cilium' } }],
      log: (l) => process.stderr.write(`[controlplane] ${l}\n`),
    });
    await build;
    await kubectl(['apply', '-f', CRD]);
    await kubectl(['apply', '-f', '-'], stringify(CILIUM_ENDPOINT_CRD));
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/ciliumnodes.cilium.io', 'crd/ciliumendpoints.cilium.io']);
  }, 40 * 60_000);

  afterAll(async () => {
    certs?.stop();
    await server?.close();
    await view?.stop();
    for (const r of replicas) {
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

    const reaperArgs = (objs: Obj[]) => (objs.find((o) => o.metadata.name === 'cilium-migration-guard-reaper' && o.kind === 'Deployment') as any).spec.template.spec.containers[0].args;
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
        ['list', 'nodes'], ['watch', 'nodes'], ['get', 'nodes'],
        ['list', 'pods', '-A'], ['watch', 'pods', '-A'], ['get', 'pods', '-n', 'default'],
        ['list', 'ciliumnodes.cilium.io'], ['watch', 'ciliumnodes.cilium.io'],
        ['get', `secrets/${SECRET}`, ...ns], ['update', `secrets/${SECRET}`, ...ns], ['create', 'secrets', ...ns],
        ['get', `mutatingwebhookconfigurations/${CONFIGURATION_NAME}`], ['patch', `mutatingwebhookconfigurations/${CONFIGURATION_NAME}`],
        ['get', `validatingwebhookconfigurations/${CONFIGURATION_NAME}`], ['patch', `validatingwebhookconfigurations/${CONFIGURATION_NAME}`],
      ],
      [
        ['delete', 'pods', '-n', 'default'], ['create', 'pods', '--subresource=eviction', '-n', 'default'], ['update', 'nodes'], ['patch', 'nodes'],
        ['list', 'secrets', ...ns], ['list', 'secrets', '-A'], ['get', 'secrets/other', ...ns], ['get', `secrets/${SECRET}`, '-n', 'kube-system'],
        ['create', 'secrets', '-n', 'default'], ['delete', `secrets/${SECRET}`, ...ns], ['patch', `secrets/${SECRET}`, ...ns],
        ['patch', 'mutatingwebhookconfigurations/other'], ['list', 'mutatingwebhookconfigurations'],
        ['delete', `validatingwebhookconfigurations/${CONFIGURATION_NAME}`], ['update', `validatingwebhookconfigurations/${CONFIGURATION_NAME}`],
        ['get', 'ciliumendpoints.cilium.io', '-n', 'default'], ['create', 'events', '-n', 'default'], ['create', 'leases.coordination.k8s.io', ...ns],
        ['get', 'ciliumnodes.cilium.io'], ['*', '*'],
      ],
    );
    await check(
      REAPER_SA,
      [
        ['list', 'pods', '-A'], ['watch', 'pods', '-A'], ['get', 'pods', '-n', 'default'],
        ['create', 'pods', '--subresource=eviction', '-n', 'default'],
        ['list', 'nodes'], ['watch', 'nodes'], ['list', 'ciliumnodes.cilium.io'], ['watch', 'ciliumnodes.cilium.io'],
        ['get', 'ciliumendpoints.cilium.io', '-n', 'default'], ['list', 'ciliumendpoints.cilium.io', '-A'], ['watch', 'ciliumendpoints.cilium.io', '-A'],
        ['create', 'events', '-n', 'default'], ['patch', 'events', '-n', 'default'],
        ['get', 'leases.coordination.k8s.io/cilium-migration-guard-reaper', ...ns], ['update', 'leases.coordination.k8s.io/cilium-migration-guard-reaper', ...ns],
        ['create', 'leases.coordination.k8s.io', ...ns],
      ],
      [
        // delete pods comes only with components/reaper-delete (reaper.action: delete)
        ['delete', 'pods', '-n', 'default'],
        ['get', 'nodes'], ['update', 'nodes'], ['create', 'pods', '-n', 'default'], ['patch', 'pods', '-n', 'default'], ['update', 'pods/status', '-n', 'default'],
        ['get', 'secrets', ...ns], ['list', 'secrets', '-A'], ['delete', 'ciliumnodes.cilium.io'], ['delete', 'ciliumendpoints.cilium.io', '-n', 'default'],
        ['create', 'leases.coordination.k8s.io', '-n', 'kube-system'], ['delete', 'leases.coordination.k8s.io/cilium-migration-guard-reaper', ...ns],
        ['update', 'leases.coordination.k8s.io/other', ...ns], ['patch', `mutatingwebhookconfigurations/${CONFIGURATION_NAME}`], ['*', '*'],
      ],
    );
  });

  it('two `serve` replicas with the webhook token: one Secret, the same CA, caBundle injected, admission served', async () => {
    const token = (await kubectl(['create', 'token', WEBHOOK_SA, '-n', NS, '--duration=1h'])).stdout.trim();
    saKubeconfig = join(work, 'webhook.kubeconfig');
    await writeFile(
      saKubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'cmg', cluster: { server: plane().server, 'certificate-authority': plane().caFile } }],
        users: [{ name: WEBHOOK_SA, user: { token } }],
        contexts: [{ name: 'cmg', context: { cluster: 'cmg', user: WEBHOOK_SA } }],
        'current-context': 'cmg',
      }),
      { mode: 0o600 },
    );
    const [portA, portB] = [await freePort(), await freePort()];
    await registerWebhooks(portA); // replica A is the one the API server calls

    const start = (port: number, name: string): Replica => {
      const certDir = join(work, `certs-${name}`);
      const lines: string[] = [];
      const proc = spawn(
        process.execPath,
        ['dist/cli.js', 'serve', `--kubeconfig=${saKubeconfig}`, `--config=${CONFIG_FILE}`, `--cert-secret=${NS}/${SECRET}`,
          `--webhook-config=${CONFIGURATION_NAME}`, `--cert-dir=${certDir}`, '--host=127.0.0.1', `--port=${port}`],
        { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: '' } },
      );
      proc.stdout!.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
      proc.stderr!.setEncoding('utf8').on('data', (d: string) => process.stderr.write(`[serve ${name}] ${d}`));
      const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
      return { proc, port, certDir, exited, log: () => lines.flatMap((l) => { try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; } }) };
    };
    replicas.push(start(portA, 'a'), start(portB, 'b')); // at the same time: the create race

    const ready = async (r: Replica) => {
      for (let i = 0; i < 120; i++) {
        if (r.proc.exitCode !== null) throw new Error(`serve exited ${r.proc.exitCode}: ${JSON.stringify(r.log().slice(-5))}`);
        try {
          const ca = (await secretData())['ca.crt']!;
          const res = await new Promise<number>((resolve, reject) =>
            httpsRequest(`https://127.0.0.1:${r.port}/readyz`, { ca, agent: false, timeout: 2_000 }, (x) => (x.resume(), resolve(x.statusCode ?? 0))).on('error', reject).end(),
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

  it('rotates serving certificates and the CA under load with zero failed requests', async () => {
    expect(saKubeconfig).not.toBe('');
    const port = await freePort();
    await registerWebhooks(port);
    await plane().api('DELETE', `/api/v1/namespaces/${NS}/secrets/${SECRET}`); // start over with a short-lived CA
    await kubectl(['create', 'namespace', 'load']);

    const kc = new KubeConfig();
    kc.loadFromFile(saKubeconfig);
    const config = loadConfigFile(CONFIG_FILE);
    const logger = createLogger({ level: 'warn' });
    const metrics = new Metrics({ defaultMetrics: false });
    const certDir = join(work, 'certs-rotation');
    // Seconds instead of days: serving renewals every 3 s, the CA renewed 7 s into its 14 s.
    certs = new CertController({
      kc,
      secret: { namespace: NS, name: SECRET },
      webhookConfig: CONFIGURATION_NAME,
      certDir,
      sans: servingCertSans({ namespace: NS }),
      logger,
      registry: metrics.registry,
      intervalMs: 250,
      policy: { caValidityMs: 14_000, caRenewBeforeMs: 7_000, servingValidityMs: 6_000, servingRenewBeforeMs: 3_000, caOverlapMs: 1_000, backdateMs: 1_000 },
    });
    await certs.bootstrap();
    view = await openView({ kubeconfig: saKubeconfig }, config, logger);
    server = await startServer({
      handlers: [
        { path: '/mutate/daemonsets', handler: daemonSetAffinityHandler(config) },
        { path: '/validate/pods', handler: podPlacementHandler(config, view.view, view.reader) },
      ],
      readiness: () => ({ ready: true, detail: {} }),
      metrics,
      logger,
      certDir,
      host: '127.0.0.1',
      port,
    });
    const watcher = server.certWatcher;
    const failures: string[] = [];
    // The invariant itself, checked at the moment each new pair goes into service (a timing-based
    // load test alone could miss a short window): the API server already trusts its issuer.
    certs.onPairWritten(async () => {
      const cert = new X509Certificate(await readFile(join(certDir, 'tls.crt'), 'utf8'));
      const trusted = splitPem(await caBundleOf('mutating')).map((pem) => new X509Certificate(pem));
      if (!trusted.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) failures.push(`pair ${cert.fingerprint256} served before its CA was in caBundle`);
      await watcher.check();
    });
    certs.start();

    const fingerprints = new Set<string>();
    const body = review(daemonSetRequest(awsNode('aws-node', 'kube-system')));
    const deadline = Date.now() + 17_000;
    // Direct calls, trusting what the API server trusts: the caBundle of the configuration.
    const direct = (async () => {
      for (let i = 0; i < 300 && Date.now() < deadline + 5_000; i++) {
        try {
          const res = await post(`https://127.0.0.1:${port}/mutate/daemonsets`, await caBundleOf('mutating'), body);
          fingerprints.add(res.fingerprint);
          if (res.status !== 200 || JSON.parse(res.body).response?.patchType !== 'JSONPatch') failures.push(`direct ${i}: ${res.status} ${res.body.slice(0, 200)}`);
        } catch (err) {
          failures.push(`direct ${i}: ${(err as Error).message}`);
        }
        await sleep(Math.max(0, (deadline - Date.now()) / (300 - i) - 5));
      }
    })();
    // Through the API server: DaemonSets are failurePolicy Fail, so a failed call fails the create.
    let created = 0;
    const viaApi = (async () => {
      for (let i = 0; i < 60 && Date.now() < deadline; i++) {
        const r = await plane().api('POST', '/apis/apps/v1/namespaces/load/daemonsets', awsNode(`aws-node-${i}`, 'load'));
        if (r.status !== 201 || !r.body.includes('"NotIn"')) failures.push(`api ${i}: ${r.status} ${r.body.slice(0, 300)}`);
        else created++;
        await sleep(300);
      }
    })();
    await Promise.all([direct, viaApi]);

    expect(failures).toEqual([]);
    // Enough creates to overlap the rotations; the exact number depends on the machine's speed.
    expect(created).toBeGreaterThanOrEqual(10);
    const steps = await metrics.text();
    const count = (step: string) => Number(new RegExp(`cmg_certificate_steps_total\\{result="${step}"\\} (\\d+)`).exec(steps)?.[1] ?? 0);
    expect({ issue: count('issue'), addCa: count('add-ca') >= 1, prune: count('prune') >= 1, reissue: count('reissue-serving') >= 3, errors: count('error') }).toEqual({
      issue: 1,
      addCa: true,
      prune: true,
      reissue: true,
      errors: 0,
    });
    // The server really switched pairs mid-load (how many of the reissues a client happens to see
    // depends on timing; the step counts above prove they all happened).
    expect(fingerprints.size).toBeGreaterThanOrEqual(2);
    // The Secret is consistent: the pair is signed by a CA of the bundle, as served.
    const data = await secretData();
    const state = inspect({ caBundle: data['ca.crt']!, caKey: data['ca.key']!, cert: data['tls.crt']!, key: data['tls.key']! });
    if (typeof state === 'string') throw new Error(state);
    expect(state.serving.issuer).toBeDefined();
    expect(state.cas.length).toBeLessThanOrEqual(3);
  });
});
