// Benchmarks: prints figures, asserts nothing. Run with `npm run bench`.
// 1. The pure decisions, in-process (decisions per second).
// 2. The real HTTPS server over loopback HTTP/2, as the API server calls it: a bounded number of
//    requests at a fixed concurrency; latency percentiles and throughput.
// Only 127.0.0.1 is ever contacted; every loop is bounded and the server is closed at the end.

import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EXAMPLE_SNAPSHOT } from '../src/commands/common.js';
import { loadSnapshot } from '../src/cluster/snapshot.js';
import { isSynced, webhookSyncState } from '../src/cluster/view.js';
import { defaultConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { Metrics } from '../src/metrics.js';
import { startServer } from '../src/server/start.js';
import { ensureServingCert } from '../src/certs/local.js';
import { decideDaemonSetAffinity } from '../src/webhooks/daemonset-affinity.js';
import { podPlacementHandler } from '../src/webhooks/pod-placement.js';
import { daemonSetAffinityHandler } from '../src/webhooks/daemonset-affinity.js';
import { daemonSet } from '../test/support/fixtures.js';
import { bindingRequest, daemonSetRequest, review } from '../test/support/reviews.js';
import { WEBHOOK_PATHS } from '../src/webhooks/routes.js';

const { view } = loadSnapshot(EXAMPLE_SNAPSHOT, defaultConfig);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function pure(name: string, iterations: number, fn: () => unknown): Promise<void> {
  for (let i = 0; i < Math.min(1000, iterations); i++) await fn(); // warm-up
  const start = performance.now();
  for (let i = 0; i < iterations; i++) await fn();
  const ms = performance.now() - start;
  console.log(`${name.padEnd(44)} ${(iterations / (ms / 1000)).toFixed(0).padStart(10)} decisions/s   ${((ms * 1000) / iterations).toFixed(2)} µs each`);
}

async function overHttp2(total: number, concurrency: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cmg-bench-'));
  const caPem = (await ensureServingCert(dir)).caPem ?? '';
  const server = await startServer({
    handlers: [
      { path: WEBHOOK_PATHS.daemonSets, handler: daemonSetAffinityHandler(defaultConfig, view) },
      { path: WEBHOOK_PATHS.pods, handler: podPlacementHandler(defaultConfig, view) },
    ],
    readiness: () => ({ ready: isSynced(view), detail: webhookSyncState(view) }),
    metrics: new Metrics({ defaultMetrics: false }),
    logger: createLogger({ level: 'silent' }),
    certDir: dir,
    host: '127.0.0.1',
    port: 0,
  });
  const session = connect(server.url, { ca: caPem });
  const bodies = {
    [WEBHOOK_PATHS.pods]: JSON.stringify(review(bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-pending'))),
    [WEBHOOK_PATHS.daemonSets]: JSON.stringify(review(daemonSetRequest(daemonSet('aws-node')))),
  };
  const post = (path: keyof typeof bodies) =>
    new Promise<number>((res, rej) => {
      const t0 = performance.now();
      const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' });
      req.on('response', (headers) => {
        if (headers[':status'] !== 200) rej(new Error(`status ${headers[':status']}`));
      });
      req.on('data', () => {});
      req.on('end', () => res(performance.now() - t0));
      req.on('error', rej);
      req.end(bodies[path]);
    });
  try {
    for (const path of Object.keys(bodies) as Array<keyof typeof bodies>) {
      for (let i = 0; i < 200; i++) await post(path); // warm-up
      const latencies: number[] = [];
      let next = 0;
      const start = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < total) {
            next += 1;
            latencies.push(await post(path));
          }
        }),
      );
      const seconds = (performance.now() - start) / 1000;
      latencies.sort((a, b) => a - b);
      console.log(
        `HTTP/2 ${path.padEnd(20)} ${total} requests, concurrency ${concurrency}: ${(total / seconds).toFixed(0)} req/s, ` +
          `p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms, max ${latencies.at(-1)!.toFixed(2)} ms`,
      );
    }
  } finally {
    session.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

console.log(`node ${process.version}, ${new Date().toISOString()}`);
const awsNode = daemonSetRequest(daemonSet('aws-node'));
const cilium = daemonSetRequest(daemonSet('cilium'));
const unrelated = daemonSetRequest(daemonSet('node-exporter'));
const placement = podPlacementHandler(defaultConfig, view);
const denial = bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-pending');
const legacyNode = bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-legacy-1');
await pure('DaemonSet affinity: aws-node (patch)', 50_000, () => decideDaemonSetAffinity(awsNode, view, defaultConfig));
await pure('DaemonSet affinity: cilium (patch)', 50_000, () => decideDaemonSetAffinity(cilium, view, defaultConfig));
await pure('DaemonSet affinity: unrelated (no role)', 50_000, () => decideDaemonSetAffinity(unrelated, view, defaultConfig));
await pure('pod placement: bind to unready node (deny)', 100_000, () => placement.handle(denial));
await pure('pod placement: bind to non-migrated node', 100_000, () => placement.handle(legacyNode));
await overHttp2(5_000, 16);
