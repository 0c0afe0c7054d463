// Hostile input, HTTP/2, against the real HTTPS server in-process: what a client sees in the
// server's SETTINGS, header limits, the connection cap, and a rapid-reset client (opening streams
// and resetting each at once, reconnecting when the server ends its session) running in a worker
// thread while a well-behaved client keeps posting pod placements. Loopback only; every loop and
// the attack are bounded in count and time. Latency bounds are generous for a loaded 2-core machine.

import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type ClientHttp2Session, type ServerHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSnapshot } from '../../src/cluster/snapshot.js';
import { isSynced, webhookSyncState } from '../../src/cluster/view.js';
import { defaultConfig } from '../../src/config.js';
import { EXAMPLE_SNAPSHOT } from '../../src/main.js';
import { Metrics } from '../../src/metrics.js';
import { HTTP2_LIMITS } from '../../src/server/limits.js';
import { startServer, type ServerHandle } from '../../src/server/start.js';
import { ensureServingCert } from '../../src/certs/local.js';
import { podPlacementHandler } from '../../src/webhooks/pod-placement.js';
import { bindingRequest, review } from '../support/reviews.js';
import { capturingLogger, h2Request, h2Session } from '../support/https-client.js';
import { WEBHOOK_PATHS } from '../../src/webhooks/routes.js';

let dir: string;
let caPem: string;
const servers: ServerHandle[] = [];
const { view } = loadSnapshot(EXAMPLE_SNAPSHOT, defaultConfig);

async function serve(extra: { maxConnections?: number } = {}) {
  const captured = capturingLogger();
  const metrics = new Metrics({ defaultMetrics: false });
  const server = await startServer({
    handlers: [{ path: WEBHOOK_PATHS.pods, handler: podPlacementHandler(defaultConfig, view) }],
    readiness: () => ({ ready: isSynced(view), detail: webhookSyncState(view) }),
    metrics,
    logger: captured.logger,
    certDir: dir,
    host: '127.0.0.1',
    port: 0,
    // Attackers' sessions may still be open when the file ends: cut them after 2 s, not 20.
    shutdownTimeoutMs: 2_000,
    ...extra,
  });
  servers.push(server);
  return { server, metrics, ...captured };
}

/** Resolves with how a new HTTP/2 connection ended up: connected, or refused by the server. */
function tryConnect(url: string): Promise<{ session: ClientHttp2Session; connected: boolean }> {
  return new Promise((resolve) => {
    const session = connect(url, { ca: caPem });
    session.on('error', () => resolve({ session, connected: false }));
    session.once('close', () => resolve({ session, connected: false }));
    session.once('connect', () => resolve({ session, connected: true }));
  });
}

async function metricValue(metrics: Metrics, name: string): Promise<number> {
  const text = await metrics.text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(name))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cmg-hostile-h2-'));
  caPem = (await ensureServingCert(dir)).caPem ?? '';
});

afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await rm(dir, { recursive: true, force: true });
}, 30_000);

describe('HTTP/2 limits a client sees', () => {
  it('advertises 250 concurrent streams and a 16 KiB header list in its SETTINGS', async () => {
    const { server } = await serve();
    const session = connect(server.url, { ca: caPem });
    const settings = await new Promise<ClientHttp2Session['remoteSettings']>((resolve) => session.once('remoteSettings', resolve));
    session.close();
    expect(settings.maxConcurrentStreams).toBe(250);
    expect(settings.maxConcurrentStreams).toBe(HTTP2_LIMITS.maxConcurrentStreams);
    expect(settings.maxHeaderListSize).toBe(16 * 1024);
  });

  it('never has more than 250 streams open on one connection: a client holding 300 open waits for the rest', async () => {
    const { server } = await serve();
    let open = 0;
    let mostOpen = 0;
    (server.app.server as unknown as NodeJS.EventEmitter).on('session', (session: ServerHttp2Session) =>
      session.on('stream', (stream) => {
        open += 1;
        mostOpen = Math.max(mostOpen, open);
        stream.once('close', () => (open -= 1));
      }),
    );
    const session = await h2Session(server.url, caPem);
    await h2Request(session, { path: '/healthz' }); // the client now knows the server's SETTINGS
    const placement = JSON.stringify(review(bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-pending')));
    // 300 requests whose bodies are all half-sent: each holds its stream open until finished.
    const streams = Array.from({ length: 300 }, () => {
      const stream = session.request({ ':method': 'POST', ':path': WEBHOOK_PATHS.pods, 'content-type': 'application/json' }, { endStream: false });
      stream.write(placement.slice(0, 50));
      return stream;
    });
    const deadline = Date.now() + 10_000;
    while (open < 250 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(open).toBe(250);
    const statuses = await Promise.all(
      streams.map(
        (stream) =>
          new Promise<number>((resolve, reject) => {
            stream.on('response', (headers) => resolve(Number(headers[':status'])));
            stream.on('error', reject);
            stream.end(placement.slice(50));
            stream.resume();
          }),
      ),
    );
    expect(statuses.every((status) => status === 200)).toBe(true);
    expect(mostOpen).toBe(250);
    session.close();
  });

  it('refuses a request whose headers are too large or too many, and the connection keeps serving', async () => {
    const { server } = await serve();
    const session = await h2Session(server.url, caPem);
    // node applies the limit once the client has acknowledged the server's SETTINGS (before that,
    // nghttp2's local settings are still the defaults and node's own 64 KiB cap applies): one round trip.
    expect((await h2Request(session, { path: '/healthz' })).status).toBe(200);
    await expect(h2Request(session, { path: '/healthz', headers: { 'x-big': 'a'.repeat(20_000) } })).rejects.toMatchObject({
      code: 'ERR_HTTP2_STREAM_ERROR',
    });
    const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`x-h${i}`, 'v']));
    await expect(h2Request(session, { path: '/healthz', headers: many })).rejects.toMatchObject({ code: 'ERR_HTTP2_STREAM_ERROR' });
    expect((await h2Request(session, { path: '/healthz', headers: { 'x-small': 'a'.repeat(8_000) } })).status).toBe(200);
    session.close();
  });

  it('closes connections beyond the cap on arrival, counts them, and accepts again once one closes', async () => {
    const { server, metrics } = await serve({ maxConnections: 3 });
    const open = await Promise.all([1, 2, 3].map(() => h2Session(server.url, caPem)));
    const fourth = await tryConnect(server.url);
    expect(fourth.connected).toBe(false);
    fourth.session.destroy();
    expect(await metricValue(metrics, 'cmg_connections_dropped_total')).toBe(1);
    // The three that got in still work.
    for (const session of open) expect((await h2Request(session, { path: '/healthz' })).status).toBe(200);
    open[0]!.destroy();
    let again = await tryConnect(server.url);
    for (let i = 0; i < 20 && !again.connected; i++) {
      // The server learns of the close asynchronously; bounded retries.
      again.session.destroy();
      await new Promise((resolve) => setTimeout(resolve, 50));
      again = await tryConnect(server.url);
    }
    expect(again.connected).toBe(true);
    again.session.close();
    for (const session of open.slice(1)) session.close();
  });
});

interface AttackStats {
  opened: number;
  goaways: number;
  sessions: number;
  refused: number;
}

describe('a rapid-reset client', () => {
  it.each(['headers', 'body'] as const)(
    'resetting streams right after %s: the server ends its sessions, logs a bounded number of lines, and a well-behaved client keeps its latency',
    async (mode) => {
      const { server, metrics, raw } = await serve();
      const placement = JSON.stringify(review(bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-pending')));
      // Server side: streams each session carried, and the most it had open at once.
      const perSession: number[] = [];
      let mostOpen = 0;
      (server.app.server as unknown as NodeJS.EventEmitter).on('session', (session: ServerHttp2Session) => {
        const index = perSession.push(0) - 1;
        let open = 0;
        session.on('stream', (stream) => {
          perSession[index]! += 1;
          open += 1;
          mostOpen = Math.max(mostOpen, open);
          stream.once('close', () => (open -= 1));
        });
      });
      const victim = await h2Session(server.url, caPem);
      await h2Request(victim, { path: '/healthz' }); // warm
      const logBefore = raw.length;

      const seconds = 4;
      const worker = new Worker(new URL('../support/rapid-reset.mjs', import.meta.url), {
        workerData: { url: server.url, ca: caPem, path: WEBHOOK_PATHS.pods, connections: 2, seconds, maxStreams: 400_000, mode, body: placement },
      });
      const attack = new Promise<AttackStats>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      let attacking = true;
      void attack.finally(() => (attacking = false));

      const latencies: number[] = [];
      let failures = 0;
      for (let i = 0; i < 400 && attacking; i++) {
        const start = performance.now();
        try {
          const res = await h2Request(victim, { path: WEBHOOK_PATHS.pods, headers: { 'content-type': 'application/json' }, body: placement });
          if (res.status === 200 && JSON.parse(res.body).response.allowed === false) latencies.push(performance.now() - start);
          else failures += 1;
        } catch {
          failures += 1;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const stats = await attack;
      await worker.terminate();
      const logLines = raw.slice(logBefore).filter((line) => !line.includes('"admission decision"'));
      victim.close();

      latencies.sort((a, b) => a - b);
      const median = latencies[Math.floor(latencies.length / 2)]!;
      const worst = latencies.at(-1)!;
      const p90 = latencies[Math.floor(latencies.length * 0.9)]!;
      const abandoned =
        (await metricValue(metrics, 'cmg_admission_requests_aborted_total')) +
        (await metricValue(metrics, 'cmg_admission_requests_total{webhook="pod-placement",operation="unknown",decision="bad_request"}'));
      const attackStreams = perSession.reduce((a, b) => a + b, 0) - latencies.length - failures - 1;
      const summary = `${mode}: ${stats.opened} streams opened by the attacker, ${attackStreams} reached the server over ${stats.sessions} sessions (largest ${Math.max(...perSession)}, at most ${mostOpen} open at once), ${abandoned} abandoned or bad; victim ${latencies.length} ok / ${failures} failed, median ${median.toFixed(0)} ms, p90 ${p90.toFixed(0)} ms, worst ${worst.toFixed(0)} ms; ${logLines.length} log lines`;
      console.log(summary);

      // The attack was real: thousands of streams reached the server, and it ended sessions for it.
      expect(attackStreams, summary).toBeGreaterThan(1000);
      expect(stats.sessions, summary).toBeGreaterThan(2);
      // No session ever had more streams open than it was told it may.
      expect(mostOpen, summary).toBeLessThanOrEqual(HTTP2_LIMITS.maxConcurrentStreams);
      // The log does not grow per reset: the client-error budget (20 per 10 s) and its summaries.
      expect(logLines.length, summary).toBeLessThanOrEqual(25);
      // The well-behaved client lost nothing and kept a bounded latency.
      expect(failures, summary).toBe(0);
      expect(latencies.length, summary).toBeGreaterThanOrEqual(10);
      // (Against the unbounded server the victim got 5 requests through in 4 s, the slowest 4.4 s.)
      expect(median, summary).toBeLessThan(500);
      expect(p90, summary).toBeLessThan(2000);
    },
  );
});
