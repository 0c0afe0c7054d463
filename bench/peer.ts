// Part 4, "a peer": the same DaemonSet mutation (CNI-aware node affinity on aws-node: `cni NotIn
// [cilium]` added to every nodeSelectorTerm) done by this webhook and by Kyverno, through the same
// API server (the local control plane of test/harness) under the same load, in one run:
//   - N DaemonSet CREATEs, one at a time, with no webhook / this webhook / Kyverno registered
//     (each alone); client-side p50/p99, the API server's own
//     apiserver_admission_webhook_admission_duration_seconds per webhook name, the webhook
//     process's CPU time per request;
//   - the affinity each one wrote, read back from the API server and compared;
//   - h2load straight at each webhook's endpoint (same AdmissionReview body), interleaved.
// Kyverno is built here from the Go module proxy (bench/peer/kyverno: a wrapper module pinning a
// tag and copying its replace directive) into a cache dir, and run out of cluster as its
// `--serverIP` mode intends: webhooks registered by URL on 127.0.0.1, its own CA and serving
// certificate (its cert renewer writes them to Secrets). Everything listens on 127.0.0.1; every
// process started is stopped at the end (and killed on a signal by the harness's exit handlers).

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import { CONFIGURATION_NAME, MUTATING_NAME } from '../src/registration.js';
import { freePorts, startChild, startControlPlane, stopChild, waitFor, type Child, type ControlPlane } from '../test/harness/controlplane.js';
import { ROOT, startGuard, type Guard } from '../test/harness/guard.js';
import { daemonSet } from '../test/support/fixtures.js';
import { apiMetrics, bucketBound, minus, webhookHistogram, type Histogram } from './apiserver.js';
import { cpuSeconds, ensureH2load, h2load, outcome, peakRssMb, post, resetPeak, scenarios, startFloor } from './floor.js';
import { CERT_FILE, KEY_FILE } from '../src/certs/local.js';
import { fmt, median, percentile, table } from './stats.js';

const NAMESPACE = 'bench';
const KYVERNO_NAMESPACE = 'kyverno';
const PEER_DIR = join(ROOT, 'bench', 'peer', 'kyverno');
const WRAPPER_FILES = ['go.mod', 'go.sum', 'tools.go'];
/** The requirement both add (the default nodeLabel, cni=cilium; the role of aws-node is legacy). */
const REQUIREMENT = { key: 'cni', operator: 'NotIn', values: ['cilium'] };

export interface PeerOptions {
  /** DaemonSet CREATEs per phase. */
  n: number;
  /** h2load runs (interleaved) and seconds per run. */
  runs: number;
  seconds: number;
  warmupSeconds: number;
  /** A directory: Kyverno serves pprof on loopback and a CPU profile of its first saturating h2load run is written there. */
  profileDir?: string;
}

function cacheDir(): string {
  return process.env.CMG_PEER_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'cilium-migration-guard', 'peer');
}

/** The tag bench/peer/kyverno/go.mod pins. */
export function kyvernoVersion(): string {
  const m = /^require github\.com\/kyverno\/kyverno (v\S+)/m.exec(readFileSync(join(PEER_DIR, 'go.mod'), 'utf8'));
  if (!m?.[1]) throw new Error(`${join(PEER_DIR, 'go.mod')}: no "require github.com/kyverno/kyverno vX" line`);
  return m[1];
}

/**
 * Kyverno's cmd/kyverno, built once from the wrapper module into the cache dir (named by the hash
 * of go.mod + go.sum, so a new pin builds anew). The first build takes 15–30 minutes on 2 cores.
 */
export async function ensureKyverno(log: (line: string) => void = console.log): Promise<string> {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.status !== 0) throw new Error('Kyverno is built with Go (`go` on PATH, 1.26.6 or newer): not found');
  const hash = createHash('sha256');
  for (const f of WRAPPER_FILES) hash.update(readFileSync(join(PEER_DIR, f)));
  const stamp = hash.digest('hex').slice(0, 12);
  const bin = join(cacheDir(), 'bin', `kyverno-${kyvernoVersion()}-${stamp}`);
  if (existsSync(bin)) return bin;
  const wrapper = join(cacheDir(), 'kyverno-wrapper');
  mkdirSync(wrapper, { recursive: true });
  mkdirSync(join(cacheDir(), 'bin'), { recursive: true });
  for (const f of WRAPPER_FILES) copyFileSync(join(PEER_DIR, f), join(wrapper, f));
  const logPath = join(wrapper, `build-${stamp}.log`);
  log(`  building Kyverno ${kyvernoVersion()} (cmd/kyverno) from the Go module proxy into ${bin}; log ${logPath} (15–30 min the first time)`);
  const started = performance.now();
  const out = createWriteStream(logPath);
  const code = await new Promise<number | null>((res, rej) => {
    const child = spawn('go', ['build', '-o', `${bin}.tmp`, 'github.com/kyverno/kyverno/cmd/kyverno'], {
      cwd: wrapper,
      stdio: ['ignore', 'pipe', 'pipe'],
      // The wrapper's go.sum is committed: nothing is resolved anew, only downloaded and checked.
      env: { ...process.env, GOFLAGS: `${process.env.GOFLAGS ?? ''} -mod=readonly`.trim() },
    });
    child.stdout.pipe(out);
    child.stderr.pipe(out);
    // Bounded: a build that has not finished in an hour is stopped.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60 * 60_000);
    child.on('error', rej);
    child.on('close', (c) => {
      clearTimeout(timer);
      res(c);
    });
  });
  out.end();
  if (code !== 0) throw new Error(`go build of Kyverno failed (exit ${code}); see ${logPath}:\n${readFileSync(logPath, 'utf8').slice(-3000)}`);
  renameSync(`${bin}.tmp`, bin);
  log(`  built in ${fmt((performance.now() - started) / 60_000, 1)} min`);
  return bin;
}

interface Kyverno {
  child: Child;
  /** The command line, for the record. */
  command: string;
  url: string;
  /** Its pprof server (with --profile). */
  pprof: string;
  stop(): Promise<void>;
}

/** Kyverno's CRDs (from the module's config/crds), its namespace and config maps, then cmd/kyverno out of cluster. */
async function startKyverno(cp: ControlPlane, bin: string, profile: boolean): Promise<Kyverno> {
  const mod = spawnSync('go', ['mod', 'download', '-json', `github.com/kyverno/kyverno@${kyvernoVersion()}`], { cwd: PEER_DIR, encoding: 'utf8' });
  if (mod.status !== 0) throw new Error(`go mod download github.com/kyverno/kyverno: ${mod.stderr}`);
  const moduleDir = (JSON.parse(mod.stdout) as { Dir: string }).Dir;
  const crds = join(moduleDir, 'config', 'crds');
  // Server-side: the CRDs are too large for the last-applied annotation of a client-side apply.
  await cp.kubectl(['apply', '--server-side', '-R', '-f', crds], { timeoutMs: 120_000 });
  await cp.kubectl(['wait', '--for=condition=Established', '--timeout=120s', 'crd/clusterpolicies.kyverno.io', 'crd/policies.kyverno.io'], {
    timeoutMs: 130_000,
  });
  await cp.kubectl(['create', 'namespace', KYVERNO_NAMESPACE]);
  // INIT_CONFIG and METRICS_CONFIG: empty, so no resource filter of the Helm chart's (which
  // excludes kube-system) and no namespace selector apply.
  await cp.kubectl(['create', 'configmap', 'kyverno', '-n', KYVERNO_NAMESPACE]);
  await cp.kubectl(['create', 'configmap', 'kyverno-metrics', '-n', KYVERNO_NAMESPACE]);
  const [port, metricsPort, pprofPort] = (await freePorts(3)) as [number, number, number];
  const { KUBERNETES_SERVICE_HOST: _inCluster, ...env } = process.env;
  const svc = `kyverno-svc.${KYVERNO_NAMESPACE}.svc`;
  // The flags the Helm chart gives the admission controller (templates/admission-controller/
  // deployment.yaml, values.yaml: logging verbosity 2, omitEvents PolicyApplied,PolicySkipped),
  // with out-of-cluster serving on loopback. Admission reports are off: no reports controller runs.
  const args = [
    `--kubeconfig=${cp.kubeconfigPath}`,
    `--serverIP=127.0.0.1:${port}`,
    '--webhookServerHost=127.0.0.1',
    `--webhookServerPort=${port}`,
    `--caSecretName=${svc}.kyverno-tls-ca`,
    `--tlsSecretName=${svc}.kyverno-tls-pair`,
    '--admissionReports=false',
    '--omitEvents=PolicyApplied,PolicySkipped',
    '--metricsHost=127.0.0.1',
    `--metricsPort=${metricsPort}`,
    '--controllerRuntimeMetricsAddress=0',
    '--autoMemLimitEnabled=false',
    '--disableLogColor',
    '-v=2',
    ...(profile ? ['--profile', '--profileAddress=127.0.0.1', `--profilePort=${pprofPort}`] : []),
  ];
  const child = startChild('kyverno', bin, args, cp.dir, {
    ...env,
    KYVERNO_NAMESPACE,
    KYVERNO_SERVICEACCOUNT_NAME: 'kyverno',
    KYVERNO_DEPLOYMENT: 'kyverno',
    KYVERNO_POD_NAME: 'kyverno-bench',
    KYVERNO_SVC: 'kyverno-svc',
    INIT_CONFIG: 'kyverno',
    METRICS_CONFIG: 'kyverno-metrics',
  });
  const command = `KYVERNO_NAMESPACE=${KYVERNO_NAMESPACE} KYVERNO_SERVICEACCOUNT_NAME=kyverno KYVERNO_DEPLOYMENT=kyverno KYVERNO_POD_NAME=kyverno-bench KYVERNO_SVC=kyverno-svc INIT_CONFIG=kyverno METRICS_CONFIG=kyverno-metrics kyverno ${args.join(' ')}`;
  return { child, command, url: `https://127.0.0.1:${port}`, pprof: `http://127.0.0.1:${pprofPort}`, stop: () => stopChild(child) };
}

/** The fixture aws-node DaemonSet (test/fixtures/daemonsets/aws-node.yaml), renamed into the bench namespace. */
function awsNode(name: string): any {
  const ds = daemonSet('aws-node');
  ds.metadata = { ...ds.metadata, name, namespace: NAMESPACE };
  return ds;
}

const dsPath = `/apis/apps/v1/namespaces/${NAMESPACE}/daemonsets`;

function hasRequirement(ds: any): boolean {
  const terms: any[] = ds?.spec?.template?.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  return terms.length > 0 && terms.every((t) => (t.matchExpressions ?? []).some((e: any) => isDeepStrictEqual(e, REQUIREMENT)));
}

/** A server-side dry run of the fixture: does whatever is registered now add the requirement? */
async function dryRunPatched(cp: ControlPlane): Promise<boolean> {
  const r = await cp.api('POST', `${dsPath}?dryRun=All`, awsNode(`probe-${Date.now()}`));
  if (r.status !== 201) throw new Error(`dry-run create: ${r.status} ${r.body.slice(0, 300)}`);
  return hasRequirement(JSON.parse(r.body));
}

async function waitPatched(cp: ControlPlane, want: boolean, what: string, children: Child[], timeoutMs = 60_000): Promise<void> {
  await waitFor(what, async () => ((await dryRunPatched(cp)) === want ? true : undefined), { timeoutMs, intervalMs: 500, children });
}

interface Phase {
  label: string;
  latencies: number[];
  /** The API server's histogram over the measured creates, for the webhook names of this phase. */
  histogram?: Histogram;
  /** CPU seconds each webhook process used over the measured creates (both run in every phase). */
  cpu: { guard: number; kyverno: number };
  /** Wall time of the measured creates, s. */
  seconds: number;
  /** The affinity of a DaemonSet created in this phase, read back from the API server. */
  affinity: unknown;
  patchedAll: boolean;
}

/** Warm-up, then N creates one at a time (timed), then one read back. */
async function phase(
  cp: ControlPlane,
  tag: string,
  n: number,
  webhookNames: string[],
  procs: { guard: { pid: number }; kyverno: { pid: number } },
): Promise<Phase> {
  for (let i = 0; i < Math.min(20, n); i++) {
    const r = await cp.api('POST', dsPath, awsNode(`${tag}-warm-${i}`));
    if (r.status !== 201) throw new Error(`create ${tag}-warm-${i}: ${r.status} ${r.body.slice(0, 300)}`);
  }
  const sum = (m: string) => webhookNames.reduce<Histogram | undefined>((acc, name) => add(acc, webhookHistogram(m, name)), undefined);
  const before = sum(await apiMetrics(cp));
  const cpu0 = { guard: cpuSeconds(procs.guard), kyverno: cpuSeconds(procs.kyverno) };
  const t00 = performance.now();
  const latencies: number[] = [];
  let patched = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await cp.api('POST', dsPath, awsNode(`${tag}-${i}`));
    latencies.push(performance.now() - t0);
    if (r.status !== 201) throw new Error(`create ${tag}-${i}: ${r.status} ${r.body.slice(0, 300)}`);
    if (hasRequirement(JSON.parse(r.body))) patched++;
  }
  const seconds = (performance.now() - t00) / 1000;
  const cpu = { guard: cpuSeconds(procs.guard) - cpu0.guard, kyverno: cpuSeconds(procs.kyverno) - cpu0.kyverno };
  const after = sum(await apiMetrics(cp));
  const read = await cp.api('GET', `${dsPath}/${tag}-0`);
  if (read.status !== 200) throw new Error(`GET ${tag}-0: ${read.status}`);
  const affinity = (JSON.parse(read.body) as any).spec?.template?.spec?.affinity;
  latencies.sort((a, b) => a - b);
  return {
    label: tag,
    latencies,
    ...(after && before ? { histogram: minus(after, before) } : {}),
    cpu,
    seconds,
    affinity,
    patchedAll: patched === n,
  };
}

function add(a: Histogram | undefined, b: Histogram): Histogram {
  if (!a) return b;
  return { buckets: new Map([...b.buckets].map(([le, n]) => [le, n + (a.buckets.get(le) ?? 0)])), sum: a.sum + b.sum, count: a.count + b.count };
}

/** The names of Kyverno's registered mutating webhooks whose rules cover DaemonSets (and the CA they trust). */
async function kyvernoDaemonSetWebhooks(cp: ControlPlane): Promise<{ names: string[]; caPem: string }> {
  const r = await cp.api('GET', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations');
  const names: string[] = [];
  let caPem = '';
  for (const cfg of (JSON.parse(r.body) as { items: any[] }).items) {
    if (cfg.metadata.name === CONFIGURATION_NAME) continue;
    for (const wh of cfg.webhooks ?? []) {
      const covers = (rule: any) =>
        (rule.apiGroups ?? []).some((g: string) => g === 'apps' || g === '*') &&
        (rule.resources ?? []).some((r: string) => ['daemonsets', '*', '*/*'].includes(r));
      if ((wh.rules ?? []).some(covers)) {
        names.push(wh.name);
        caPem = Buffer.from(wh.clientConfig?.caBundle ?? '', 'base64').toString('utf8');
      }
    }
  }
  return { names, caPem };
}

interface DirectSample {
  rps: number;
  p50: number;
  p99: number;
  max: number;
  cpuPerReq: number;
  rss: number;
  failed: number;
}

export async function runPeer(options: PeerOptions): Promise<void> {
  const started = performance.now();
  const h2 = ensureH2load();
  if (options.profileDir) mkdirSync(options.profileDir, { recursive: true });
  const bin = await ensureKyverno();
  const load0 = loadavg();
  const cp = await startControlPlane({}); // no nodes: the DaemonSet controller makes no pods
  let guard: Guard | undefined;
  let kyverno: Kyverno | undefined;
  let floor: Awaited<ReturnType<typeof startFloor>> | undefined;
  try {
    await cp.kubectl(['create', 'namespace', NAMESPACE]);
    // Both processes run through every phase (same background); only one is registered at a time.
    guard = await startGuard(cp);
    const kyvernoStarted = performance.now();
    kyverno = await startKyverno(cp, bin, options.profileDir !== undefined);
    const children = [guard.child, kyverno.child];
    // Kyverno is ready for its policy when its cert renewer has written the CA and serving Secrets
    // and its webhook controller has registered the webhook that validates policies.
    await waitFor(
      'Kyverno to register its webhooks',
      async () => {
        const r = await cp.api('GET', '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/kyverno-policy-validating-webhook-cfg');
        return r.status === 200 ? true : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 1000, children },
    );
    const kyvernoReadySeconds = (performance.now() - kyvernoStarted) / 1000;

    console.log(`  Kyverno ${kyvernoVersion()} (cmd/kyverno, out of cluster, ${bin}); this webhook: dist/cli.js serve --kubeconfig`);
    console.log(`  Kyverno's command: ${kyverno.command}`);
    // Without its policy, Kyverno must not be in the DaemonSet path, or the first two phases would include it.
    const early = (await kyvernoDaemonSetWebhooks(cp)).names;
    if (early.length > 0) throw new Error(`Kyverno registered ${early.join(', ')} for DaemonSets before its policy was applied`);
    const procs = { guard: { pid: guard.child.proc.pid! }, kyverno: { pid: kyverno.child.proc.pid! } };
    const none = await phase(cp, 'none', options.n, [MUTATING_NAME], procs);

    await guard.register();
    const ours = await phase(cp, 'guard', options.n, [MUTATING_NAME], procs);
    await cp.kubectl(['delete', 'mutatingwebhookconfiguration,validatingwebhookconfiguration', CONFIGURATION_NAME]);
    await waitPatched(cp, false, 'the API server to stop calling this webhook', children);

    const policyStarted = performance.now();
    // Applied through Kyverno's own policy webhook, which may take a moment to answer after registering.
    await waitFor(
      'Kyverno to accept its ClusterPolicy',
      async () => ((await cp.kubectl(['apply', '-f', join(PEER_DIR, 'policy.yaml')], { allowFail: true })).code === 0 ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 1000, children },
    );
    await waitPatched(cp, true, 'Kyverno to patch DaemonSets (policy ready, webhook rules updated)', children, 120_000);
    const policyReadySeconds = (performance.now() - policyStarted) / 1000;
    const { names: kyvernoNames, caPem: kyvernoCa } = await kyvernoDaemonSetWebhooks(cp);
    const theirs = await phase(cp, 'kyverno', options.n, kyvernoNames, procs);

    // ---- the figures through the API server
    const p = (xs: number[], q: number) => fmt(percentile(xs, q), 2);
    const hist = (ph: Phase) =>
      ph.histogram
        ? `${ph.histogram.count} / ${fmt((ph.histogram.sum / ph.histogram.count) * 1000, 2)} / ${bucketBound(ph.histogram, 50)} / ${bucketBound(ph.histogram, 99)}`
        : '–';
    // What each process spends while nobody calls it (informers, leases, Kyverno's watchdog), per
    // second, from the phase with no webhook registered: subtracted from its CPU time when called.
    const background = { guard: none.cpu.guard / none.seconds, kyverno: none.cpu.kyverno / none.seconds };
    const row = (name: string, ph: Phase, who?: 'guard' | 'kyverno') => [
      name,
      p(ph.latencies, 50),
      p(ph.latencies, 99),
      fmt(percentile(ph.latencies, 50) - percentile(none.latencies, 50), 2),
      fmt(percentile(ph.latencies, 99) - percentile(none.latencies, 99), 2),
      hist(ph),
      who ? fmt(((ph.cpu[who] - background[who] * ph.seconds) / options.n) * 1e6, 0) : '–',
      ph === none ? (ph.patchedAll ? 'yes?!' : 'no') : ph.patchedAll ? 'all' : 'NOT ALL',
    ];
    console.log(
      table(
        [
          `DaemonSet CREATE ×${options.n} (client, ms)`,
          'p50',
          'p99',
          'added p50',
          'added p99',
          'API server webhook histogram: calls / mean ms / p50 / p99',
          'webhook CPU µs/create (idle rate subtracted)',
          'patched',
        ],
        [row('no webhook', none), row(`this webhook (${MUTATING_NAME})`, ours, 'guard'), row(`Kyverno (${kyvernoNames.join(', ')})`, theirs, 'kyverno')],
      ),
    );
    const same = isDeepStrictEqual(ours.affinity, theirs.affinity);
    console.log(
      `  same mutation: the affinity read back from the API server after this webhook and after Kyverno is ${same ? 'IDENTICAL' : 'DIFFERENT'}` +
        ` (${hasRequirement({ spec: { template: { spec: { affinity: ours.affinity } } } }) ? 'with' : 'WITHOUT'} ${REQUIREMENT.key} ${REQUIREMENT.operator} [${REQUIREMENT.values[0]}] in every term; without a webhook: ${isDeepStrictEqual(none.affinity, ours.affinity) ? 'the same?!' : 'unchanged'})`,
    );
    if (!same) console.log(`    this webhook: ${JSON.stringify(ours.affinity)}\n    Kyverno:      ${JSON.stringify(theirs.affinity)}`);

    // ---- h2load straight at each endpoint, same body, interleaved
    const body = scenarios()[0]!;
    // In the control plane's temp dir: removed with it, on a signal too.
    const dir = cp.dir;
    const bodyFile = join(dir, 'mutate.json');
    writeFileSync(bodyFile, body.body);
    floor = await startFloor(cp.dir, join(guard.certDir, CERT_FILE), join(guard.certDir, KEY_FILE));
    const targets = [
      {
        name: 'floor (minimal Node h2)',
        url: `${floor.url}/mutate/daemonsets`,
        base: floor.url,
        path: '/mutate/daemonsets',
        ca: guard.caPem,
        proc: floor.proc,
      },
      {
        name: 'this webhook',
        url: `${guard.url}/mutate/daemonsets`,
        base: guard.url,
        path: '/mutate/daemonsets',
        ca: guard.caPem,
        proc: { pid: guard.child.proc.pid! },
      },
      { name: 'Kyverno', url: `${kyverno.url}/mutate/fail`, base: kyverno.url, path: '/mutate/fail', ca: kyvernoCa, proc: { pid: kyverno.child.proc.pid! } },
    ];
    for (const t of targets.slice(1)) {
      const { status, review } = await post(t.base, t.ca, t.path, body.body);
      const got = outcome(review?.response);
      if (status !== 200 || got !== 'patched') throw new Error(`${t.name} answered the aws-node review ${status} ${got}, expected patched`);
    }
    const modes = {
      '10×10': ['-c', '10', '-m', '10', '-t', '1', '-D', String(options.seconds), '--warm-up-time', String(options.warmupSeconds)],
      '1k/s': ['-c', '10', '-m', '10', '-t', '1', '--rps', '100', '-D', String(options.seconds), '--warm-up-time', String(options.warmupSeconds)],
    } as const;
    const samples = new Map<string, DirectSample[]>();
    for (let run = 0; run < options.runs; run++) {
      for (const [mode, args] of Object.entries(modes)) {
        for (const t of run % 2 === 0 ? targets : [...targets].reverse()) {
          resetPeak(t.proc);
          // A CPU profile of Kyverno's first saturating run, taken by curl while h2load runs (spawnSync blocks this process).
          const profiling =
            options.profileDir && run === 0 && mode === '10×10' && t.name === 'Kyverno'
              ? spawn('curl', ['-sS', '-o', join(options.profileDir, 'kyverno.cpu.pprof'), `${kyverno.pprof}/debug/pprof/profile?seconds=${options.seconds}`], {
                  stdio: 'ignore',
                })
              : undefined;
          const cpu0 = cpuSeconds(t.proc);
          const r = h2load(
            h2,
            t.url,
            bodyFile,
            [...args],
            join(dir, 'h2load.log'),
            options.warmupSeconds,
            (options.seconds + options.warmupSeconds + 30) * 1000,
          );
          const cpu = cpuSeconds(t.proc) - cpu0;
          if (profiling) {
            await new Promise((res) => (profiling.exitCode !== null ? res(null) : profiling.on('close', res)));
            console.log(`  Kyverno CPU profile: ${join(options.profileDir!, 'kyverno.cpu.pprof')} (go tool pprof -top ${bin} FILE)`);
          }
          const k = `${mode}|${t.name}`;
          samples.set(k, [...(samples.get(k) ?? []), { ...r, cpuPerReq: (cpu / r.answered) * 1e6, rss: peakRssMb(t.proc) }]);
        }
      }
    }
    const rows: string[][] = [];
    for (const mode of Object.keys(modes)) {
      for (const t of targets) {
        const list = samples.get(`${mode}|${t.name}`)!;
        const m = (f: (s: DirectSample) => number) => median(list.map(f));
        rows.push([
          t.name,
          mode,
          fmt(
            m((s) => s.rps),
            0,
          ),
          fmt(
            m((s) => s.p50),
            2,
          ),
          fmt(
            m((s) => s.p99),
            2,
          ),
          fmt(
            m((s) => s.max),
            1,
          ),
          fmt(
            m((s) => s.cpuPerReq),
            0,
          ),
          fmt(
            m((s) => s.rss),
            0,
          ),
          String(list.reduce((a, s) => a + s.failed, 0)),
        ]);
      }
    }
    console.log(`\n  h2load straight at each endpoint (aws-node AdmissionReview, ${body.body.length} B; ${options.runs} run(s), medians):`);
    console.log(table(['endpoint', 'load', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'CPU µs/req', 'peak RSS MB', 'failed'], rows));
    const load1 = loadavg();
    console.log(
      `  Kyverno: ${fmt(kyvernoReadySeconds, 1)} s from its CRDs to its policy webhook registered (certificates written), ` +
        `${fmt(policyReadySeconds, 1)} s from applying the policy to DaemonSets patched; ` +
        `load average at start ${load0.map((l) => l.toFixed(2)).join(' ')}, at end ${load1.map((l) => l.toFixed(2)).join(' ')}; part 4 took ${fmt((performance.now() - started) / 1000, 0)} s`,
    );
  } finally {
    if (floor) await stopChild(floor.child);
    await kyverno?.stop();
    await guard?.stop();
    await cp.stop();
  }
}
