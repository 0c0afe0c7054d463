// The reaper's loop: one pass = detect() over the whole view, then the actuator on each finding,
// one at a time. A pass never sleeps on the rate limit: a finding whose node (or the cluster) has
// used up its window is deferred and the pass goes on with the other nodes; a pass is scheduled
// for when the earliest window frees. A pass runs
//   - debounceMs after the first change the informers feed in (changes come in bursts: a pod
//     update, its CEP, its node's CiliumNode...), so a victim is acted on within seconds;
//   - every resyncSeconds regardless (level-triggered: nothing depends on having seen an event);
//   - at once when this replica becomes the leader;
//   - when the grace period of a waiting pod ends (time alone can make a victim);
//   - when a rate-limit window frees for a deferred finding.
// While a CRD the reaper decides with is missing (CiliumEndpoint: without it every pod would look
// unmanaged), it evaluates nothing and warns every minute. health() is the liveness: the time since
// the last pass completed (or a finding was handled in a long one) must stay under 2 x resync + 60 s.
// Each pass evaluates every migrated node: duplicate IPs are cluster-wide, and the evaluation is an
// in-memory scan. Nothing runs until every cache the reaper reads has synced, nor while any of
// them has lost its watch (it looks again every second; a pass under way stops before its next
// finding). Losing the leadership or stopping interrupts a pass, including a rate-limit wait.

import type { Config } from '../config.js';
import { isReaperSynced, type FullClusterView } from '../cluster/view.js';
import type { Logger } from '../logger.js';
import { Actuator, type HandleOutcome } from './actuator.js';
import type { ReaperApi } from './api.js';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { detect, type Detection } from './detect.js';
import { EventRecorder } from './events.js';
import type { Leadership } from './leader.js';
import type { ReaperMetrics } from './reaper-metrics.js';
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
  /** CRDs the reaper needs that are not installed (e.g. "ciliumendpoints.cilium.io"); while any is, nothing is evaluated. */
  crdMissing?: () => string[];
  /**
   * Caches whose watch is down right now (cache → since, ISO 8601). While any is, nothing is
   * evaluated or removed: a cache that missed a delete (the other pod holding the IP, an agent
   * pod gone) would make a wrong victim, and only the victim itself is re-read before acting.
   */
  disconnected?: () => Record<string, string>;
}

const NOT_SYNCED_RETRY_MS = 500;
/** While a cache is disconnected, look again this often (its reconnection fires no event of its own). */
const DISCONNECTED_RETRY_MS = 1_000;
/** How often the "CRD missing, not acting" warning is repeated. */
const CRD_WARNING_EVERY_MS = 60_000;
/** Liveness: unhealthy when no progress for 2 x resync + this. */
const LIVENESS_MARGIN_MS = 60_000;

export class Reaper {
  private readonly log: Logger;
  private readonly actuator: Actuator;
  private stopped = false;
  private started = false;
  private loop: Promise<void> | undefined;
  private debounce: Timer | undefined;
  private resync: Timer | undefined;
  private recheck: Timer | undefined;
  /** When the pending timed pass (grace period, rate limit, not synced) is due; the earliest request wins. */
  private recheckAt: number | undefined;
  /** Last time a pass completed or a finding was handled (liveness). */
  private lastProgress: number;
  private passStartedAt: number | undefined;
  private lastCrdWarning: number | undefined;
  private lastInactiveWarning: number | undefined;
  /** Set while passes are held back because a cache is disconnected (for the log line when it ends). */
  private heldSince: number | undefined;
  private wanted = false;
  private wake: (() => void) | undefined;
  private pass = new AbortController();
  private lastSummary = '';
  private readonly clock: Clock;

  constructor(private readonly options: ReaperOptions) {
    const clock = (this.clock = options.clock ?? systemClock);
    this.lastProgress = clock.now();
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
    this.resync = this.clock.setInterval(() => this.runSoon(), this.options.config.reaper.resyncSeconds * 1000);
    this.loop = this.run();
    this.runSoon();
  }

  /** A change was seen: run a pass after the debounce delay (one pass per burst). */
  changed(): void {
    if (this.stopped || this.debounce) return;
    this.debounce = this.clock.setTimeout(() => {
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
    this.passStartedAt = this.clock.now();
    // Every pass schedules what it needs (grace period, rate limit, not synced): drop the old request.
    this.recheck?.clear();
    this.recheck = undefined;
    this.recheckAt = undefined;
    try {
      return await this.evaluate(signal);
    } finally {
      this.lastProgress = this.clock.now();
      this.passStartedAt = undefined;
    }
  }

  private async evaluate(signal: AbortSignal): Promise<Detection | undefined> {
    const { view, config, metrics, leadership } = this.options;
    if (!isReaperSynced(view)) {
      this.log.debug({ caches: view.syncState() }, 'caches not synced yet: not evaluating');
      // The last informer event can arrive before the sync flag flips: look again shortly rather than at the resync.
      this.runAfter(NOT_SYNCED_RETRY_MS);
      return undefined;
    }
    const disconnected = this.options.disconnected?.() ?? {};
    if (Object.keys(disconnected).length > 0) {
      if (this.heldSince === undefined) {
        this.heldSince = this.clock.now();
        this.log.warn({ disconnected }, 'not evaluating or removing anything: a cache lost its watch and may be stale; waiting for it to reconnect');
      }
      this.runAfter(DISCONNECTED_RETRY_MS);
      return undefined;
    }
    if (this.heldSince !== undefined) {
      this.log.info({ heldMs: this.clock.now() - this.heldSince }, 'every cache is watching again: evaluating');
      this.heldSince = undefined;
    }
    const missing = this.options.crdMissing?.() ?? [];
    if (missing.length > 0) {
      const now = this.clock.now();
      if (this.lastCrdWarning === undefined || now - this.lastCrdWarning >= CRD_WARNING_EVERY_MS) {
        this.lastCrdWarning = now;
        this.log.warn(
          { crdMissing: missing },
          `not evaluating or removing anything: ${missing.join(', ')} not installed (without CiliumEndpoints every pod would look unmanaged); waiting for it`,
        );
      }
      return undefined;
    }
    if (this.lastCrdWarning !== undefined) {
      this.lastCrdWarning = undefined;
      this.log.info('the CRDs the reaper needs are installed now: evaluating');
    }
    const detection = detect(view, config, new Date(this.clock.now()));
    metrics.observeDetection(detection);
    this.logInactive(detection);
    this.actuator.prune(detection.findings);
    this.scheduleRecheck(detection);
    this.logSummary(detection);
    const outcomes: Partial<Record<HandleOutcome, number>> = {};
    for (const finding of detection.findings) {
      if (this.stopped || signal.aborted || !leadership.isLeader()) break;
      // A watch that broke during the pass: the rest waits for a fresh view.
      if (Object.keys(this.options.disconnected?.() ?? {}).length > 0) {
        this.runAfter(DISCONNECTED_RETRY_MS);
        break;
      }
      try {
        const outcome = await this.actuator.handle(finding, signal);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      } catch (err) {
        if (signal.aborted) break; // interrupted: leadership lost or stopping
        this.log.error({ err, pod: `${finding.pod.namespace}/${finding.pod.name}` }, 'handling a finding failed; it is retried on a later pass');
      }
      this.lastProgress = this.clock.now();
    }
    const wake = this.actuator.takeWakeAt();
    if (wake !== undefined) this.runAt(wake);
    if (Object.keys(outcomes).some((o) => o !== 'announced-before' && o !== 'backing-off' && o !== 'rate-limited'))
      this.log.info({ outcomes }, 'reaper pass done');
    return detection;
  }

  /** When the next timed pass is due (clock ms), if one is scheduled. */
  get nextPassAt(): number | undefined {
    return this.recheckAt;
  }

  /**
   * Liveness: healthy while a pass completed (or a finding of a long pass was handled) within
   * 2 x resyncSeconds + 60 s. A resync pass starts every resyncSeconds, so only a stuck loop or a
   * pass stuck on one call fails this.
   */
  health(): { healthy: boolean; detail: Record<string, unknown> } {
    const now = this.clock.now();
    const limitMs = 2 * this.options.config.reaper.resyncSeconds * 1000 + LIVENESS_MARGIN_MS;
    const sinceMs = now - this.lastProgress;
    const missing = this.options.crdMissing?.() ?? [];
    return {
      healthy: this.stopped || sinceMs <= limitMs,
      detail: {
        lastProgressAgoSeconds: Math.round(sinceMs / 1000),
        limitSeconds: limitMs / 1000,
        passRunningForSeconds: this.passStartedAt === undefined ? null : Math.round((now - this.passStartedAt) / 1000),
        ...(missing.length > 0 ? { crdMissing: missing } : {}),
      },
    };
  }

  /** A pass when the earliest grace period ends (the resync covers anything later). */
  private scheduleRecheck(detection: Detection): void {
    const times = detection.nodes.flatMap((n) => n.unmanaged.flatMap((a) => (a.recheckAt ? [Date.parse(a.recheckAt)] : [])));
    if (times.length === 0) return;
    const at = Math.min(...times) + 100;
    if (at - this.clock.now() <= this.options.config.reaper.resyncSeconds * 1000) this.runAt(at);
  }

  private runAfter(ms: number): void {
    this.runAt(this.clock.now() + ms);
  }

  /** One timer for "run a pass at `at`"; an earlier pending request wins over a later one. */
  private runAt(at: number): void {
    if (this.stopped) return;
    if (this.recheckAt !== undefined && this.recheckAt <= at) return;
    this.recheckAt = at;
    if (!this.started) return;
    this.recheck?.clear();
    this.recheck = this.clock.setTimeout(
      () => {
        this.recheck = undefined;
        this.recheckAt = undefined;
        this.runSoon();
      },
      Math.max(0, at - this.clock.now()),
    );
  }

  /** Cilium's configuration makes the reaper act on nothing (no CiliumEndpoints): warn once a minute, say when it ends. */
  private logInactive(detection: Detection): void {
    const now = this.clock.now();
    if (detection.inactive) {
      if (this.lastInactiveWarning === undefined || now - this.lastInactiveWarning >= CRD_WARNING_EVERY_MS) {
        this.lastInactiveWarning = now;
        this.log.warn({ inactive: detection.inactive.reason }, `not removing anything: ${detection.inactive.message}`);
      }
    } else if (this.lastInactiveWarning !== undefined) {
      this.lastInactiveWarning = undefined;
      this.log.info('Cilium writes CiliumEndpoints again: evaluating and acting');
    }
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
    this.debounce?.clear();
    this.resync?.clear();
    this.recheck?.clear();
    this.pass.abort(new Error('stopping'));
    this.wake?.();
    await this.loop;
  }
}
