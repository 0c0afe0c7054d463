// The reconciler's metrics (cmg_ prefix), on the reaper process's registry. Counts only: no
// per-DaemonSet series.

import { Counter, Gauge } from 'prom-client';
import { METRIC_PREFIX, type Metrics } from '../metrics.js';
import type { DaemonSetFinding } from './findings.js';
import type { ReconcileOutcome } from './reconciler.js';

export class ReconcilerMetrics {
  private readonly outOfLine: Gauge<'state'>;
  private readonly outcomes: Counter<'outcome'>;

  constructor(metrics: Metrics) {
    const registers = [metrics.registry];
    this.outOfLine = new Gauge({
      name: `${METRIC_PREFIX}daemonsets_out_of_line`,
      help: "DaemonSets a rule gives a role whose stored affinity does not meet it, at the reconciler's last pass, by state (out-of-line: would be patched; conflict: its own spec contradicts its role).",
      labelNames: ['state'],
      registers,
    });
    for (const state of ['out-of-line', 'conflict']) this.outOfLine.set({ state }, 0);
    this.outcomes = new Counter({
      name: `${METRIC_PREFIX}reconciler_daemonsets_total`,
      help: 'What the reconciler did with each out-of-line or conflicting DaemonSet it found, per pass, by outcome (patched, dry-run, mode, changed, gone, deferred, failed, conflict).',
      labelNames: ['outcome'],
      registers,
    });
  }

  setFindings(findings: readonly DaemonSetFinding[]): void {
    this.outOfLine.set({ state: 'out-of-line' }, findings.filter((f) => f.state === 'out-of-line').length);
    this.outOfLine.set({ state: 'conflict' }, findings.filter((f) => f.state === 'conflict').length);
  }

  outcome(outcome: ReconcileOutcome): void {
    this.outcomes.inc({ outcome });
  }
}
