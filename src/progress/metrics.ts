// The migration's progress as Prometheus metrics (cmg_migration_*), from the process that holds the
// full cluster view (the reaper). Counts only, no per-node or per-pod series: bounded cardinality.
// Gauges are computed at scrape time (memoized for a second: several gauges, one computation);
// the time-to-ready histogram is fed by update(), which the owner also calls on a timer, so a node
// that turns ready between scrapes is still observed.

import { Gauge, Histogram } from 'prom-client';
import { METRIC_PREFIX, type Metrics } from '../metrics.js';
import { NODE_STATES, type Progress } from './progress.js';

/** Minutes to hours: how long a migrated node waits for its Cilium agent. */
const TIME_TO_READY_BUCKETS = [30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600];

export class ProgressMetrics {
  private last: { at: number; progress: Progress | undefined } = { at: 0, progress: undefined };
  /** Nodes seen waiting, with when they started waiting (ms; NaN when unknown). */
  private readonly waiting = new Map<string, number>();
  private readonly timeToReady: Histogram;

  constructor(
    metrics: Metrics,
    private readonly source: () => Progress | undefined,
    private readonly now: () => number = Date.now,
  ) {
    const registers = [metrics.registry];
    const progress = this; // prom-client calls collect() with the gauge as `this`
    new Gauge({
      name: `${METRIC_PREFIX}migration_nodes`,
      help: 'Nodes by migration state: legacy (no migration label), migrated-ready (Cilium ready), migrated-not-ready.',
      labelNames: ['state'],
      registers,
      collect() {
        const p = progress.current();
        if (p) for (const state of NODE_STATES) this.set({ state }, p.nodes[state]);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}migration_oldest_waiting_node_seconds`,
      help: 'How long the migrated node that has waited longest for Cilium has waited (0 when none waits).',
      registers,
      collect() {
        const p = progress.current();
        if (p) this.set(p.waiting.reduce((max, w) => Math.max(max, w.seconds ?? 0), 0));
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}migration_unmanaged_pods`,
      help: 'Pods with an IP on migrated nodes that Cilium does not manage (exempt pods left out).',
      registers,
      collect() {
        const p = progress.current();
        if (p) this.set(p.unmanagedPods);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}migration_legacy_agents_on_migrated_nodes`,
      help: 'Pods of previous-CNI DaemonSets running on migrated nodes.',
      registers,
      collect() {
        const p = progress.current();
        if (p) this.set(p.legacyAgentsOnMigrated);
      },
    });
    this.timeToReady = new Histogram({
      name: `${METRIC_PREFIX}migration_node_time_to_ready_seconds`,
      help: 'For migrated nodes seen waiting, the time from the migration label (or node creation) to Cilium ready.',
      buckets: TIME_TO_READY_BUCKETS,
      registers,
    });
  }

  /** Computes progress now and feeds the histogram; returns it (undefined while the view is not synced). */
  update(): Progress | undefined {
    const progress = this.source();
    this.last = { at: this.now(), progress };
    if (!progress) return undefined;
    for (const w of progress.waiting) if (!this.waiting.has(w.node)) this.waiting.set(w.node, w.since ? Date.parse(w.since) : Number.NaN);
    const present = new Set([...progress.waiting.map((w) => w.node), ...progress.ready.map((r) => r.node)]);
    for (const r of progress.ready) {
      const since = this.waiting.get(r.node);
      if (since === undefined) continue;
      this.waiting.delete(r.node);
      const readyAt = r.readyAt ? Date.parse(r.readyAt) : this.now();
      if (!Number.isNaN(since) && !Number.isNaN(readyAt)) this.timeToReady.observe(Math.max(0, (readyAt - since) / 1000));
    }
    for (const node of this.waiting.keys()) if (!present.has(node)) this.waiting.delete(node); // gone or no longer migrated
    return progress;
  }

  private current(): Progress | undefined {
    if (this.now() - this.last.at < 1_000 && this.last.progress) return this.last.progress;
    return this.update();
  }
}
