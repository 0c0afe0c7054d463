// Hostile input, HTTP/2: a rapid-reset client (CVE-2023-44487 style: open a stream, RST_STREAM it
// at once, in a loop, reconnecting whenever the server sends GOAWAY) against `serve` in snapshot
// mode, while a well-behaved client posts pod placements and times them. Prints the victim's
// latency percentiles, the server's peak RSS and how many log bytes it wrote; asserts nothing
// (the bounds are asserted in test/integration/hostile-h2.test.ts).
// Only 127.0.0.1 is contacted; the attack is bounded in time and count; the server is stopped at the end.
// Run: npm run build && npx tsx bench/hostile-h2.ts [seconds=20] [connections=4] [headers|body]
// Environment: CLI=<path to another build's dist/cli.js> (e.g. the previous commit, for "before"),
// SERVER_NODE_ARGS="--max-old-space-size=192" (node flags for the server), CPU_PROF=<dir> (profile
// the server), SAMPLE_LOG=1 (print the first lines of each log message).

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, constants } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { bindingRequest, review } from '../test/support/reviews.js';
import { WEBHOOK_PATHS } from '../src/webhooks/routes.js';

const seconds = Number(process.argv[2] ?? 20);
const connections = Number(process.argv[3] ?? 4);
const MODE = process.argv[4] === 'body' ? 'body' : 'headers';
const MAX_STREAMS = 2_000_000;
const PORT = 18_000 + (process.pid % 1000);

function rssMiB(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then(
    (s) => Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0) / 1024,
    () => 0,
  );
}

const dir = await mkdtemp(join(tmpdir(), 'cmg-h2-'));
const child = spawn(
  'node_modules/.bin/node',
  [
    ...(process.env.CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CPU_PROF}`] : []),
    ...(process.env.SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean),
    process.env.CLI ?? 'dist/cli.js',
    'serve',
    '--cert-dir',
    dir,
    '--port',
    String(PORT),
    '--host',
    '127.0.0.1',
  ],
  {
    stdio: ['ignore', 'pipe', 'pipe'],
  },
);
let logBytes = 0;
let logLines = 0;
const messages = new Map<string, number>();
let started!: () => void;
const listening = new Promise<void>((resolve) => (started = resolve));
child.stdout.on('data', (chunk: Buffer) => {
  logBytes += chunk.length;
  for (const line of chunk.toString().split('\n')) {
    if (line === '') continue;
    logLines += 1;
    const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 60);
    messages.set(msg, (messages.get(msg) ?? 0) + 1);
    if (process.env.SAMPLE_LOG && (messages.get(msg) ?? 0) <= 2) console.log('sample:', line.slice(0, 400));
  }
  if (chunk.toString().includes('serving admission webhooks')) started();
});
child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
await listening;
const ca = await readFile(join(dir, 'ca.crt'), 'utf8');
const url = `https://127.0.0.1:${PORT}`;
const body = JSON.stringify(review(bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-pending')));
const rssBefore = await rssMiB(child.pid!);
const logBefore = logBytes;

// The well-behaved client: one session, one request at a time, like the API server's.
const latencies: number[] = [];
let victimErrors = 0;
let stop = false;
let advertised: number | undefined;
async function victim(): Promise<void> {
  const session = connect(url, { ca });
  session.on('error', () => {});
  await new Promise((resolve) => session.once('remoteSettings', resolve));
  advertised = session.remoteSettings.maxConcurrentStreams;
  while (!stop) {
    const t0 = performance.now();
    const ok = await new Promise<boolean>((resolve) => {
      const req = session.request({ ':method': 'POST', ':path': WEBHOOK_PATHS.pods, 'content-type': 'application/json' });
      let timedOut = false;
      req.setTimeout(10_000, () => {
        timedOut = true;
        req.close(constants.NGHTTP2_CANCEL);
      });
      req.on('response', () => {});
      req.on('data', () => {});
      req.on('end', () => resolve(!timedOut));
      req.on('error', () => resolve(false));
      req.on('close', () => resolve(false));
      req.end(body);
    });
    if (ok) latencies.push(performance.now() - t0);
    else victimErrors += 1;
    await new Promise((r) => setTimeout(r, 20));
  }
  session.close();
}

// The attacker, in a worker thread: `connections` sessions opening and cancelling streams.
const attackerWorker = new Worker(new URL('../test/support/rapid-reset.mjs', import.meta.url), {
  workerData: { url, ca, path: WEBHOOK_PATHS.pods, connections, seconds, maxStreams: MAX_STREAMS, mode: MODE, body },
});
const attackStats = new Promise<{ opened: number; goaways: number; sessions: number; refused: number }>((resolve, reject) => {
  attackerWorker.once('message', resolve);
  attackerWorker.once('error', reject);
});

let peak = rssBefore;
const sampler = setInterval(() => void rssMiB(child.pid!).then((r) => (peak = Math.max(peak, r))), 200);
const good = victim();
const { opened, goaways, sessions, refused: refusedConnections } = await attackStats;
stop = true;
await good;
await attackerWorker.terminate();
await new Promise((r) => setTimeout(r, 2000));
clearInterval(sampler);
const rssAfter = await rssMiB(child.pid!);
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
await rm(dir, { recursive: true, force: true });

latencies.sort((a, b) => a - b);
const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]?.toFixed(1);
console.log(`advertised SETTINGS_MAX_CONCURRENT_STREAMS: ${advertised}`);
console.log(
  `attack (${MODE}): ${seconds} s, ${connections} connections, ${opened} streams opened and reset, ${sessions} sessions, ${goaways} GOAWAYs, ${refusedConnections} connections refused`,
);
console.log(
  `victim: ${latencies.length} requests ok, ${victimErrors} failed or timed out (10 s); p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${latencies.at(-1)?.toFixed(1)} ms`,
);
console.log(`server RSS: ${rssBefore.toFixed(0)} MiB before, ${peak.toFixed(0)} MiB peak, ${rssAfter.toFixed(0)} MiB 2 s after`);
console.log(
  `server log: ${((logBytes - logBefore) / 1024).toFixed(0)} KiB during the attack (${((logBytes - logBefore) / seconds / 1024).toFixed(0)} KiB/s), ${logLines} lines in all`,
);
for (const [msg, count] of [...messages].sort((a, b) => b[1] - a[1]).slice(0, 6)) console.log(`  ${String(count).padStart(7)}  ${msg}`);
