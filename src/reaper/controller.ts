// The reaper's loop: one pass = detect() over the whole view, then the actuator on each finding,
// one at a time. A pass runs
//   - debounceMs after the first change the informers feed in (changes come in bursts: a pod
//     update, its CEP, its node's CiliumNode...), so a victim is acted on within seconds;
//   - every resyncSeconds regardless (level-triggered: nothing depends on having seen an event);
//   - at once when this replica becomes the leader;
//   - when the grace period of a waiting pod ends (time alone can make a victim).
// Each pass evaluates every migrated node: duplicate IPs are cluster-wide, and the evaluation is an
// in-memory scan. Nothing runs until every cache the reaper reads has synced. Losing the
// leadership or stopping interrupts a pass, including a rate-limit wait.

import type { Config } from '../config.js';
import type { FullClusterView } from '../cluster/memory.js';
import { isSynced } from '../cluster/view.js';
import type { Logger } from '../logger.js';
import { Actuator, type HandleOutcome } from './actuator.js';
import type { ReaperApi } from './api.js';
import { systemClock, type Clock } from './clock.js';
import { detect, type Detection } from './detect.js';
import { EventRecorder } from './events.js';
import type { Leadership } from './leader.js';
import type { ReaperMetrics } from './metrics.js';
import { RemovalRateLimiter } from './ratelimit.js';

export interface ReaperOptions {
  view: FullClusterView;
  config: Config;
  api: ReaperApi;
  leadership: Leadership;
  metrics: ReaperMetrics;
  log: Logger;
  /** Written into Events as reportingInstance. */
  identity: string;
  dryRun: boolean;
  clock?: Clock;
}

const NOT_SYNCED_RETRY_MS = 500;

export function isReaperSynced(view: FullClusterView): boolean {
  return isSynced(view) && Object.values(view.reaperSyncState()).every(Boolean);
}

export class Reaper {
  private readonly log: Logger;
  private readonly actuator: Actuator;
  private stopped = false;
  private started = false;
  private loop: Promise<void> | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private resync: NodeJS.Timeout | undefined;
  private recheck: NodeJS.Timeout | undefined;
  private wanted = false;
  private wake: (() => void) | undefined;
  private pass = new AbortController();
  private lastSummary = '';
  private readonly clock: Clock;

  constructor(private readonly options: ReaperOptions) {
    const clock = (this.clock = options.clock ?? systemClock);
    this.log = options.log.child({ component: 'reaper' });
    this.actuator = new Actuator({
      view: options.view,
      config: options.config,
      api: options.api,
      events: new EventRecorder(options.api, options.identity, () => new Date(clock.now()), this.log),
      limiter: new RemovalRateLimiter(options.config.reaper.rateLimit, clock),
      metrics: options.metrics,
      leadership: options.leadership,
      clock,
      log: this.log,
      dryRun: options.dryRun,
    });
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.resync = setInterval(() => this.runSoon(), this.options.config.reaper.resyncSeconds * 1000);
    this.loop = this.run();
    this.runSoon();
  }

  /** A change was seen: run a pass after the debounce delay (one pass per burst). */
  changed(): void {
    if (this.stopped || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.runSoon();
    }, this.options.config.reaper.debounceMs);
  }

  /** Leading: act now, not at the next change. Not leading: stop the pass under way at once. */
  leadershipChanged(leading: boolean): void {
    if (leading) this.runSoon();
    else this.pass.abort(new Error('leadership lost'));
  }

  private runSoon(): void {
    this.wanted = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (!this.wanted) await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
      this.wanted = false;
      if (this.stopped) break;
      this.pass = new AbortController();
      try {
        await this.runPass(this.pass.signal);
      } catch (err) {
        this.log.error({ err }, 'reaper pass failed; the next change or resync runs another');
      }
    }
  }

  /** One evaluation and, on the leader, acting on its findings. Returns undefined before the caches sync. */
  async runPass(signal: AbortSignal = new AbortController().signal): Promise<Detection | undefined> {
    const { view, config, metrics, leadership } = this.options;
    if (!isReaperSynced(view)) {
      this.log.debug({ caches: { ...view.syncState(), ...view.reaperSyncState() } }, 'caches not synced yet: not evaluating');
      // The last informer event can arrive before the sync flag flips: look again shortly rather than at the resync.
      this.runAfter(NOT_SYNCED_RETRY_MS);
      return undefined;
    }
    const detection = detect(view, config, new Date(this.clock.now()));
    metrics.observeDetection(detection);
    this.actuator.prune(detection.findings);
    this.scheduleRecheck(detection);
    this.logSummary(detection);
    const outcomes: Partial<Record<HandleOutcome, number>> = {};
    for (const finding of detection.findings) {
      if (this.stopped || signal.aborted || !leadership.isLeader()) break;
      try {
        const outcome = await this.actuator.handle(finding, signal);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      } catch (err) {
        if (signal.aborted) break; // an interrupted rate-limit wait
        this.log.error({ err, pod: `${finding.pod.namespace}/${finding.pod.name}` }, 'handling a finding failed; it is retried on a later pass');
      }
    }
    if (Object.keys(outcomes).some((o) => o !== 'announced-before' && o !== 'backing-off')) this.log.info({ outcomes }, 'reaper pass done');
    return detection;
  }

  /** A pass when the earliest grace period ends (the resync covers anything later). */
  private scheduleRecheck(detection: Detection): void {
    const times = detection.nodes.flatMap((n) => n.unmanaged.flatMap((a) => (a.recheckAt ? [Date.parse(a.recheckAt)] : [])));
    if (times.length === 0) return;
    const delay = Math.min(...times) + 100 - this.clock.now();
    if (delay <= this.options.config.reaper.resyncSeconds * 1000) this.runAfter(delay);
  }

  /** One timer for "run a pass in `ms`", replaced by each new request. */
  private runAfter(ms: number): void {
    if (this.stopped || !this.started) return;
    clearTimeout(this.recheck);
    this.recheck = setTimeout(() => this.runSoon(), Math.max(0, ms));
  }

  /** One info line when the picture changes, not one per pass. */
  private logSummary(detection: Detection): void {
    const summary = {
      nodes: detection.nodes.length,
      notReady: detection.nodes.filter((n) => !n.readiness.ready).map((n) => n.node),
      remove: detection.findings.filter((f) => f.verdict === 'remove').length,
      reportOnly: detection.findings.filter((f) => f.verdict === 'report-only').length,
      waiting: detection.nodes.reduce((sum, n) => sum + n.unmanaged.filter((a) => a.verdict === 'wait').length, 0),
    };
    const text = JSON.stringify(summary);
    if (text === this.lastSummary) return;
    this.lastSummary = text;
    this.log.info({ ...summary, dryRun: this.options.dryRun, leader: this.options.leadership.isLeader() }, 'reaper evaluation changed');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.debounce);
    clearInterval(this.resync);
    clearTimeout(this.recheck);
    this.pass.abort(new Error('stopping'));
    this.wake?.();
    await this.loop;
  }
}
