// The reconciler: brings existing DaemonSets in line with their role, from the reaper's
// leader-elected process, off by default (config `reconciler`). One pass:
//   1. list DaemonSets and the namespaces' mode labels (two API lists; DaemonSets are few);
//   2. judge each with the webhook's own decision (findings.ts: the same plan and the same patch);
//   3. for each out-of-line DaemonSet, in order, within the rate limit: patch it through the API
//      server with a JSON patch whose first op tests metadata.resourceVersion (a DaemonSet written
//      since the list is left for the next pass), and record an Event on it.
// Conflicting DaemonSets are reported (log, Event, gauge), never touched. A DaemonSet whose
// namespace is in warn or audit mode for the DaemonSet webhook is only reported, as the webhook
// would only warn about it; so is every one in dry-run. The patch goes through the mutating
// webhook like any write, which finds the requirement present and adds nothing.
// Passes run every intervalMs while this replica leads, and sooner when the rate limit defers one.

import type { Config } from '../config.js';
import type { FullClusterView } from '../cluster/view.js';
import type { Logger } from '../logger.js';
import { resolveMode, type Mode } from '../modes/mode.js';
import { staticNamespaceModes } from '../modes/namespace-modes.js';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import { EventRecorder } from '../reaper/events.js';
import { RemovalRateLimiter } from '../reaper/ratelimit.js';
import type { ReconcilerApi } from './api.js';
import { daemonSetFindings, type DaemonSetFinding } from './findings.js';
import type { ReconcilerMetrics } from './metrics.js';

export type ReconcileOutcome = 'patched' | 'dry-run' | 'mode' | 'changed' | 'gone' | 'deferred' | 'failed' | 'conflict';

export interface ReconcileResult {
  namespace: string;
  name: string;
  outcome: ReconcileOutcome;
  mode?: Mode;
}

export interface ReconcilerOptions {
  api: ReconcilerApi;
  view: Pick<FullClusterView, 'agentPods'>;
  config: Config;
  log: Logger;
  /** Written into Events as reportingInstance. */
  identity: string;
  /** config.reconciler.dryRun, or the reaper's --dry-run. */
  dryRun: boolean;
  isLeader: () => boolean;
  /** Whether the view the decision reads (agent pods: a cloud-managed Cilium) has synced. */
  synced: () => boolean;
  metrics?: ReconcilerMetrics;
  clock?: Clock;
  /** Default 60 s. */
  intervalMs?: number;
}

const NOT_READY_RETRY_MS = 1_000;

export class DaemonSetReconciler {
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly limiter: RemovalRateLimiter;
  private readonly events: EventRecorder;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly abort = new AbortController();
  /** Report-only Events already written, by DaemonSet and reason → its resourceVersion then: not repeated every pass. */
  private readonly reported = new Map<string, string>();

  constructor(private readonly options: ReconcilerOptions) {
    this.log = options.log.child({ component: 'reconciler' });
    this.clock = options.clock ?? systemClock;
    const perMinute = options.config.reconciler.perMinute;
    this.limiter = new RemovalRateLimiter({ perMinute, perNodePerMinute: perMinute }, this.clock);
    this.events = new EventRecorder(options.api, options.identity, () => new Date(this.clock.now()), this.log);
    this.intervalMs = options.intervalMs ?? 60_000;
  }

  start(): void {
    this.log.info(
      { dryRun: this.options.dryRun, perMinute: this.options.config.reconciler.perMinute, intervalMs: this.intervalMs },
      'DaemonSet reconciler started',
    );
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort.abort();
    await this.running?.catch(() => {});
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => (this.running = undefined));
    }, ms);
    this.timer.unref?.();
  }

  private async tick(): Promise<void> {
    if (!this.options.isLeader() || !this.options.synced()) {
      this.schedule(NOT_READY_RETRY_MS); // in-memory checks only: cheap, and a new leader acts within a second
      return;
    }
    let next = this.intervalMs;
    try {
      const results = await this.pass();
      const deferred = results.some((r) => r.outcome === 'deferred');
      if (deferred) next = Math.min(next, Math.max(1_000, this.limiter.check('daemonsets')?.waitMs ?? 1_000));
    } catch (err) {
      if (!this.stopped) this.log.warn({ err }, 'DaemonSet reconcile pass failed; retrying at the next one');
    }
    this.schedule(next);
  }

  /** One pass (exported for tests): what was found and what became of each finding. */
  async pass(): Promise<ReconcileResult[]> {
    const signal = this.abort.signal;
    const [daemonSets, labels] = await Promise.all([this.options.api.listDaemonSets({ signal }), this.options.api.listModeLabels({ signal })]);
    const findings = daemonSetFindings(daemonSets, this.options.view, this.options.config);
    this.options.metrics?.setFindings(findings);
    // Forget reports about DaemonSets no longer found (fixed, deleted): bounded by the findings.
    const current = new Set(findings.map((f) => f.uid ?? `${f.namespace}/${f.name}`));
    for (const key of this.reported.keys()) if (!current.has(key.split('|')[0]!)) this.reported.delete(key);
    const namespaces = staticNamespaceModes(labels);
    const results: ReconcileResult[] = [];
    for (const finding of findings) {
      if (this.stopped || !this.options.isLeader()) break;
      const mode = resolveMode(finding.namespace, namespaces, this.options.config.modes.daemonsets).mode;
      const outcome = await this.handle(finding, mode);
      results.push({ namespace: finding.namespace, name: finding.name, outcome, mode });
      this.options.metrics?.outcome(outcome);
    }
    if (results.length > 0) this.log.info({ results }, 'DaemonSet reconcile pass');
    return results;
  }

  /** Records a report-only Event unless the same one was written for this resourceVersion already. */
  private async reportOnce(f: DaemonSetFinding, details: Parameters<EventRecorder['record']>[1]): Promise<void> {
    const key = `${f.uid ?? `${f.namespace}/${f.name}`}|${details.reason}|${details.action}`;
    if (f.resourceVersion !== undefined && this.reported.get(key) === f.resourceVersion) return;
    await this.events.record(this.subject(f), details);
    if (f.resourceVersion !== undefined) this.reported.set(key, f.resourceVersion);
  }

  private subject(f: DaemonSetFinding) {
    return { kind: 'DaemonSet' as const, name: f.name, namespace: f.namespace, ...(f.uid ? { uid: f.uid } : {}) };
  }

  private async handle(f: DaemonSetFinding, mode: Mode): Promise<ReconcileOutcome> {
    const what = { daemonSet: `${f.namespace}/${f.name}`, role: f.role, rule: f.rule, requirement: f.requirement, mode };
    if (f.state === 'conflict') {
      this.log.warn({ ...what, detail: f.detail }, 'DaemonSet affinity contradicts its role: reported, not changed');
      await this.reportOnce(f, {
        type: 'Warning',
        reason: 'AffinityConflict',
        action: 'Report',
        message: `cilium-migration-guard will not change this DaemonSet: ${f.detail}`,
      });
      return 'conflict';
    }
    const plan = `nodeAffinity ${f.requirement} (role ${f.role}, rule ${f.rule})`;
    if (this.options.dryRun || mode !== 'enforce') {
      const why = this.options.dryRun ? 'dry-run' : `the DaemonSet webhook is in ${mode} mode for namespace ${f.namespace}`;
      this.log.info({ ...what, why }, 'DaemonSet out of line: would patch');
      await this.reportOnce(f, {
        type: 'Normal',
        reason: 'AffinityOutOfLine',
        action: this.options.dryRun ? 'DryRun' : 'Report',
        message: `cilium-migration-guard would add ${plan}; not patched: ${why}`,
      });
      return this.options.dryRun ? 'dry-run' : 'mode';
    }
    const taken = this.limiter.tryTake('daemonsets');
    if ('wait' in taken) {
      this.log.info({ ...what, waitMs: taken.wait.waitMs }, 'DaemonSet out of line: rate limit reached, deferred');
      return 'deferred';
    }
    if (!f.resourceVersion) {
      taken.slot.release();
      return 'changed';
    }
    try {
      const outcome = await this.options.api.patchDaemonSet(
        f.namespace,
        f.name,
        [{ op: 'test', path: '/metadata/resourceVersion', value: f.resourceVersion }, ...f.patch],
        { signal: this.abort.signal },
      );
      if (outcome !== 'patched') {
        taken.slot.release();
        this.log.info({ ...what, outcome }, 'DaemonSet changed or gone since the list: left for the next pass');
        return outcome;
      }
    } catch (err) {
      taken.slot.release();
      this.log.warn({ ...what, err }, 'DaemonSet patch failed');
      return 'failed';
    }
    this.log.info(what, 'DaemonSet brought in line');
    await this.events.record(this.subject(f), {
      type: 'Normal',
      reason: 'AffinityReconciled',
      action: 'Patch',
      message: `cilium-migration-guard added ${plan}: the DaemonSet was written without it (before the webhook was registered, while it was down, or in warn mode)`,
    });
    return 'patched';
  }
}
