// The reaper's Prometheus metrics, registered on the process's Metrics registry (cmg_ prefix).

import { Counter, Gauge } from 'prom-client';
import { METRIC_PREFIX, type Metrics } from '../metrics.js';
import type { Detection, FindingReason } from './detect.js';
import type { LimitScope } from './ratelimit.js';

/** Why a finding was not acted on after the re-read from the API server. */
export type SkipReason = 'gone' | 'replaced' | 'changed' | 'no-longer-victim';

export class ReaperMetrics {
  private readonly victims: Gauge<'reason' | 'verdict'>;
  readonly removals: Counter<'action' | 'result' | 'reason'>;
  readonly dryRunFindings: Counter<'reason'>;
  readonly skipped: Counter<'why'>;
  private readonly rateLimited: Counter<'scope'>;
  private readonly rateLimitWaitSeconds: Counter;
  private readonly evaluations: Counter;
  private readonly inactive: Gauge<'reason'>;
  private readonly leader: Gauge;

  constructor(metrics: Metrics) {
    const registers = [metrics.registry];
    const name = (suffix: string) => `${METRIC_PREFIX}reaper_${suffix}`;
    this.victims = new Gauge({
      name: name('victims'),
      help: 'Pods the last evaluation found not managed by Cilium and started before it, by reason and verdict (remove, report-only).',
      labelNames: ['reason', 'verdict'],
      registers,
    });
    this.removals = new Counter({
      name: name('removals_total'),
      help: 'Pod removals attempted, by action (delete, evict), result (removed; blocked: a PodDisruptionBudget refused the eviction; throttled: the API server answered 429 without naming a PodDisruptionBudget; failed) and reason.',
      labelNames: ['action', 'result', 'reason'],
      registers,
    });
    this.dryRunFindings = new Counter({
      name: name('dry_run_findings_total'),
      help: 'Victims found in dry-run mode (each pod counted once), by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.skipped = new Counter({
      name: name('skipped_total'),
      help: 'Victims not acted on after re-reading them from the API server, by why.',
      labelNames: ['why'],
      registers,
    });
    this.rateLimited = new Counter({
      name: name('rate_limited_total'),
      help: 'Removals deferred by the rate limit (each pod once per wait), by the limit that made them wait (cluster, node).',
      labelNames: ['scope'],
      registers,
    });
    this.rateLimitWaitSeconds = new Counter({
      name: name('rate_limit_wait_seconds_total'),
      help: 'Waits announced for the removal rate limit (the time each deferred pod had to wait, as announced).',
      registers,
    });
    this.inactive = new Gauge({
      name: name('inactive'),
      help: 'Whether the last evaluation acted on nothing because of how Cilium is configured (1), by reason (ciliumendpoints-disabled: disable-endpoint-crd is true in cilium-config).',
      labelNames: ['reason'],
      registers,
    });
    this.inactive.set({ reason: 'ciliumendpoints-disabled' }, 0);
    this.evaluations = new Counter({ name: name('evaluations_total'), help: 'Evaluations of the cluster view run.', registers });
    this.leader = new Gauge({ name: name('leader'), help: 'Whether this replica is the leader that acts (1) or not (0).', registers });
  }

  observeDetection(detection: Detection): void {
    this.evaluations.inc();
    this.victims.reset();
    for (const reason of ['DuplicatePodIP', 'UnmanagedByCilium'] satisfies FindingReason[]) {
      for (const verdict of ['remove', 'report-only'] as const) this.victims.set({ reason, verdict }, 0);
    }
    for (const f of detection.findings) this.victims.inc({ reason: f.reason!, verdict: f.verdict });
    this.inactive.set({ reason: 'ciliumendpoints-disabled' }, detection.inactive?.reason === 'ciliumendpoints-disabled' ? 1 : 0);
  }

  setLeader(leading: boolean): void {
    this.leader.set(leading ? 1 : 0);
  }

  observeWait(scope: LimitScope, waitMs: number): void {
    this.rateLimited.inc({ scope });
    this.rateLimitWaitSeconds.inc(waitMs / 1000);
  }
}
