// Runs the real CLI (`node dist/cli.js serve`) against a local control plane and registers its
// webhooks there, exactly as an operator would: clientConfig.url on 127.0.0.1 plus the caBundle.
// Shared by the end-to-end tests and `npm run local`.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mutatingWebhookConfiguration, validatingWebhookConfiguration, type FailurePolicy } from '../../src/registration.js';
import { freePorts, httpGet, startChild, stopChild, waitFor, type Child, type ControlPlane } from './controlplane.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist', 'cli.js');
export const CRD_DIR = join(ROOT, 'test', 'e2e', 'crds');
export const OWN_NAMESPACE = 'cilium-migration-guard';

let buildPromise: Promise<void> | undefined;

/** Compiles src/ into dist/ once per process: the tests run the same dist/ the image ships. */
export function buildDist(): Promise<void> {
  buildPromise ??= new Promise<void>((res, rej) => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const child = spawn(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', rej);
    child.on('close', (code) => (code === 0 ? res() : rej(new Error(`tsc build failed (exit ${code}):\n${out}`))));
  });
  return buildPromise;
}

/** Installs the Cilium CRDs this project reads (CiliumNode, CiliumEndpoint) and waits until they are served. */
export async function installCiliumCrds(cp: ControlPlane): Promise<void> {
  await cp.kubectl(['apply', '-f', CRD_DIR]);
  await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', '-f', CRD_DIR]);
}

function httpsGet(url: string, ca: string): Promise<number> {
  return new Promise((res, rej) => {
    const req = httpsRequest(url, { ca, timeout: 2_000 }, (r) => {
      r.resume();
      r.on('end', () => res(r.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end();
  });
}

export interface Guard {
  url: string;
  port: number;
  caPem: string;
  certDir: string;
  logPath: string;
  child: Child;
  /** Registers both webhooks cluster-wide and waits until the API server calls them. */
  register(failurePolicy?: { daemonsets?: FailurePolicy; pods?: FailurePolicy }): Promise<void>;
  /** Stops the webhook process (SIGTERM, then SIGKILL after a bound). Registrations stay. */
  stop(): Promise<void>;
  logs(): string;
  /** GET /metrics over the serving TLS port (the Prometheus text; 3 s bound). */
  metrics(): Promise<string>;
}

export interface GuardOptions {
  /** Where certs/ and logs/ go (default: the control plane's temp dir). */
  dir?: string;
  /** Extra `serve` flags, e.g. ['--node-label', 'io.cilium.migration/cilium-default=true']. */
  args?: string[];
  /** Which command to run (default serve). */
  command?: string;
  /** Another build's cli.js (the bench's A/B); default dist/cli.js. */
  cli?: string;
}

export async function startGuard(cp: ControlPlane, options: GuardOptions = {}): Promise<Guard> {
  await buildDist();
  const dir = options.dir ?? cp.dir;
  const certDir = join(dir, 'guard-certs');
  await mkdir(join(dir, 'logs'), { recursive: true });
  const [port] = (await freePorts(1)) as [number];
  const { KUBERNETES_SERVICE_HOST: _inCluster, ...env } = process.env;
  const child = startChild(
    'cilium-migration-guard',
    process.execPath,
    [
      options.cli ?? CLI,
      options.command ?? 'serve',
      '--kubeconfig',
      cp.kubeconfigPath,
      '--cert-dir',
      certDir,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      ...(options.args ?? []),
    ],
    dir,
    env,
  );
  const url = `https://127.0.0.1:${port}`;
  const caFile = join(certDir, 'ca.crt');
  const logs = () => (existsSync(child.logPath) ? readFileSync(child.logPath, 'utf8') : '');
  try {
    await waitFor(
      'the webhook to report ready (/readyz)',
      async () => (existsSync(caFile) && (await httpsGet(`${url}/readyz`, readFileSync(caFile, 'utf8'))) === 200 ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 200, children: [child] },
    );
  } catch (err) {
    await stopChild(child);
    throw new Error(`${(err as Error).message}\n--- webhook log:\n${logs().slice(-4000)}`, { cause: err });
  }
  const caPem = readFileSync(caFile, 'utf8');

  const register = async (failurePolicy?: { daemonsets?: FailurePolicy; pods?: FailurePolicy }) => {
    const options = { endpoint: { url }, caPem, ownNamespace: OWN_NAMESPACE, ...(failurePolicy ? { failurePolicy } : {}) };
    const list = { apiVersion: 'v1', kind: 'List', items: [mutatingWebhookConfiguration(options), validatingWebhookConfiguration(options)] };
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(list) });
    // The API server picks registrations up through its own informer: probe with a server-side
    // dry run of an old-CNI DaemonSet until the mutating webhook patches it.
    const probe = {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'aws-node', namespace: 'kube-system' },
      spec: {
        selector: { matchLabels: { app: 'probe' } },
        template: { metadata: { labels: { app: 'probe' } }, spec: { containers: [{ name: 'c', image: 'probe' }] } },
      },
    };
    await waitFor(
      'the API server to call the registered webhooks',
      async () => {
        const r = await cp.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], { input: JSON.stringify(probe), allowFail: true });
        return r.code === 0 && r.stdout.includes('"NotIn"') ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, children: [child] },
    );
  };

  return {
    url,
    port,
    caPem,
    certDir,
    logPath: child.logPath,
    child,
    register,
    stop: () => stopChild(child),
    logs,
    metrics: () => getText(`${url}/metrics`, caPem),
  };
}

function getText(url: string, ca: string, timeoutMs = 3_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export interface ReaperProcess {
  /** http://127.0.0.1:PORT: /healthz, /readyz, /metrics */
  url: string;
  logPath: string;
  child: Child;
  stop(): Promise<void>;
}

/**
 * Runs `node dist/cli.js reaper` against the control plane, in acting mode with leader election on
 * a Lease in the project's namespace (created if missing), and waits until its caches have synced.
 */
export async function startReaper(cp: ControlPlane, options: { dir?: string; args?: string[]; cli?: string } = {}): Promise<ReaperProcess> {
  await buildDist();
  const dir = options.dir ?? cp.dir;
  await mkdir(join(dir, 'logs'), { recursive: true });
  await cp.kubectl(['create', 'namespace', OWN_NAMESPACE], { allowFail: true });
  const [port] = (await freePorts(1)) as [number];
  const { KUBERNETES_SERVICE_HOST: _inCluster, ...env } = process.env;
  const child = startChild(
    'reaper',
    process.execPath,
    [
      options.cli ?? CLI,
      'reaper',
      '--kubeconfig',
      cp.kubeconfigPath,
      '--lease-namespace',
      OWN_NAMESPACE,
      '--identity',
      'local-reaper',
      '--metrics-host',
      '127.0.0.1',
      '--metrics-port',
      String(port),
      ...(options.args ?? []),
    ],
    dir,
    env,
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor('the reaper to report ready (/readyz)', async () => ((await httpGet(`${url}/readyz`, 2_000)).status === 200 ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 200,
      children: [child],
    });
  } catch (err) {
    await stopChild(child);
    const log = existsSync(child.logPath) ? readFileSync(child.logPath, 'utf8') : '';
    throw new Error(`${(err as Error).message}\n--- reaper log:\n${log.slice(-4000)}`, { cause: err });
  }
  return { url, logPath: child.logPath, child, stop: () => stopChild(child) };
}
