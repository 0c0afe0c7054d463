// A real, throwaway Kubernetes control plane for end-to-end tests, built from Go modules
// (test/tools/build.sh): etcd, kube-apiserver, kube-scheduler, kube-controller-manager and kwok
// (fake nodes whose pods turn Running with an IP), all on 127.0.0.1 with free ports and a fresh
// temp directory.
//
// kube-controller-manager runs the controllers a workload cluster relies on (CONTROLLERS below:
// Deployments, ReplicaSets, DaemonSets, StatefulSets, Jobs, garbage collection, namespaces,
// ServiceAccounts and their tokens, EndpointSlices, PodDisruptionBudget status), each under its own
// ServiceAccount with the RBAC roles kube-apiserver bootstraps (--use-service-account-credentials),
// signing tokens with the key kube-apiserver verifies. Node lifecycle is kwok's: it writes node
// status, leases and pod status, and the node controllers that would fight it are left out (see
// CONTROLLERS). So DaemonSets get their pods from the DaemonSet controller, evicted pods come back
// through their ReplicaSet, and evictions are checked against the PDB status the disruption
// controller computed, as in a real cluster.
//
// Pods need their namespace's "default" ServiceAccount (the ServiceAccount admission plugin is on):
// the serviceaccount controller creates it right after the namespace; createNamespace() waits for it.
// Dependencies: Node built-ins and `yaml` only.

import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, fstatSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { request as httpsRequest, type Agent } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const toolsSrcDir = resolve(here, '..', 'tools');

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubectlOptions {
  /** Written to kubectl's stdin (e.g. a manifest for `apply -f -`). */
  input?: string;
  /** Do not throw on a non-zero exit code. */
  allowFail?: boolean;
  /** Kill kubectl after this many ms (default 60 000). */
  timeoutMs?: number;
}

export interface ControlPlane extends ControlPlaneInfo {
  kubectl(args: string[], opts?: KubectlOptions): Promise<KubectlResult>;
  /** Raw API call with the admin token; body is JSON-encoded when given. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }>;
  /** Creates fake nodes managed by kwok and waits until they are Ready. */
  addNodes(nodes: FakeNode[]): Promise<void>;
  /**
   * Creates a namespace (labels optional; an existing one is left as it is) and waits until the
   * serviceaccount controller has created its "default" ServiceAccount, without which the
   * ServiceAccount admission plugin refuses pods there.
   */
  createNamespace(name: string, labels?: Record<string, string>): Promise<void>;
  /** The running process of a component ('etcd', 'kube-apiserver', ...), for fault tests. */
  process(name: string): Child | undefined;
  /** Starts a component again with its exact command line and environment (same ports, certs, data); it must have exited. */
  restart(name: string): Child;
  /** Stops every process and removes the temp dir; a no-op on a shared control plane (attachControlPlane). */
  stop(): Promise<void>;
}

/** What a test process needs to use a control plane another process runs (serializable). */
export interface ControlPlaneInfo {
  kubeconfigPath: string;
  /** https://127.0.0.1:PORT */
  server: string;
  /** Bearer token of an admin user (group system:masters). */
  token: string;
  /** CA bundle that verifies the API server's serving certificate. */
  caFile: string;
  auditLogPath: string;
  /** The temp directory holding everything (removed by stop()). */
  dir: string;
  binDir: string;
  etcdEndpoint: string;
}

export interface FakeNode {
  name: string;
  labels?: Record<string, string>;
}

export interface StartOptions {
  nodes?: FakeNode[];
  /** Audit policy YAML; defaults to DEFAULT_AUDIT_POLICY. */
  auditPolicy?: string;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Extra kube-apiserver flags, e.g. ['--enable-admission-plugins=...']. */
  extraApiServerArgs?: string[];
  /** Bound on each readiness wait (default 90 000 ms). */
  readyTimeoutMs?: number;
  /** Run kube-controller-manager (default true). */
  controllerManager?: boolean;
  /** Its --controllers list (default CONTROLLERS), e.g. [...CONTROLLERS, 'taint-eviction-controller']. */
  controllers?: readonly string[];
  /** Extra kube-controller-manager flags. */
  extraControllerManagerArgs?: string[];
}

/**
 * The kube-controller-manager controllers the harness runs (--controllers), by their names in
 * cmd/kube-controller-manager/names/controller_names.go of the pinned Kubernetes, and why each:
 */
export const CONTROLLERS: readonly string[] = [
  // Workloads: what turns the objects people apply into pods.
  'deployment-controller', // Deployment -> ReplicaSet
  'replicaset-controller', // ReplicaSet -> pods (an evicted pod is replaced)
  'daemonset-controller', // one pod per node the DaemonSet's affinity, nodeSelector and tolerations allow
  'statefulset-controller',
  'job-controller',
  'garbage-collector-controller', // ownerReferences: deleting a DaemonSet or Deployment deletes its pods
  'disruption-controller', // PodDisruptionBudget status, which every eviction is checked against
  'endpointslice-controller', // Services -> EndpointSlices (what kube-proxy and Cilium read)
  // Namespaces and identities.
  'namespace-controller', // deleting a namespace deletes what is in it, then the namespace
  'serviceaccount-controller', // the "default" ServiceAccount of every namespace (ServiceAccount admission)
  'serviceaccount-token-controller', // tokens of service-account-token Secrets, signed with the shared key
  'root-ca-certificate-publisher-controller', // kube-root-ca.crt in every namespace (in every pod's token volume)
  'clusterrole-aggregation-controller', // admin/edit/view get their aggregated rules: RBAC as in a real cluster
];
// Left out on purpose:
// - node-lifecycle-controller: kwok writes node conditions and leases for its nodes; this controller
//   would also mark nodes that tests create without kwok Unknown, taint them and set their pods
//   NotReady, fighting tests that write those statuses themselves. Without it nothing removes the
//   node.kubernetes.io/not-ready:NoSchedule taint the TaintNodesByCondition admission plugin puts on
//   every new Node (its doNoScheduleTaintingPass does that in a real cluster; kwok writes no taints,
//   and DaemonSet pods do not tolerate that NoSchedule taint), so that plugin stays disabled.
// - taint-eviction-controller: evicts pods from NoExecute taints, which node lifecycle writes; a
//   test that wants its own NoExecute taints enforced adds it with the `controllers` option.
// - node-ipam-controller, ttl-controller, pod-garbage-collector-controller: node lifecycle too (pod
//   IPs come from kwok's --cidr, the TTL annotation is set by addNodes, kwok completes the deletion
//   of pods on its nodes).
// - endpoints-controller: the v1 Endpoints API is deprecated (v1.33) for EndpointSlices; nothing
//   here reads Endpoints. The rest (cronjob, HPA, quota, certificates, volumes, ...) no test uses.

export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
export const POD_CIDR = '10.244.0.0/16';

/**
 * Request level (metadata + request body) for mutations of pods (incl. pods/binding, pods/eviction,
 * pods/status) and daemonsets; nothing else. Read verbs are left out to keep the log small
 * (kwok and the scheduler list/watch constantly). Webhook auditAnnotations land in these events.
 */
export const DEFAULT_AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Request
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
  resources:
  - group: ""
    resources: ["pods", "pods/binding", "pods/eviction", "pods/status"]
  - group: "apps"
    resources: ["daemonsets"]
- level: None
`;

// ---------------------------------------------------------------------------------------------
// Tools

export interface PinnedVersions {
  KUBE_VERSION: string;
  ETCD_VERSION: string;
  KWOK_VERSION: string;
}

/** Versions pinned in test/tools/versions.env. */
export function readPinnedVersions(): PinnedVersions {
  const out: Record<string, string> = {};
  for (const line of readFileSync(join(toolsSrcDir, 'versions.env'), 'utf8').split('\n')) {
    const m = /^\s*([A-Z_]+)=["']?([^"'\s#]*)/.exec(line);
    if (m?.[1] && m[2] !== undefined) out[m[1]] = m[2];
  }
  const { KUBE_VERSION, ETCD_VERSION, KWOK_VERSION } = out;
  if (!KUBE_VERSION || !ETCD_VERSION || !KWOK_VERSION) throw new Error('versions.env is incomplete');
  return { KUBE_VERSION, ETCD_VERSION, KWOK_VERSION };
}

let toolsPromise: Promise<string> | undefined;

/**
 * Runs test/tools/build.sh (a no-op when the cache is complete) and returns the tools dir
 * (containing bin/ and kwok-stages.yaml). CMG_TOOLS_DIR skips the build and uses that dir.
 */
export function ensureTools(opts: { log?: (line: string) => void } = {}): Promise<string> {
  const preset = process.env.CMG_TOOLS_DIR;
  if (preset) return Promise.resolve(resolve(preset));
  toolsPromise ??= runBuildScript(opts.log ?? ((l) => process.stderr.write(`${l}\n`))).catch((err: unknown) => {
    toolsPromise = undefined;
    throw err;
  });
  return toolsPromise;
}

function runBuildScript(log: (line: string) => void): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('bash', [join(toolsSrcDir, 'build.sh')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderrTail = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderrTail = (stderrTail + d).slice(-8000);
      const lines = (partial + d).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) if (!l.startsWith('go: downloading')) log(l);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const lines = stdout.trim().split('\n');
      const dir = lines[lines.length - 1]?.trim();
      if (code !== 0 || !dir) {
        reject(new Error(`test/tools/build.sh failed (exit ${code}):\n${stderrTail}`));
        return;
      }
      resolvePromise(dir);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Child processes

export interface Child {
  name: string;
  proc: ChildProcess;
  logPath: string;
  exited: Promise<number | null>;
  exitCode: number | null | undefined; // undefined while running
  /** What it was started with (restart() reuses it). */
  start: { bin: string; args: string[]; dir: string; env: NodeJS.ProcessEnv | undefined };
}

const liveChildren = new Set<Child>();
const liveDirs = new Set<string>();
let exitHandlersInstalled = false;

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  const killAll = () => {
    for (const c of liveChildren) {
      try {
        c.proc.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const d of liveDirs) {
      if (process.env.CMG_KEEP_CONTROLPLANE_DIR === '1') continue;
      try {
        rmSync(d, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        /* best effort */
      }
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const hadOthers = process.listenerCount(sig) > 0;
    process.once(sig, () => {
      killAll();
      // Keep the default behaviour (terminate) if nobody else handles the signal.
      if (!hadOthers && process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

export function startChild(name: string, bin: string, args: string[], dir: string, env?: NodeJS.ProcessEnv): Child {
  installExitHandlers();
  const logPath = join(dir, 'logs', `${name}.log`);
  const fd = openSync(logPath, 'a');
  let proc: ChildProcess;
  try {
    proc = spawn(bin, args, { stdio: ['ignore', fd, fd], cwd: dir, env: env ?? process.env });
  } finally {
    closeSync(fd);
  }
  const child: Child = { name, proc, logPath, exitCode: undefined, exited: Promise.resolve(null), start: { bin, args, dir, env } };
  child.exited = new Promise((res) => {
    proc.on('error', () => {
      child.exitCode = -1;
      liveChildren.delete(child);
      res(-1);
    });
    proc.on('exit', (code, signal) => {
      child.exitCode = code ?? (signal ? 128 : null);
      liveChildren.delete(child);
      res(child.exitCode);
    });
  });
  liveChildren.add(child);
  return child;
}

export async function stopChild(c: Child, graceMs = 10_000): Promise<void> {
  if (c.exitCode !== undefined) return;
  c.proc.kill('SIGTERM');
  const timedOut = await Promise.race([c.exited.then(() => false), sleep(graceMs).then(() => true)]);
  if (timedOut && c.exitCode === undefined) {
    c.proc.kill('SIGKILL');
    await Promise.race([c.exited, sleep(5_000)]);
  }
}

function tail(path: string, bytes = 4000): string {
  try {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const len = Math.min(size, bytes);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      return buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '(no log)';
  }
}

function describeChildren(children: Child[], bytes = 3000): string {
  return children
    .map((c) => `--- ${c.name} (${c.exitCode === undefined ? 'running' : `exited ${c.exitCode}`}), ${c.logPath}:\n${tail(c.logPath, bytes)}`)
    .join('\n');
}

// ---------------------------------------------------------------------------------------------
// Helpers

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function freePorts(n: number): Promise<number[]> {
  // Hold all listeners open until every port is known so the same port is not handed out twice.
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import('node:net').Server>((res, rej) => {
          const s = createServer();
          s.once('error', rej);
          s.listen(0, '127.0.0.1', () => res(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    if (!a || typeof a === 'string') throw new Error('no port');
    return a.port;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Polls fn every intervalMs until it returns a value other than undefined; bounded in time and count. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  opts: { timeoutMs: number; intervalMs?: number; children?: Child[] },
): Promise<T> {
  const interval = opts.intervalMs ?? 250;
  const maxAttempts = Math.ceil(opts.timeoutMs / interval) + 1;
  const deadline = Date.now() + opts.timeoutMs;
  let lastErr = '';
  for (let i = 0; i < maxAttempts && Date.now() < deadline; i++) {
    const dead = opts.children?.find((c) => c.exitCode !== undefined);
    if (dead) throw new Error(`${dead.name} exited (${dead.exitCode}) while waiting for ${what}\n${describeChildren(opts.children ?? [])}`);
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err instanceof Error ? err.message : String(err);
    }
    await sleep(interval);
  }
  throw new Error(
    `timed out after ${opts.timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${lastErr})` : ''}\n${describeChildren(opts.children ?? [])}`,
  );
}

export function httpGet(url: string, timeoutMs = 3000): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = httpRequest(url, { timeout: timeoutMs }, (r) => {
      let body = '';
      r.setEncoding('utf8')
        .on('data', (d: string) => (body += d))
        .on('end', () => res({ status: r.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end();
  });
}

/** Options of a raw API call: extra headers (e.g. impersonation), a pooled agent, a timeout. */
export interface ApiCallOptions {
  timeoutMs?: number;
  headers?: Record<string, string>;
  agent?: Agent;
  contentType?: string;
}

/** One raw API call with a bearer token; the body is JSON-encoded when given. */
export function apiCall(
  server: string,
  token: string,
  ca: string | Buffer,
  method: string,
  path: string,
  body?: unknown,
  opts: ApiCallOptions = {},
): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpsRequest(
      new URL(path, server),
      {
        method,
        ca,
        timeout: opts.timeoutMs ?? 10_000,
        ...(opts.agent ? { agent: opts.agent } : {}),
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...opts.headers,
          ...(payload !== undefined ? { 'content-type': opts.contentType ?? 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      },
      (r) => {
        let data = '';
        r.setEncoding('utf8')
          .on('data', (d: string) => (data += d))
          .on('end', () => res({ status: r.statusCode ?? 0, body: data }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end(payload);
  });
}

function runKubectl(bin: string, kubeconfig: string, args: string[], opts: KubectlOptions = {}): Promise<KubectlResult> {
  return new Promise((res, rej) => {
    const proc = spawn(bin, [`--kubeconfig=${kubeconfig}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    proc.on('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = { code: code ?? (signal ? 128 : 1), stdout, stderr };
      if (result.code !== 0 && !opts.allowFail) {
        rej(Object.assign(new Error(`kubectl ${args.join(' ')} failed (exit ${result.code}${signal ? `, ${signal}` : ''}): ${stderr.trim()}`), { result }));
      } else res(result);
    });
    proc.stdin.on('error', () => {}); // kubectl may exit before reading stdin
    proc.stdin.end(opts.input ?? '');
  });
}

// ---------------------------------------------------------------------------------------------
// The control plane

/**
 * The API calls, kubectl and node/namespace helpers for a running control plane. `children`
 * (the processes, when this process runs them) turn a dead process into a clear error in waits.
 */
function client(info: ControlPlaneInfo, ca: string, children: Child[], readyTimeoutMs: number): Omit<ControlPlane, 'stop' | 'process' | 'restart'> {
  const api = (method: string, path: string, body?: unknown) => apiCall(info.server, info.token, ca, method, path, body);

  const addNodes = async (nodes: FakeNode[]) => {
    for (const n of nodes) {
      const r = await api('POST', '/api/v1/nodes', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name: n.name,
          labels: {
            'kubernetes.io/hostname': n.name,
            'kubernetes.io/os': 'linux',
            'kubernetes.io/arch': 'amd64',
            type: 'kwok',
            ...n.labels,
          },
          annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
        },
        spec: {},
      });
      if (r.status !== 201) throw new Error(`creating node ${n.name}: HTTP ${r.status} ${r.body}`);
    }
    for (const n of nodes) {
      await waitFor(
        `node ${n.name} Ready`,
        async () => {
          const r = await api('GET', `/api/v1/nodes/${encodeURIComponent(n.name)}`);
          if (r.status !== 200) return undefined;
          const node = JSON.parse(r.body) as { status?: { conditions?: Array<{ type: string; status: string }> } };
          return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
        },
        { timeoutMs: readyTimeoutMs, children },
      );
    }
  };

  const createNamespace = async (name: string, labels?: Record<string, string>) => {
    const r = await api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...(labels ? { labels } : {}) } });
    if (r.status !== 201 && r.status !== 409) throw new Error(`creating namespace ${name}: HTTP ${r.status} ${r.body}`);
    await waitForDefaultServiceAccount(api, name, readyTimeoutMs, children);
  };

  return {
    ...info,
    kubectl: (args, kopts) => runKubectl(join(info.binDir, 'kubectl'), info.kubeconfigPath, args, kopts),
    api,
    addNodes,
    createNamespace,
  };
}

function waitForDefaultServiceAccount(
  api: (method: string, path: string) => Promise<{ status: number }>,
  namespace: string,
  timeoutMs: number,
  children: Child[],
): Promise<true> {
  return waitFor(
    `ServiceAccount ${namespace}/default (serviceaccount controller)`,
    async () => ((await api('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/default`)).status === 200 ? true : undefined),
    { timeoutMs, intervalMs: 100, children },
  );
}

/**
 * A ControlPlane for a control plane this process does not run (the shared one of
 * test/harness/shared.ts): the same API, kubectl and helpers; stop() leaves it running.
 */
export function attachControlPlane(info: ControlPlaneInfo, opts: { readyTimeoutMs?: number } = {}): ControlPlane {
  const ca = readFileSync(info.caFile, 'utf8');
  return {
    ...client(info, ca, [], opts.readyTimeoutMs ?? 90_000),
    // A shared control plane's processes belong to the global setup: a fault test starts its own.
    process: () => undefined,
    restart: (name) => {
      throw new Error(`cannot restart ${name} of a shared control plane; start one of your own`);
    },
    stop: async () => {},
  };
}

/** The serializable part of a ControlPlane, to hand to another process. */
export function controlPlaneInfo(cp: ControlPlane): ControlPlaneInfo {
  const { kubeconfigPath, server, token, caFile, auditLogPath, dir, binDir, etcdEndpoint } = cp;
  return { kubeconfigPath, server, token, caFile, auditLogPath, dir, binDir, etcdEndpoint };
}

function kubeconfig(server: string, caFile: string, user: string, token: string, namespace?: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'cmg', cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: 'cmg', context: { cluster: 'cmg', user, ...(namespace ? { namespace } : {}) } }],
    'current-context': 'cmg',
  });
}

export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const log = opts.log ?? (() => {});
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  const withControllerManager = opts.controllerManager ?? true;
  const toolsDir = await ensureTools(opts.log ? { log: opts.log } : {});
  const binDir = join(toolsDir, 'bin');
  const stagesFile = join(toolsDir, 'kwok-stages.yaml');
  const needed = ['etcd', 'kube-apiserver', 'kube-scheduler', 'kubectl', 'kwok', ...(withControllerManager ? ['kube-controller-manager'] : [])];
  for (const b of needed) {
    if (!existsSync(join(binDir, b))) throw new Error(`missing ${join(binDir, b)}; run test/tools/build.sh`);
  }

  const dir = await mkdtemp(join(tmpdir(), 'cmg-cp-'));
  installExitHandlers();
  liveDirs.add(dir);
  const children: Child[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Reverse start order: clients first, etcd last.
    for (const c of [...children].reverse()) await stopChild(c);
    // CMG_KEEP_CONTROLPLANE_DIR=1 keeps the temp dir (logs, audit log, kubeconfig) for debugging.
    if (process.env.CMG_KEEP_CONTROLPLANE_DIR === '1') log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    liveDirs.delete(dir);
  };

  try {
    await Promise.all(['logs', 'certs', 'kwok-home'].map((d) => mkdir(join(dir, d), { recursive: true })));
    const [etcdPort, etcdPeerPort, apiPort] = (await freePorts(3)) as [number, number, number];
    const etcdEndpoint = `http://127.0.0.1:${etcdPort}`;
    const server = `https://127.0.0.1:${apiPort}`;
    const token = randomBytes(24).toString('hex');
    const controllerManagerToken = randomBytes(24).toString('hex');

    // --- etcd
    log(`starting etcd on ${etcdEndpoint}`);
    const peer = `http://127.0.0.1:${etcdPeerPort}`;
    children.push(
      startChild(
        'etcd',
        join(binDir, 'etcd'),
        [
          '--name=cmg',
          `--data-dir=${join(dir, 'etcd')}`,
          `--listen-client-urls=${etcdEndpoint}`,
          `--advertise-client-urls=${etcdEndpoint}`,
          `--listen-peer-urls=${peer}`,
          `--initial-advertise-peer-urls=${peer}`,
          `--initial-cluster=cmg=${peer}`,
          '--unsafe-no-fsync',
          '--log-level=warn',
        ],
        dir,
      ),
    );
    await waitFor(
      'etcd /health',
      async () => {
        const r = await httpGet(`${etcdEndpoint}/health`);
        return r.status === 200 && r.body.includes('"true"') ? true : undefined;
      },
      { timeoutMs: readyTimeoutMs, children },
    );

    // --- kube-apiserver
    // One service-account key pair: kube-apiserver signs TokenRequest tokens with the private key
    // and verifies every token with the public one; kube-controller-manager signs the tokens of
    // service-account-token Secrets with the same private key.
    const saKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saPub = join(dir, 'sa.pub');
    const saPriv = join(dir, 'sa.key');
    const tokenFile = join(dir, 'tokens.csv');
    const auditPolicyPath = join(dir, 'audit-policy.yaml');
    const auditLogPath = join(dir, 'audit.log');
    const certDir = join(dir, 'certs');
    await Promise.all([
      writeFile(saPub, saKey.publicKey.export({ type: 'spki', format: 'pem' }) as string, { mode: 0o600 }),
      writeFile(saPriv, saKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 }),
      // The admin, and kube-controller-manager as the user its bootstrap ClusterRoleBinding names
      // (system:kube-controller-manager: list/watch everything, create ServiceAccounts and their tokens).
      writeFile(
        tokenFile,
        `${token},cmg-admin,cmg-admin,"system:masters"\n${controllerManagerToken},system:kube-controller-manager,system:kube-controller-manager\n`,
        { mode: 0o600 },
      ),
      writeFile(auditPolicyPath, opts.auditPolicy ?? DEFAULT_AUDIT_POLICY),
    ]);
    log(`starting kube-apiserver on ${server}`);
    children.push(
      startChild(
        'kube-apiserver',
        join(binDir, 'kube-apiserver'),
        [
          `--etcd-servers=${etcdEndpoint}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${apiPort}`,
          `--cert-dir=${certDir}`,
          '--service-cluster-ip-range=10.0.0.0/24',
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          `--service-account-key-file=${saPub}`,
          `--service-account-signing-key-file=${saPriv}`,
          '--authorization-mode=RBAC',
          `--token-auth-file=${tokenFile}`,
          // TaintNodesByCondition puts node.kubernetes.io/not-ready:NoSchedule on every new Node and
          // only node-lifecycle-controller removes it, which is left to kwok here (see CONTROLLERS).
          // Without kube-controller-manager nothing creates the "default" ServiceAccount either, so
          // the ServiceAccount plugin goes off too.
          `--disable-admission-plugins=${withControllerManager ? 'TaintNodesByCondition' : 'ServiceAccount,TaintNodesByCondition'}`,
          '--allow-privileged=true',
          '--endpoint-reconciler-type=none',
          `--audit-policy-file=${auditPolicyPath}`,
          `--audit-log-path=${auditLogPath}`,
          '--profiling=false',
          ...(opts.extraApiServerArgs ?? []),
        ],
        dir,
      ),
    );
    // The self-signed serving certificate (with its CA appended) is written to --cert-dir at startup.
    const caFile = join(certDir, 'apiserver.crt');
    const ca = await waitFor('apiserver.crt', async () => (existsSync(caFile) ? await readFile(caFile, 'utf8') : undefined), {
      timeoutMs: readyTimeoutMs,
      children,
    });
    await waitFor(
      'kube-apiserver /readyz',
      async () => {
        const r = await apiCall(server, token, ca, 'GET', '/readyz', undefined, { timeoutMs: 3000 });
        return r.status === 200 ? true : undefined;
      },
      { timeoutMs: readyTimeoutMs, children },
    );

    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, kubeconfig(server, caFile, 'cmg-admin', token, 'default'), { mode: 0o600 });

    // --- kube-scheduler
    log('starting kube-scheduler');
    children.push(
      startChild('kube-scheduler', join(binDir, 'kube-scheduler'), [`--kubeconfig=${kubeconfigPath}`, '--leader-elect=false', '--secure-port=0'], dir),
    );

    // --- kube-controller-manager
    if (withControllerManager) {
      const controllers = opts.controllers ?? CONTROLLERS;
      log(`starting kube-controller-manager (${controllers.length} controllers)`);
      const kcmKubeconfig = join(dir, 'kube-controller-manager.kubeconfig');
      await writeFile(kcmKubeconfig, kubeconfig(server, caFile, 'system:kube-controller-manager', controllerManagerToken), { mode: 0o600 });
      children.push(
        startChild(
          'kube-controller-manager',
          join(binDir, 'kube-controller-manager'),
          [
            `--kubeconfig=${kcmKubeconfig}`,
            `--controllers=${controllers.join(',')}`,
            // Each controller under its own ServiceAccount in kube-system (tokens by TokenRequest),
            // with the system:controller:* roles kube-apiserver bootstraps: real RBAC, as kubeadm runs it.
            '--use-service-account-credentials=true',
            `--service-account-private-key-file=${saPriv}`,
            `--root-ca-file=${caFile}`,
            '--leader-elect=false',
            '--secure-port=0',
            ...(opts.extraControllerManagerArgs ?? []),
          ],
          dir,
        ),
      );
    }

    // --- kwok
    log('starting kwok');
    children.push(
      startChild(
        'kwok',
        join(binDir, 'kwok'),
        [
          `--kubeconfig=${kubeconfigPath}`,
          `--config=${stagesFile}`,
          '--manage-all-nodes=false',
          `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
          `--cidr=${POD_CIDR}`,
          '--node-ip=10.255.0.1',
          '--node-lease-duration-seconds=40',
        ],
        dir,
        // kwok also reads ~/.kwok/kwok.yaml; keep it hermetic.
        { ...process.env, HOME: join(dir, 'kwok-home') },
      ),
    );

    const info: ControlPlaneInfo = { kubeconfigPath, server, token, caFile, auditLogPath, dir, binDir, etcdEndpoint };
    const plane = client(info, ca, children, readyTimeoutMs);

    if (withControllerManager) {
      // Controllers are up once the serviceaccount controller has done its first pass: pods can be
      // created in the namespaces that exist from the start.
      for (const ns of ['default', 'kube-system']) await waitForDefaultServiceAccount(plane.api, ns, readyTimeoutMs, children);
    }
    if (opts.nodes?.length) {
      log(`creating ${opts.nodes.length} fake node(s)`);
      await plane.addNodes(opts.nodes);
    }
    log(`control plane ready in ${dir}`);

    return {
      ...plane,
      process: (name) => children.find((c) => c.name === name),
      restart: (name) => {
        const i = children.findIndex((c) => c.name === name);
        const old = children[i];
        if (!old || old.exitCode === undefined) throw new Error(`${name} is ${old ? 'still running' : 'not a component'}`);
        const again = startChild(name, old.start.bin, old.start.args, old.start.dir, old.start.env);
        children[i] = again;
        return again;
      },
      stop,
    };
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    const logs = detail.includes('--- ') ? '' : `\n${describeChildren(children)}`;
    await stop().catch(() => {});
    throw new Error(`control plane failed to start: ${detail}${logs}`, { cause: err });
  }
}
