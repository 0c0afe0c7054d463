// Part 3, "scale": the local control plane filled with N nodes (half labelled cni=cilium, each of
// those with a CiliumNode and a Ready Cilium agent pod) and P pods spread over them (status with a
// pod IP; every pod on a labelled node but 1% has a CiliumEndpoint), written by parallel API calls.
// Then, at each size: the webhook (serve --kubeconfig) — time to ready (caches synced), RSS, and
// per-request latency at 1,000 req/s; the reaper (reaper --dry-run) — time to ready, RSS; `report`
// (sync + one full pass, then exit) — wall time and peak RSS; and detect(), the reaper's full pass,
// timed in this process over live informer caches of the same cluster.
//
// The objects are plain API objects: kwok does not manage these nodes (no kwok annotation), and
// the statuses kwok or a kubelet would write (pod IP, Ready) are written here through /status.
// kwok heart-beating 2,000 nodes and 20,000 pods would take the 2 shared cores this measures on.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { kubeconfigAccess } from '../src/cluster/kube-config.js';
import { startLiveView } from '../src/cluster/informers.js';
import { isReaperSynced } from '../src/cluster/view.js';
import { defaultConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { detect } from '../src/reaper/detect.js';
import { apiCall, startControlPlane, type ControlPlane } from '../test/harness/controlplane.js';
import { CLI, installCiliumCrds, startGuard, startReaper } from '../test/harness/guard.js';
import { bindingRequest, review } from '../test/support/reviews.js';
import { NODE, buildRevision, ensureH2load, peakRssMb, rssMb } from './floor.js';
import { fmt, median, percentile, table } from './stats.js';

const NS = 'scale';

interface Api {
  call(method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number; body: string }>;
  close(): void;
}

export function apiClient(cp: ControlPlane): Api {
  const ca = readFileSync(cp.caFile);
  const agent = new Agent({ keepAlive: true, maxSockets: 32, ca });
  return {
    call: (method, path, body, contentType = 'application/json') =>
      apiCall(cp.server, cp.token, ca, method, path, body, { agent, timeoutMs: 30_000, contentType }),
    close: () => agent.destroy(),
  };
}

/** Runs fn over items with at most `width` in flight; the first failure is thrown after the rest settle. */
async function parallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length && failure === undefined) {
        const item = items[next++]!;
        try {
          await fn(item);
        } catch (err) {
          failure ??= err;
        }
      }
    }),
  );
  if (failure !== undefined) throw failure;
}

async function expect2xx(p: Promise<{ status: number; body: string }>, what: string): Promise<void> {
  const r = await p;
  // 409: already there (a size builds on the previous one).
  if ((r.status < 200 || r.status > 299) && r.status !== 409) throw new Error(`${what}: HTTP ${r.status} ${r.body.slice(0, 300)}`);
}

const nodeName = (i: number) => `scale-node-${i}`;
const labelled = (i: number) => i % 2 === 0;
const ipOf = (i: number) => `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const nodeIp = (i: number) => `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

/** Adds nodes [fromNodes, nodes) and pods [fromPods, pods); pod i lives on node i % nodes. */
export async function populate(api: Api, from: { nodes: number; pods: number }, to: { nodes: number; pods: number }): Promise<number> {
  const t0 = performance.now();
  const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, k) => a + k);
  const readyAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const running = (ip: string) => ({
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], startTime: readyAt, conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: readyAt }] },
  });
  await parallel(range(from.nodes, to.nodes), 32, async (i) => {
    const name = nodeName(i);
    await expect2xx(
      api.call('POST', '/api/v1/nodes', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name, labels: { 'kubernetes.io/hostname': name, ...(labelled(i) ? { cni: 'cilium' } : {}) } },
      }),
      `node ${name}`,
    );
    if (!labelled(i)) return;
    await expect2xx(
      api.call('POST', '/apis/cilium.io/v2/ciliumnodes', {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNode',
        metadata: { name },
        spec: { addresses: [{ type: 'InternalIP', ip: nodeIp(i) }], ipam: { podCIDRs: [`10.${64 + (i >> 8)}.${i & 255}.0/24`] } },
      }),
      `CiliumNode ${name}`,
    );
    const agent = `cilium-${name}`;
    await expect2xx(
      api.call('POST', '/api/v1/namespaces/kube-system/pods', {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: agent, namespace: 'kube-system', labels: { 'k8s-app': 'cilium', 'app.kubernetes.io/part-of': 'cilium' } },
        spec: {
          nodeName: name,
          hostNetwork: true,
          tolerations: [{ operator: 'Exists' }],
          containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium:v1.18.4' }],
        },
      }),
      `agent pod ${agent}`,
    );
    await expect2xx(
      api.call('PATCH', `/api/v1/namespaces/kube-system/pods/${agent}/status`, running(nodeIp(i)), 'application/merge-patch+json'),
      `agent status ${agent}`,
    );
  });
  await parallel(range(from.pods, to.pods), 32, async (i) => {
    const name = `app-${i}`;
    const node = i % to.nodes;
    const ip = ipOf(i);
    await expect2xx(
      api.call('POST', `/api/v1/namespaces/${NS}/pods`, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: NS, labels: { app: `app-${i % 50}` } },
        spec: { nodeName: nodeName(node), tolerations: [{ operator: 'Exists' }], containers: [{ name: 'app', image: 'registry.k8s.io/pause:3.10' }] },
      }),
      `pod ${name}`,
    );
    await expect2xx(api.call('PATCH', `/api/v1/namespaces/${NS}/pods/${name}/status`, running(ip), 'application/merge-patch+json'), `pod status ${name}`);
    // Cilium manages the pods on labelled nodes, but 1%: the reaper's findings.
    if (labelled(node) && i % 100 !== 1) {
      await expect2xx(
        api.call('POST', `/apis/cilium.io/v2/namespaces/${NS}/ciliumendpoints`, {
          apiVersion: 'cilium.io/v2',
          kind: 'CiliumEndpoint',
          metadata: { name, namespace: NS },
          status: { id: 1000 + (i % 60000), state: 'ready', networking: { node: nodeIp(node), addressing: [{ ipv4: ip }] } },
        }),
        `CiliumEndpoint ${name}`,
      );
    }
  });
  return (performance.now() - t0) / 1000;
}

interface SizeResult {
  nodes: number;
  pods: number;
  populateS: number;
  webhookReadyS: number;
  webhookRss: number;
  webhookRssAfterLoad: number;
  p50: number;
  p99: number;
  max: number;
  reaperReadyS: number;
  reaperRss: number;
  reportS: number;
  reportPeakRss: number;
  syncInProcessS: number;
  /** Heap the reaper's caches keep (after GC), MB, in this process. */
  heapMb: number;
  syncGzipS: number;
  passMs: number;
  /** The --compare revision at the same size, close in time. */
  before?: Pick<SizeResult, 'webhookReadyS' | 'webhookRss' | 'reaperReadyS' | 'reaperRss' | 'reportS' | 'reportPeakRss' | 'syncInProcessS' | 'heapMb'>;
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapMbNow = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1e6;
};

type StartLiveView = typeof startLiveView;

/**
 * The credentials a build's startLiveView takes: a KubeAccess (kube-config.ts), or, for a
 * --compare revision from before it existed, client-node's KubeConfig (imported for it only).
 */
async function accessFor(cp: ControlPlane, impl: StartLiveView): Promise<Parameters<StartLiveView>[0]> {
  if (impl === startLiveView || !(impl as { legacyKubeConfig?: boolean }).legacyKubeConfig) return kubeconfigAccess([cp.kubeconfigPath], { explicit: true });
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  return kc as unknown as Parameters<StartLiveView>[0];
}

/**
 * The reaper's caches (all of them, webhook's and reaper's, without unscheduled pods) opened in
 * this process with `impl` (this checkout's startLiveView or the --compare build's): seconds until
 * every one has synced, and the heap they keep once synced (after GC). The view is returned
 * stopped, for the pass to be timed on.
 */
async function syncInProcess(cp: ControlPlane, impl: StartLiveView, options: { gzip?: boolean } = {}) {
  const kc = await accessFor(cp, impl);
  const heapBefore = heapMbNow();
  const t0 = performance.now();
  const live = impl(kc, defaultConfig, createLogger({ level: 'silent' }), { withReaperCaches: true, withoutUnscheduledPods: true, ...options });
  try {
    await live.whenSynced();
    for (let i = 0; i < 6000 && !isReaperSynced(live.view); i++) await new Promise((r) => setTimeout(r, 10));
    if (!isReaperSynced(live.view)) throw new Error('the reaper caches did not sync within 60 s');
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, heapMb: heapMbNow() - heapBefore, view: live.view };
  } finally {
    await live.stop();
  }
}

/** h2load at 1,000 req/s for `seconds` against the webhook; latencies (ms) from its per-request log. */
function rate(url: string, body: string, dir: string, seconds: number): number[] {
  const bodyFile = join(dir, 'scale-bind.json');
  const logFile = join(dir, 'scale-h2load.log');
  writeFileSync(bodyFile, body);
  const out = spawnSync(
    ensureH2load(),
    ['-c', '10', '-m', '10', '--rps', '100', '-D', String(seconds), '-d', bodyFile, '-H', 'content-type: application/json', '--log-file', logFile, url],
    { encoding: 'utf8', timeout: (seconds + 30) * 1000 },
  );
  if (out.status !== 0) throw new Error(`h2load failed: ${out.stderr || out.stdout}`);
  return readFileSync(logFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split('\t'))
    .filter((f) => f[1] === '200')
    .map((f) => Number(f[2]) / 1000)
    .sort((a, b) => a - b);
}

/** `report` as a user runs it: process start, list everything, one pass, print, exit. Wall seconds and peak RSS (MB). */
function timeReport(cp: ControlPlane, cli = CLI): Promise<{ seconds: number; peakRss: number }> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const { KUBERNETES_SERVICE_HOST: _inCluster, ...env } = process.env;
    const child = spawn('/usr/bin/time', ['-f', 'maxrss_kb=%M', NODE, cli, 'report', '--kubeconfig', cp.kubeconfigPath, '--timeout', '300'], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 400_000);
    child.on('error', rej);
    child.on('close', (code) => {
      clearTimeout(timer);
      const kb = Number(/maxrss_kb=(\d+)/.exec(err)?.[1] ?? NaN);
      if (code !== 0) rej(new Error(`report exited ${code}: ${err.slice(-1000)}`));
      else res({ seconds: (performance.now() - t0) / 1000, peakRss: kb / 1024 });
    });
  });
}

/** The webhook (ready, idle RSS) and the reaper (ready, RSS after its first pass) of one build. */
async function processes(cp: ControlPlane, cli: string): Promise<{ webhookReadyS: number; webhookRss: number; reaperReadyS: number; reaperRss: number }> {
  let t0 = performance.now();
  const guard = await startGuard(cp, { cli });
  const webhookReadyS = (performance.now() - t0) / 1000;
  const webhookRss = rssMb({ pid: guard.child.proc.pid! });
  await guard.stop();
  t0 = performance.now();
  const reaper = await startReaper(cp, { args: ['--dry-run'], cli });
  const reaperReadyS = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 2_000)); // its first pass
  const reaperRss = peakRssMb({ pid: reaper.child.proc.pid! });
  await reaper.stop();
  return { webhookReadyS, webhookRss, reaperReadyS, reaperRss };
}

async function measure(
  cp: ControlPlane,
  size: { nodes: number; pods: number },
  populateS: number,
  rateSeconds: number,
  base?: { cli: string; startLiveView: StartLiveView },
): Promise<SizeResult> {
  // The --compare build first, then this one, close in time.
  const beforeProcs = base ? await processes(cp, base.cli) : undefined;
  const beforeReport = base ? await timeReport(cp, base.cli) : undefined;

  // The webhook.
  let t0 = performance.now();
  const guard = await startGuard(cp);
  const webhookReadyS = (performance.now() - t0) / 1000;
  const proc = { pid: guard.child.proc.pid! };
  const webhookRss = rssMb(proc);
  // A bind of a pod the cache holds unscheduled, to a labelled node whose agent is Ready: the full readiness path.
  const body = JSON.stringify(review(bindingRequest(NS, 'scale-unscheduled', nodeName(0))));
  const latencies = rate(`${guard.url}/validate/pods`, body, cp.dir, rateSeconds);
  const webhookRssAfterLoad = peakRssMb(proc);
  await guard.stop();

  // The reaper, observing only.
  t0 = performance.now();
  const reaper = await startReaper(cp, { args: ['--dry-run'] });
  const reaperReadyS = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 2_000)); // its first pass
  const reaperRss = peakRssMb({ pid: reaper.child.proc.pid! });
  await reaper.stop();

  const report = await timeReport(cp);

  // In this process: every reaper cache synced (before / this / this with gzip), then detect(), the full pass.
  const beforeSync = base ? await syncInProcess(cp, base.startLiveView) : undefined;
  const gzipSync = await syncInProcess(cp, startLiveView, { gzip: true });
  const synced = await syncInProcess(cp, startLiveView);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const s = performance.now();
    detect(synced.view, defaultConfig, new Date());
    times.push(performance.now() - s);
  }
  return {
    ...size,
    populateS,
    webhookReadyS,
    webhookRss,
    webhookRssAfterLoad,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.at(-1) ?? NaN,
    reaperReadyS,
    reaperRss,
    reportS: report.seconds,
    reportPeakRss: report.peakRss,
    syncInProcessS: synced.seconds,
    heapMb: synced.heapMb,
    syncGzipS: gzipSync.seconds,
    passMs: median(times),
    ...(beforeProcs && beforeReport && beforeSync
      ? {
          before: {
            ...beforeProcs,
            reportS: beforeReport.seconds,
            reportPeakRss: beforeReport.peakRss,
            syncInProcessS: beforeSync.seconds,
            heapMb: beforeSync.heapMb,
          },
        }
      : {}),
  };
}

export async function runScale(sizes: Array<{ nodes: number; pods: number }>, rateSeconds: number, compare?: string): Promise<void> {
  ensureH2load();
  let base: { cli: string; startLiveView: StartLiveView } | undefined;
  if (compare) {
    const cli = buildRevision(compare);
    const mod = (await import(join(cli, '..', 'cluster', 'informers.js'))) as { startLiveView: StartLiveView };
    // A revision from before src/cluster/kube-config.ts took client-node's KubeConfig.
    const legacyKubeConfig = !existsSync(join(cli, '..', 'cluster', 'kube-config.js'));
    base = { cli, startLiveView: Object.assign((...args: Parameters<StartLiveView>) => mod.startLiveView(...args), { legacyKubeConfig }) };
  }
  const cp = await startControlPlane({});
  const api = apiClient(cp);
  const results: SizeResult[] = [];
  try {
    await installCiliumCrds(cp);
    await expect2xx(api.call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }), 'namespace');
    await expect2xx(
      api.call('POST', `/api/v1/namespaces/${NS}/pods`, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'scale-unscheduled', namespace: NS },
        spec: { schedulerName: 'bench-no-scheduler', containers: [{ name: 'app', image: 'registry.k8s.io/pause:3.10' }] },
      }),
      'unscheduled pod',
    );
    let done = { nodes: 0, pods: 0 };
    for (const size of sizes) {
      process.stdout.write(`  writing ${size.nodes} nodes / ${size.pods} pods …`);
      const populateS = await populate(api, done, size);
      process.stdout.write(` ${fmt(populateS, 0)} s; measuring\n`);
      done = size;
      results.push(await measure(cp, size, populateS, rateSeconds, base));
    }
  } finally {
    api.close();
    if (results.length > 0) printScale(results, compare);
    await cp.stop();
  }
}

function printScale(results: SizeResult[], compare?: string): void {
  console.log(
    table(
      [
        'nodes / pods',
        'webhook ready s',
        'webhook RSS MB (idle / after load)',
        'bind p50 / p99 / max ms @1k/s',
        'reaper ready s',
        'reaper RSS MB',
        'report s / peak RSS MB',
        'sync in-process s (gzip)',
        'caches heap MB',
        'full pass ms',
        'written in s',
      ],
      results.map((r) => [
        `${r.nodes} / ${r.pods}`,
        fmt(r.webhookReadyS, 1),
        `${fmt(r.webhookRss, 0)} / ${fmt(r.webhookRssAfterLoad, 0)}`,
        `${fmt(r.p50, 2)} / ${fmt(r.p99, 2)} / ${fmt(r.max, 1)}`,
        fmt(r.reaperReadyS, 1),
        fmt(r.reaperRss, 0),
        `${fmt(r.reportS, 1)} / ${fmt(r.reportPeakRss, 0)}`,
        `${fmt(r.syncInProcessS, 2)} (${fmt(r.syncGzipS, 2)})`,
        fmt(r.heapMb, 0),
        fmt(r.passMs, 1),
        fmt(r.populateS, 0),
      ]),
    ),
  );
  if (results.length > 1) {
    const [a, b] = [results[0]!, results.at(-1)!];
    const growth = (x: number, y: number) => `${fmt(y / x, 1)}×`;
    console.log(
      `  growth from ${a.nodes}/${a.pods} to ${b.nodes}/${b.pods} (objects ×${fmt(b.pods / a.pods, 0)}): webhook RSS ${growth(a.webhookRss, b.webhookRss)}, ` +
        `reaper RSS ${growth(a.reaperRss, b.reaperRss)}, webhook ready ${growth(a.webhookReadyS, b.webhookReadyS)}, full pass ${growth(a.passMs, b.passMs)}`,
    );
  }
  const ab = results.filter((r) => r.before);
  if (ab.length > 0) {
    console.log(`\n  A/B at each size, close in time: "before" (--compare ${compare}) / this checkout`);
    console.log(
      table(
        [
          'nodes / pods',
          'webhook ready s',
          'webhook RSS MB (idle)',
          'reaper ready s',
          'reaper RSS MB',
          'report s',
          'report peak RSS MB',
          'sync in-process s',
          'caches heap MB',
        ],
        ab.map((r) => {
          const b = r.before!;
          const pair = (x: number, y: number, d: number) => `${fmt(x, d)} / ${fmt(y, d)}`;
          return [
            `${r.nodes} / ${r.pods}`,
            pair(b.webhookReadyS, r.webhookReadyS, 1),
            pair(b.webhookRss, r.webhookRss, 0),
            pair(b.reaperReadyS, r.reaperReadyS, 1),
            pair(b.reaperRss, r.reaperRss, 0),
            pair(b.reportS, r.reportS, 1),
            pair(b.reportPeakRss, r.reportPeakRss, 0),
            pair(b.syncInProcessS, r.syncInProcessS, 2),
            pair(b.heapMb, r.heapMb, 0),
          ];
        }),
      ),
    );
  }
}
