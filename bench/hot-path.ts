// What one admission's decision line and metrics cost, in-process (CPU µs each, medians of 5
// rounds): the line through the project's logger (pino as src/logger.ts configures it) into a
// destination that keeps nothing, then into a file through LineSink batched (as `serve` writes)
// and written line by line (as it did before), next to JSON.stringify of the same fields (the
// least any JSON line costs); and the three metric updates of one admission: through src/metrics.ts
// (plain tallies handed to prom-client at scrape time), next to prom-client's labelled
// inc/observe (as src/metrics.ts did before) and prom-client's bound children, cached per label set.
// `npx tsx bench/hot-path.ts`; prints figures, asserts nothing. Writes one file in the temp
// directory and removes it.

import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, LineSink, lineWriter } from '../src/logger.js';
import { Counter, Histogram, Registry } from 'prom-client';
import { Metrics } from '../src/metrics.js';
import { median } from './stats.js';

const LINE = () => ({
  webhook: 'pod-placement',
  uid: 'b6f9c1d2-1111-2222-3333-444455556666',
  kind: 'Binding',
  namespace: 'default',
  name: 'web-7d4b9c-x2x1z',
  operation: 'CREATE',
  subResource: 'binding',
  dryRun: false,
  user: 'system:kube-scheduler',
  node: 'node-cilium-pending',
  decision: 'denied',
  reason: 'cilium-not-ready',
  latencyMs: 0.123,
});

/** CPU µs per call of `fn`, median of 5 rounds of `n` calls (after one round of warm-up); `settle` runs after each round, timed too. */
async function cpuPerCall(n: number, fn: () => void, settle: () => Promise<void> = async () => {}): Promise<number> {
  const rounds: number[] = [];
  for (let round = 0; round < 6; round++) {
    const start = process.cpuUsage();
    for (let i = 0; i < n; i++) fn();
    await settle();
    const used = process.cpuUsage(start);
    if (round > 0) rounds.push((used.user + used.system) / n);
  }
  return median(rounds);
}

/** The three metrics as src/metrics.ts declared them before the tallies, on a registry of their own. */
function promClientMetrics() {
  const registers = [new Registry()];
  const labelNames = ['webhook', 'operation', 'decision'] as const;
  return {
    requests: new Counter({ name: 'requests_total', help: 'h', labelNames, registers }),
    duration: new Histogram({
      name: 'duration_seconds',
      help: 'h',
      labelNames,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    decisions: new Counter({ name: 'decisions_total', help: 'h', labelNames: ['webhook', 'mode', 'decision', 'reason'], registers }),
  };
}

const dir = mkdtempSync(join(tmpdir(), 'cmg-hot-path-'));
try {
  const n = 50_000;
  const nothing = { write: (_line: string) => undefined };
  const pinoOnly = createLogger({ destination: nothing });
  const decisionLine = lineWriter(pinoOnly, 'admission decision');
  const file = createWriteStream(join(dir, 'decisions.log'));
  const drained = () => new Promise<void>((resolve) => (file.writableLength === 0 ? setImmediate(resolve) : file.once('drain', () => resolve())));
  const batched = new LineSink(file, 64 * 1024 * 1024);
  const toFileBatched = createLogger({ destination: batched });
  const perLine = new LineSink(file, 64 * 1024 * 1024);
  const toFilePerLine = createLogger({ destination: { write: (line: string) => (perLine.write(line), perLine.flush()) } });
  const metrics = new Metrics({ defaultMetrics: false });
  const scrapes: Array<Promise<string>> = [];
  const before = promClientMetrics();
  // prom-client's children bound once per label set (the label sets are few and fixed here):
  // `labels()` skips nothing on the hot path — the child still hashes its labels on every call.
  const children = promClientMetrics();
  const requestsChild = children.requests.labels({ webhook: 'pod-placement', operation: 'CREATE', decision: 'denied' });
  const durationChild = children.duration.labels({ webhook: 'pod-placement', operation: 'CREATE', decision: 'denied' });
  const decisionsChild = children.decisions.labels({ webhook: 'pod-placement', mode: 'none', decision: 'denied', reason: 'cilium-not-ready' });

  const rows: Array<[string, number]> = [
    ['JSON.stringify of the fields (the least a JSON line costs)', await cpuPerCall(n, () => nothing.write(JSON.stringify(LINE())))],
    ['pino, the decision line, destination keeps nothing', await cpuPerCall(n, () => pinoOnly.info(LINE(), 'admission decision'))],
    ['lineWriter, the same line (as serve writes it now), destination keeps nothing', await cpuPerCall(n, () => decisionLine(LINE()))],
    [
      'pino + LineSink to a file, batched per event-loop turn',
      await cpuPerCall(
        n,
        () => toFileBatched.info(LINE(), 'admission decision'),
        async () => (batched.flush(), await drained()),
      ),
    ],
    [
      'pino + LineSink to a file, one write per line (before the batching)',
      await cpuPerCall(n, () => toFilePerLine.info(LINE(), 'admission decision'), drained),
    ],
    [
      'the three metric updates, prom-client labelled inc/observe (src/metrics.ts before)',
      await cpuPerCall(n, () => {
        const labels = { webhook: 'pod-placement', operation: 'CREATE', decision: 'denied' };
        before.requests.inc(labels);
        before.duration.observe(labels, 0.0004);
        before.decisions.inc({ webhook: 'pod-placement', mode: 'none', decision: 'denied', reason: 'cilium-not-ready' });
      }),
    ],
    [
      'the three metric updates, prom-client children bound once per label set',
      await cpuPerCall(n, () => {
        requestsChild.inc();
        durationChild.observe(0.0004);
        decisionsChild.inc();
      }),
    ],
    [
      'the three metric updates, src/metrics.ts (tallies, handed to prom-client at scrape time)',
      await cpuPerCall(n, () => {
        metrics.observeAdmission({ webhook: 'pod-placement', operation: 'CREATE', decision: 'denied' }, 0.0004);
        metrics.decisions.inc({ webhook: 'pod-placement', mode: 'none', decision: 'denied', reason: 'cilium-not-ready' });
      }),
    ],
    [
      'a scrape of those metrics, one series each (src/metrics.ts, the /metrics text)',
      await cpuPerCall(
        200,
        () => void scrapes.push(metrics.text()),
        async () => void (await Promise.all(scrapes.splice(0))),
      ),
    ],
  ];
  console.log('what one admission costs besides HTTP and the decision (CPU µs per admission, median of 5 rounds of 50,000):');
  for (const [name, us] of rows) console.log(`  ${us.toFixed(2).padStart(6)} µs  ${name}`);
  file.end();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
