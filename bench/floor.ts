// Part 1, "server floor vs. this webhook": h2load (HTTP/2 over TLS, as the API server calls a
// webhook) against a minimal Node HTTP/2 server (bench/floor-server.mjs) and the built CLI `serve`
// in snapshot mode, both on the same pinned runtime, both on 127.0.0.1, interleaved in one run so
// the machine's noise hits both alike. Prints medians over several runs and each ratio to the floor.
// Every child is stopped at the end (and on a signal, by the harness's exit handlers).

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsonPatch from 'fast-json-patch';
import { loadSnapshot } from '../src/cluster/snapshot.js';
import { EXAMPLE_SNAPSHOT } from '../src/commands/common.js';
import { defaultConfig } from '../src/config.js';
import { ensureServingCert, CERT_FILE, KEY_FILE } from '../src/certs/local.js';
import { decideDaemonSetAffinity } from '../src/webhooks/daemonset-affinity.js';
import { freePorts, startChild, stopChild, waitFor, type Child } from '../test/harness/controlplane.js';
import { CLI, ROOT, buildDist } from '../test/harness/guard.js';
import { daemonSet, pod } from '../test/support/fixtures.js';
import { bindingRequest, daemonSetRequest, podRequest, review } from '../test/support/reviews.js';
import { fmt, median, percentile, ratio, table } from './stats.js';

export const NODE = join(ROOT, 'node_modules', '.bin', 'node');

export interface FloorOptions {
  runs: number;
  /** h2load -D for the saturating and the fixed-rate runs, seconds. */
  saturateSeconds: number;
  rateSeconds: number;
  warmupSeconds: number;
  /** Extra flags for the webhook's node (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** Only these scenarios (by key). */
  only?: string[];
  /** A git revision: its src/ is built apart and served too, as "before", for an A/B in the same run. */
  compare?: string;
}

export const QUICK: FloorOptions = { runs: 1, saturateSeconds: 2, rateSeconds: 2, warmupSeconds: 1 };
export const FULL: FloorOptions = { runs: 3, saturateSeconds: 3, rateSeconds: 4, warmupSeconds: 1 };

/** h2load from Debian's nghttp2-client: installed here when missing and running as root. */
export function ensureH2load(): string {
  const which = () => spawnSync('sh', ['-c', 'command -v h2load'], { encoding: 'utf8' }).stdout.trim();
  let path = which();
  if (path) return path;
  if (process.getuid?.() !== 0) {
    throw new Error('h2load is not installed: run `sudo apt-get install -y nghttp2-client` (Debian/Ubuntu) and run the bench again');
  }
  console.log('h2load is missing: apt-get install -y nghttp2-client');
  const install = () => spawnSync('apt-get', ['install', '-y', 'nghttp2-client'], { stdio: 'ignore', timeout: 300_000 }).status === 0;
  if (!install()) {
    spawnSync('apt-get', ['update'], { stdio: 'ignore', timeout: 300_000 });
    install();
  }
  path = which();
  if (!path) throw new Error('could not install h2load (apt-get install -y nghttp2-client failed); install it and run the bench again');
  return path;
}

interface Scenario {
  key: string;
  title: string;
  path: string;
  body: string;
  /** What this webhook must answer (checked once before measuring). */
  expect: 'patched' | 'allowed' | 'denied';
}

export function scenarios(): Scenario[] {
  const { view } = loadSnapshot(EXAMPLE_SNAPSHOT, defaultConfig);
  const awsNode = daemonSet('aws-node');
  const decision = decideDaemonSetAffinity(daemonSetRequest(awsNode), view, defaultConfig);
  const patched = jsonPatch.applyPatch(structuredClone(awsNode), (decision.patch ?? []) as jsonPatch.Operation[], false, false).newDocument;
  const nginx = pod('nginx-pod');
  nginx.metadata.namespace = 'default';
  nginx.spec.nodeName = 'node-cilium-ready';
  const body = (request: Parameters<typeof review>[0]) => JSON.stringify(review(request));
  return [
    { key: 'mutate', title: 'mutate aws-node (patch)', path: '/mutate/daemonsets', body: body(daemonSetRequest(awsNode)), expect: 'patched' },
    { key: 'patched', title: 'mutate aws-node (already patched)', path: '/mutate/daemonsets', body: body(daemonSetRequest(patched)), expect: 'allowed' },
    {
      key: 'bind-allowed',
      title: 'bind, allowed (Cilium ready)',
      path: '/validate/pods',
      body: body(bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-ready')),
      expect: 'allowed',
    },
    {
      key: 'bind-denied',
      title: 'bind, denied (Cilium not ready)',
      path: '/validate/pods',
      body: body(bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-pending')),
      expect: 'denied',
    },
    { key: 'create', title: 'pod CREATE with nodeName', path: '/validate/pods', body: body(podRequest(nginx)), expect: 'allowed' },
  ];
}

/** One POST over HTTP/2; the parsed AdmissionReview response. */
export async function post(url: string, ca: string, path: string, body: string): Promise<{ status: number; review: any }> {
  const session = connect(url, { ca });
  try {
    return await new Promise((res, rej) => {
      session.on('error', rej);
      const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' });
      let status = 0;
      let text = '';
      req.setTimeout(5_000, () => req.close());
      req.on('response', (h) => (status = Number(h[':status'])));
      req.setEncoding('utf8').on('data', (d: string) => (text += d));
      req.on('end', () => {
        try {
          res({ status, review: JSON.parse(text) });
        } catch (err) {
          rej(err);
        }
      });
      req.on('error', rej);
      req.end(body);
    });
  } finally {
    session.close();
  }
}

export function outcome(response: any): string {
  if (!response?.allowed) return 'denied';
  return response.patch ? 'patched' : 'allowed';
}

interface Proc {
  pid: number;
}
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** utime + stime of a process, seconds. */
export function cpuSeconds(p: Proc): number {
  const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}
/** Peak resident set size (VmHWM), MB. */
export function peakRssMb(p: Proc): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
/** Current resident set size (VmRSS), MB. */
export function rssMb(p: Proc): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
/** Resets VmHWM to the current RSS (Linux ≥ 4.0, "5" > clear_refs), so each scenario has its own peak. */
export function resetPeak(p: Proc): void {
  try {
    writeFileSync(`/proc/${p.pid}/clear_refs`, '5');
  } catch {
    /* not permitted: the peak is then since start */
  }
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  max: number;
  cpu: number;
  rss: number;
  /** CPU time per request answered, µs (less sensitive to a busy machine than req/s). */
  cpuPerReq: number;
  failed: number;
}

/** Runs h2load once; latencies from its per-request log, after the warm-up. */
export function h2load(
  h2: string,
  url: string,
  bodyFile: string,
  args: string[],
  logFile: string,
  warmupSeconds: number,
  timeoutMs: number,
): Omit<Sample, 'cpu' | 'rss' | 'cpuPerReq'> & { answered: number } {
  rmSync(logFile, { force: true });
  const out = spawnSync(h2, [...args, '-d', bodyFile, '-H', 'content-type: application/json', '--log-file', logFile, url], {
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  if (out.status !== 0) throw new Error(`h2load failed (${out.status ?? out.signal}): ${out.stderr || out.stdout}`);
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out.stdout)?.[1] ?? NaN);
  const failed = Number(/(\d+) failed/.exec(out.stdout)?.[1] ?? 0);
  const rows = readFileSync(logFile, 'utf8')
    .trim()
    .split('\n')
    .map((line) => line.split('\t').map(Number) as [number, number, number]);
  const first = Math.min(...rows.map((r) => r[0]));
  const measured = rows.filter((r) => r[0] >= first + warmupSeconds * 1e6 && r[1] === 200).map((r) => r[2] / 1000);
  measured.sort((a, b) => a - b);
  return { rps, p50: percentile(measured, 50), p99: percentile(measured, 99), max: measured.at(-1) ?? NaN, failed, answered: rows.length };
}

interface Server {
  name: 'floor' | 'webhook' | 'before';
  child: Child;
  url: string;
  proc: Proc;
}

export async function startFloor(dir: string, cert: string, key: string): Promise<Server> {
  const child = startChild('floor', NODE, [join(ROOT, 'bench', 'floor-server.mjs'), cert, key], dir);
  const port = await waitFor(
    'the floor server',
    async () => /listening (\d+)/.exec(existsSync(child.logPath) ? readFileSync(child.logPath, 'utf8') : '')?.[1],
    { timeoutMs: 20_000, intervalMs: 100, children: [child] },
  );
  return { name: 'floor', child, url: `https://127.0.0.1:${port}`, proc: { pid: child.proc.pid! } };
}

/** Builds `rev`'s src/ into .local/bench-base/REV/dist (node_modules resolve from the checkout); its cli.js. */
export function buildRevision(rev: string): string {
  const sha = execFileSync('git', ['rev-parse', '--short', rev], { cwd: ROOT, encoding: 'utf8' }).trim();
  const base = join(ROOT, '.local', 'bench-base', sha);
  const cli = join(base, 'dist', 'cli.js');
  if (existsSync(cli)) return cli;
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base, { recursive: true });
  execFileSync('sh', ['-c', `git archive ${sha} src examples tsconfig.json tsconfig.build.json | tar -x -C ${JSON.stringify(base)}`], { cwd: ROOT });
  execFileSync(NODE, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(base, 'tsconfig.build.json')], { cwd: base, stdio: 'inherit' });
  return cli;
}

async function startWebhook(dir: string, certDir: string, ca: string, nodeFlags: string[] = [], cli = CLI, name: Server['name'] = 'webhook'): Promise<Server> {
  const [port] = await freePorts(1);
  const args = [
    ...nodeFlags,
    cli,
    'serve',
    '--cluster-state',
    join(ROOT, 'examples', 'cluster-state.yaml'),
    '--cert-dir',
    certDir,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
  ];
  const child = startChild(name, NODE, args, dir);
  const url = `https://127.0.0.1:${port}`;
  await waitFor('the webhook to serve', async () => ((await post(url, ca, '/validate/pods', scenarios()[2]!.body)).status === 200 ? true : undefined), {
    timeoutMs: 30_000,
    intervalMs: 200,
    children: [child],
  });
  return { name, child, url, proc: { pid: child.proc.pid! } };
}

export interface FloorResult {
  scenario: string;
  mode: 'saturating' | 'rate';
  floor: Sample;
  webhook: Sample;
  before?: Sample;
}

export async function runFloor(options: FloorOptions): Promise<FloorResult[]> {
  const h2 = ensureH2load();
  await buildDist();
  const beforeCli = options.compare ? buildRevision(options.compare) : undefined;
  const dir = await mkdtemp(join(tmpdir(), 'cmg-bench-floor-'));
  mkdirSync(join(dir, 'logs'));
  const certDir = join(dir, 'certs');
  const servers: Server[] = [];
  try {
    const caPem = (await ensureServingCert(certDir)).caPem ?? '';
    servers.push(await startFloor(dir, join(certDir, CERT_FILE), join(certDir, KEY_FILE)));
    servers.push(await startWebhook(dir, certDir, caPem, options.nodeFlags));
    if (beforeCli) servers.push(await startWebhook(dir, certDir, caPem, [], beforeCli, 'before'));
    const all = scenarios().filter((s) => !options.only || options.only.includes(s.key));
    // The webhook must decide as expected, or the figures measure the wrong path.
    for (const s of all) {
      const { status, review: r } = await post(servers[1]!.url, caPem, s.path, s.body);
      const got = outcome(r.response);
      if (status !== 200 || got !== s.expect) throw new Error(`${s.title}: the webhook answered ${status} ${got}, expected ${s.expect}`);
      const floor = await post(servers[0]!.url, caPem, s.path, s.body);
      if (floor.status !== 200 || floor.review.response.uid !== r.response.uid) throw new Error(`${s.title}: the floor server answered ${floor.status}`);
    }
    const samples = new Map<string, Sample[]>();
    const modes = {
      // 10 connections × 10 concurrent streams, as fast as the server answers.
      saturating: ['-c', '10', '-m', '10', '-t', '1', '-D', String(options.saturateSeconds), '--warm-up-time', String(options.warmupSeconds)],
      // 1,000 req/s: 10 connections × 100 req/s each, one stream at a time per connection.
      rate: ['-c', '10', '-m', '10', '-t', '1', '--rps', '100', '-D', String(options.rateSeconds), '--warm-up-time', String(options.warmupSeconds)],
    } as const;
    for (let run = 0; run < options.runs; run++) {
      for (const s of all) {
        const bodyFile = join(dir, `${s.key}.json`);
        writeFileSync(bodyFile, s.body);
        for (const [mode, args] of Object.entries(modes)) {
          // Alternate which server goes first, so neither always runs right after the other's load.
          const order = run % 2 === 0 ? servers : [...servers].reverse();
          for (const server of order) {
            resetPeak(server.proc);
            const cpu0 = cpuSeconds(server.proc);
            const seconds = mode === 'rate' ? options.rateSeconds : options.saturateSeconds;
            const r = h2load(
              h2,
              server.url + s.path,
              bodyFile,
              [...args],
              join(dir, 'h2load.log'),
              options.warmupSeconds,
              (seconds + options.warmupSeconds + 30) * 1000,
            );
            const cpu = cpuSeconds(server.proc) - cpu0;
            const sample: Sample = { ...r, cpu, cpuPerReq: (cpu / r.answered) * 1e6, rss: peakRssMb(server.proc) };
            const k = `${s.key}|${mode}|${server.name}`;
            samples.set(k, [...(samples.get(k) ?? []), sample]);
          }
        }
      }
      process.stdout.write(`  run ${run + 1}/${options.runs} done\n`);
    }
    const med = (list: Sample[]): Sample => ({
      rps: median(list.map((x) => x.rps)),
      p50: median(list.map((x) => x.p50)),
      p99: median(list.map((x) => x.p99)),
      max: median(list.map((x) => x.max)),
      cpu: median(list.map((x) => x.cpu)),
      rss: median(list.map((x) => x.rss)),
      cpuPerReq: median(list.map((x) => x.cpuPerReq)),
      failed: list.reduce((a, x) => a + x.failed, 0),
    });
    const results: FloorResult[] = [];
    for (const s of all) {
      for (const mode of ['saturating', 'rate'] as const) {
        results.push({
          scenario: s.title,
          mode,
          floor: med(samples.get(`${s.key}|${mode}|floor`)!),
          webhook: med(samples.get(`${s.key}|${mode}|webhook`)!),
          ...(beforeCli ? { before: med(samples.get(`${s.key}|${mode}|before`)!) } : {}),
        });
      }
    }
    // The decision log: one line per admission, as promised (counted, not assumed).
    const logBytes = statSync(servers[1]!.child.logPath).size;
    printFloor(results, all, logBytes);
    return results;
  } finally {
    await Promise.all(servers.map((s) => stopChild(s.child)));
    rmSync(dir, { recursive: true, force: true });
  }
}

function printFloor(results: FloorResult[], all: Scenario[], logBytes: number): void {
  const rows: string[][] = [];
  for (const r of results) {
    const f = r.floor;
    const w = r.webhook;
    rows.push([
      r.scenario,
      r.mode === 'saturating' ? '10×10' : '1k/s',
      `${fmt(f.rps, 0)} / ${fmt(w.rps, 0)}`,
      ratio(w.rps, f.rps),
      `${fmt(f.p50, 2)} / ${fmt(w.p50, 2)}`,
      `${fmt(f.p99, 2)} / ${fmt(w.p99, 2)}`,
      ratio(w.p99, f.p99),
      `${fmt(f.max, 1)} / ${fmt(w.max, 1)}`,
      `${fmt(f.cpu, 2)} / ${fmt(w.cpu, 2)}`,
      `${fmt(f.cpuPerReq, 0)} / ${fmt(w.cpuPerReq, 0)}`,
      `${fmt(f.rss, 0)} / ${fmt(w.rss, 0)}`,
      `${f.failed + w.failed}`,
    ]);
  }
  console.log(
    table(
      ['scenario', 'load', 'req/s floor / webhook', 'ratio', 'p50 ms', 'p99 ms', 'p99 ratio', 'max ms', 'CPU s', 'CPU µs/req', 'peak RSS MB', 'failed'],
      rows,
    ),
  );
  if (results.some((r) => r.before)) {
    console.log('\n  A/B in the same run: "before" (--compare) vs. this checkout');
    console.log(
      table(
        ['scenario', 'load', 'req/s before / now', 'ratio to floor before / now', 'CPU µs/req before / now', 'p99 ms before / now', 'max ms before / now'],
        results.map((r) => [
          r.scenario,
          r.mode === 'saturating' ? '10×10' : '1k/s',
          `${fmt(r.before!.rps, 0)} / ${fmt(r.webhook.rps, 0)}`,
          `${ratio(r.before!.rps, r.floor.rps)} / ${ratio(r.webhook.rps, r.floor.rps)}`,
          `${fmt(r.before!.cpuPerReq, 0)} / ${fmt(r.webhook.cpuPerReq, 0)}`,
          `${fmt(r.before!.p99, 2)} / ${fmt(r.webhook.p99, 2)}`,
          `${fmt(r.before!.max, 1)} / ${fmt(r.webhook.max, 1)}`,
        ]),
      ),
    );
  }
  console.log(`  bodies: ${all.map((s) => `${s.key} ${s.body.length} B`).join(', ')}; webhook decision log written: ${fmt(logBytes / 1e6, 1)} MB`);
}
