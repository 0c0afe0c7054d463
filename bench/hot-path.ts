// What one admission's decision line and metrics cost, in-process (CPU µs each, medians of 5
// rounds): the line through the project's logger (pino as src/logger.ts configures it) into a
// destination that keeps nothing, then into a file through LineSink batched (as `serve` writes)
// and written line by line (as it did before), next to JSON.stringify of the same fields (the
// least any JSON line costs); and the prom-client updates of one admission (src/metrics.ts).
// `npx tsx bench/hot-path.ts`; prints figures, asserts nothing. Writes one file in the temp
// directory and removes it.

import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, LineSink, lineWriter } from '../src/logger.js';
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
      'prom-client: requests counter, duration histogram, decisions counter',
      await cpuPerCall(n, () => {
        metrics.observeAdmission({ webhook: 'pod-placement', operation: 'CREATE', decision: 'denied' }, 0.0004);
        metrics.decisions.inc({ webhook: 'pod-placement', mode: 'none', decision: 'denied', reason: 'cilium-not-ready' });
      }),
    ],
  ];
  console.log('what one admission costs besides HTTP and the decision (CPU µs per admission, median of 5 rounds of 50,000):');
  for (const [name, us] of rows) console.log(`  ${us.toFixed(2).padStart(6)} µs  ${name}`);
  file.end();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
