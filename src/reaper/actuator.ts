// Acting on one finding of detect(), the leader only. The cache is never trusted for a write:
//   1. rate limit, without waiting: when the finding's node (or the cluster) has used up its
//      window, the finding is deferred (said once, counted) and the controller runs a pass when the
//      window frees; other nodes go on;
//   2. re-read the pod and its CiliumEndpoint from the API server (caches lag; that lag is how
//      cilium-operator's restarter deletes the wrong pods, cilium/cilium#43353) and run the SAME
//      assessPod() on them: anything but "remove" now is a skip. Only those two objects are re-read:
//      the node's Cilium readiness, the CiliumNode (ipam.used, pod CIDRs) and the other pods holding
//      the IP still come from the informer caches;
//   3. take the rate-limit slot (only now: a skipped pod uses no budget), check leadership and the
//      pass's AbortSignal immediately before the write, and delete or evict with preconditions on
//      the re-read uid and resourceVersion (409 → skip). The request is aborted when the pass is, and
//      its deadline is the time left before this replica would stop leading on its own;
//   4. record it: pino line with the evidence, Event on the pod and the node (only while still
//      leading), metrics. A pod that was not removed (gone, 409, PDB refusal, throttled, an error
//      answered by the API server) gives its rate-limit slot back.
// Dry-run takes the same steps 2 and 4 (no rate limit: nothing is removed) and writes nothing but Events.
// Report-only findings (no controller owner) and dry-run findings are announced once per pod.

import type { Config } from '../config.js';
import type { FullClusterView } from '../cluster/view.js';
import { httpStatus } from '../cluster/kube-client.js';
import { ciliumReadiness } from '../cluster/readiness.js';
import type { Logger } from '../logger.js';
import { RemovalThrottledError, REREAD_TIMEOUT_MS, WRITE_TIMEOUT_MS, type ReaperApi, type RemovalAction } from './api.js';
import type { Clock } from '../clock.js';
import { assessContext, assessPod, inactiveReason, type Assessment } from './detect.js';
import type { EventRecorder } from './events.js';
import { describeEvidence } from './evidence.js';
import type { Leadership } from './leader.js';
import type { ReaperMetrics, SkipReason } from './reaper-metrics.js';
import type { RateSlot, RemovalRateLimiter, WaitNotice } from './ratelimit.js';

export type HandleOutcome =
  'removed' | 'blocked' | 'throttled' | 'failed' | 'dry-run' | 'reported' | 'skipped' | 'not-leader' | 'backing-off' | 'rate-limited' | 'announced-before';

export interface ActuatorDeps {
  view: FullClusterView;
  config: Config;
  api: ReaperApi;
  events: EventRecorder;
  limiter: RemovalRateLimiter;
  metrics: ReaperMetrics;
  leadership: Leadership;
  clock: Clock;
  log: Logger;
  dryRun: boolean;
}

/** After a PDB refused an eviction, a skip or a throttle, leave the pod alone this long (events arrive far more often). */
const RETRY_AFTER_MS = { blocked: 60_000, skipped: 10_000 };
/** Throttled (429 without a PDB): Retry-After, within these bounds; 5 s when the server sent none. */
const THROTTLE_MS = { default: 5_000, min: 1_000, max: 60_000 };
/** Failed calls (e.g. the eviction's 500 when several PDBs select the pod): 30 s, doubling, at most 5 min. */
export const FAILURE_BACKOFF_MS = { initial: 30_000, max: 300_000 };

const VERB: Record<RemovalAction, string> = { delete: 'Delete', evict: 'Evict' };

function findingKey(f: Assessment): string {
  return `${f.pod.uid ?? `${f.pod.namespace}/${f.pod.name}`}|${f.reason}`;
}

export class Actuator {
  private readonly announced = new Set<string>();
  private readonly retryAt = new Map<string, number>();
  /** Consecutive failures per finding, for the exponential backoff. */
  private readonly failures = new Map<string, number>();
  /** Findings deferred by the rate limit, and until when (announced once per wake time). */
  private readonly deferred = new Map<string, number>();
  /** Earliest time a deferred finding fits the rate limit again (taken by the controller after a pass). */
  private wakeAt: number | undefined;

  constructor(private readonly deps: ActuatorDeps) {}

  async handle(finding: Assessment, signal: AbortSignal): Promise<HandleOutcome> {
    const { deps } = this;
    if (!deps.leadership.isLeader()) return 'not-leader';
    const key = findingKey(finding);
    if ((finding.verdict === 'report-only' || deps.dryRun) && this.announced.has(key)) return 'announced-before';
    if (finding.verdict === 'report-only') {
      this.announced.add(key);
      await this.announce(finding, 'Report', `not removed: ${finding.why}`, signal);
      return 'reported';
    }
    const retryAt = this.retryAt.get(key);
    if (retryAt !== undefined && deps.clock.now() < retryAt) return 'backing-off';
    this.retryAt.delete(key);

    const log = deps.log.child({ pod: `${finding.pod.namespace}/${finding.pod.name}`, node: finding.pod.node, reason: finding.reason });
    if (!deps.dryRun) {
      // Before the re-read: no GETs for a pod that could not be removed now anyway. Nothing is taken yet.
      const wait = deps.limiter.check(finding.pod.node);
      if (wait) return this.defer(key, wait, log);
    }

    const fresh = await this.reassess(finding, log, signal);
    if (typeof fresh === 'string') {
      // The cache still shows it as a victim until the informers catch up: do not re-read it on every event.
      this.retryAt.set(key, deps.clock.now() + RETRY_AFTER_MS.skipped);
      deps.metrics.skipped.inc({ why: fresh });
      return 'skipped';
    }
    if (deps.dryRun) {
      this.announced.add(key);
      deps.metrics.dryRunFindings.inc({ reason: fresh.reason! });
      await this.announce(fresh, 'DryRun', `dry-run, would ${deps.config.reaper.action}: ${fresh.why}`, signal);
      return 'dry-run';
    }
    const taken = deps.limiter.tryTake(finding.pod.node);
    if ('wait' in taken) return this.defer(key, taken.wait, log);
    this.deferred.delete(key);
    return this.remove(fresh, key, log, signal, taken.slot);
  }

  /** The earliest time a finding deferred by the rate limit fits again; cleared by reading it. */
  takeWakeAt(): number | undefined {
    const at = this.wakeAt;
    this.wakeAt = undefined;
    return at;
  }

  private defer(key: string, wait: WaitNotice, log: Logger): HandleOutcome {
    const { deps } = this;
    const at = deps.clock.now() + wait.waitMs;
    this.wakeAt = Math.min(this.wakeAt ?? Infinity, at);
    if (this.deferred.get(key) !== at) {
      this.deferred.set(key, at);
      deps.metrics.observeWait(wait.scope, wait.waitMs);
      log.info(
        { limit: wait.scope, waitMs: wait.waitMs, limits: deps.config.reaper.rateLimit },
        `rate limit reached (${wait.scope}): waiting ${Math.ceil(wait.waitMs / 1000)}s before removing this pod; other nodes go on`,
      );
    }
    return 'rate-limited';
  }

  /** Per-request options: the pass's signal, and a deadline no later than the end of our leadership. */
  private callOptions(signal: AbortSignal, ms: number): { signal: AbortSignal; timeoutMs: number } {
    const left = this.deps.leadership.remainingMs?.() ?? Infinity;
    return { signal, timeoutMs: Math.max(1, Math.min(ms, left)) };
  }

  /** Step 2: the finding again, from the API server's copy of the pod and its CiliumEndpoint. */
  private async reassess(finding: Assessment, log: Logger, signal: AbortSignal): Promise<Assessment | SkipReason> {
    const { deps } = this;
    const { namespace, name, node } = finding.pod;
    const pod = await deps.api.readPod(namespace, name, this.callOptions(signal, REREAD_TIMEOUT_MS));
    signal.throwIfAborted();
    if (!pod) {
      log.info('skipped: the pod is gone');
      return 'gone';
    }
    if (pod.metadata.uid !== finding.pod.uid) {
      log.info({ uid: pod.metadata.uid, expected: finding.pod.uid }, 'skipped: a different pod now has this name');
      return 'replaced';
    }
    const cep = await deps.api.readCiliumEndpoint(namespace, name, this.callOptions(signal, REREAD_TIMEOUT_MS));
    signal.throwIfAborted();
    if (inactiveReason(deps.view, deps.config)) {
      log.info('skipped: Cilium writes no CiliumEndpoints (disable-endpoint-crd), so nothing is removed');
      return 'no-longer-victim';
    }
    const now = new Date(deps.clock.now());
    // Fresh: the pod and its CEP. From the caches: the node's readiness, its CiliumNode, the other pods with the IP.
    const again = assessPod(assessContext(deps.view, deps.config, now), pod, cep, ciliumReadiness(deps.view, node, deps.config));
    if (again?.verdict !== 'remove') {
      log.info(
        { now: again ? { verdict: again.verdict, why: again.why } : 'managed by Cilium or out of scope' },
        'skipped: not a victim on re-reading it from the API server',
      );
      return 'no-longer-victim';
    }
    return again;
  }

  /** Step 3 and 4. */
  private async remove(finding: Assessment, key: string, log: Logger, signal: AbortSignal, slot: RateSlot): Promise<HandleOutcome> {
    const { deps } = this;
    const action = deps.config.reaper.action;
    const { namespace, name } = finding.pod;
    const evidence = { ...finding.evidence, uid: finding.pod.uid, resourceVersion: finding.pod.resourceVersion };
    if (signal.aborted) {
      slot.release();
      signal.throwIfAborted();
    }
    // Immediately before the write: a replica that stopped leading (renew deadline passed) never removes.
    if (!deps.leadership.isLeader()) {
      slot.release();
      log.info('not removed: this replica stopped leading after re-reading the pod');
      return 'not-leader';
    }
    let outcome;
    try {
      outcome = await deps.api.remove(
        action,
        namespace,
        name,
        { uid: finding.pod.uid!, ...(finding.pod.resourceVersion ? { resourceVersion: finding.pod.resourceVersion } : {}) },
        this.callOptions(signal, WRITE_TIMEOUT_MS),
      );
    } catch (err) {
      if (err instanceof RemovalThrottledError) {
        slot.release();
        const wait = Math.min(THROTTLE_MS.max, Math.max(THROTTLE_MS.min, err.retryAfterMs ?? THROTTLE_MS.default));
        this.retryAt.set(key, deps.clock.now() + wait);
        deps.metrics.removals.inc({ action, result: 'throttled', reason: finding.reason! });
        log.info(
          { action, retryAfterMs: err.retryAfterMs },
          `${action} throttled by the API server (429, not a PodDisruptionBudget); retrying in ${wait / 1000}s`,
        );
        return 'throttled';
      }
      // The server answered with an error: nothing was removed. A timeout or abort may have reached it: keep the slot.
      if (httpStatus(err) !== undefined) slot.release();
      if (signal.aborted) throw signal.reason;
      const failures = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, failures);
      const backoff = Math.min(FAILURE_BACKOFF_MS.max, FAILURE_BACKOFF_MS.initial * 2 ** (failures - 1));
      this.retryAt.set(key, deps.clock.now() + backoff);
      deps.metrics.removals.inc({ action, result: 'failed', reason: finding.reason! });
      log.error({ err, action, evidence, failures }, `${action} failed; retrying in ${backoff / 1000}s at the earliest`);
      return 'failed';
    }
    this.failures.delete(key);
    switch (outcome) {
      case 'removed':
        deps.metrics.removals.inc({ action, result: 'removed', reason: finding.reason! });
        log.warn({ action, evidence }, `removed the pod (${action}): ${finding.why}`);
        await this.announce(finding, VERB[action], `${action === 'evict' ? 'evicted' : 'deleted'} by the reaper: ${finding.why}`, signal);
        return 'removed';
      case 'blocked':
        slot.release();
        this.retryAt.set(key, deps.clock.now() + RETRY_AFTER_MS.blocked);
        deps.metrics.removals.inc({ action, result: 'blocked', reason: finding.reason! });
        log.warn({ action, evidence }, `eviction refused by a PodDisruptionBudget; retrying in ${RETRY_AFTER_MS.blocked / 1000}s at the earliest`);
        await this.announce(finding, 'EvictBlocked', `eviction refused by a PodDisruptionBudget, will retry: ${finding.why}`, signal);
        return 'blocked';
      case 'gone':
      case 'changed':
        slot.release();
        deps.metrics.skipped.inc({ why: outcome });
        log.info({ action }, `skipped: the pod ${outcome === 'gone' ? 'is gone' : 'changed since it was re-read (precondition failed)'}`);
        return 'skipped';
    }
  }

  /** The Event on the pod and on its node (each only while still leading), and (for announcements without removal) the log line. */
  private async announce(finding: Assessment, action: string, summary: string, signal: AbortSignal): Promise<void> {
    const { deps } = this;
    const { namespace, name, node, uid } = finding.pod;
    const message = `${summary}. Evidence: ${describeEvidence(finding.evidence)}`;
    if (action === 'Report' || action === 'DryRun') {
      deps.log.warn({ pod: `${namespace}/${name}`, node, reason: finding.reason, action, evidence: finding.evidence }, message);
    }
    const type = 'Warning';
    const reason = finding.reason!;
    const leading = (): boolean => {
      if (deps.leadership.isLeader() && !signal.aborted) return true;
      deps.log.info({ pod: `${namespace}/${name}`, action }, 'not leading any more: Event not written (the log line above has the evidence)');
      return false;
    };
    const options = { signal, timeoutMs: WRITE_TIMEOUT_MS };
    if (!leading()) return;
    await deps.events.record({ kind: 'Pod', namespace, name, ...(uid ? { uid } : {}) }, { type, reason, action, message }, options);
    if (!leading()) return;
    const nodeUid = deps.view.node(node)?.metadata.uid;
    await deps.events.record(
      { kind: 'Node', name: node, ...(nodeUid ? { uid: nodeUid } : {}) },
      { type, reason, action, message: `pod ${namespace}/${name}: ${message}`, related: { kind: 'Pod', namespace, name, ...(uid ? { uid } : {}) } },
      options,
    );
  }

  /** Forget pods that are no longer findings, so memory follows the cluster, not its history. */
  prune(current: readonly Assessment[]): void {
    const keys = new Set(current.map(findingKey));
    for (const key of this.announced) if (!keys.has(key)) this.announced.delete(key);
    for (const map of [this.retryAt, this.failures, this.deferred]) for (const key of map.keys()) if (!keys.has(key)) map.delete(key);
  }
}
