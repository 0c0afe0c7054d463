// Acting on one finding of detect(), the leader only. The cache is never trusted for a write:
//   1. wait for the rate limit (per cluster and per node), saying so when it waits;
//   2. re-read the pod and its CiliumEndpoint from the API server (caches lag; that lag is how
//      cilium-operator's restarter deletes the wrong pods, cilium/cilium#43353) and run the SAME
//      assessPod() on them: anything but "remove" now is a skip;
//   3. delete or evict with preconditions on the re-read uid and resourceVersion, so a pod that
//      changed, or a new pod with the same name, is never hit (409 → skip);
//   4. record it: pino line with the evidence, Event on the pod and the node, metrics.
// Dry-run takes the same steps 2 and 4 (no rate limit: nothing is removed) and writes nothing but Events.
// Report-only findings (no controller owner) and dry-run findings are announced once per pod.

import type { Config } from '../config.js';
import type { FullClusterView } from '../cluster/memory.js';
import { ciliumReadiness } from '../cluster/readiness.js';
import type { Logger } from '../logger.js';
import type { ReaperApi, RemovalAction } from './api.js';
import type { Clock } from './clock.js';
import { assessContext, assessPod, type Assessment } from './detect.js';
import type { EventRecorder } from './events.js';
import { describeEvidence } from './evidence.js';
import type { Leadership } from './leader.js';
import type { ReaperMetrics, SkipReason } from './metrics.js';
import type { RemovalRateLimiter } from './ratelimit.js';

export type HandleOutcome = 'removed' | 'blocked' | 'failed' | 'dry-run' | 'reported' | 'skipped' | 'not-leader' | 'backing-off' | 'announced-before';

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

/** After a PDB refused an eviction or a call failed, leave the pod alone this long (events arrive far more often). */
const RETRY_AFTER_MS = { blocked: 60_000, failed: 30_000, skipped: 10_000 };

const VERB: Record<RemovalAction, string> = { delete: 'Delete', evict: 'Evict' };

function findingKey(f: Assessment): string {
  return `${f.pod.uid ?? `${f.pod.namespace}/${f.pod.name}`}|${f.reason}`;
}

export class Actuator {
  private readonly announced = new Set<string>();
  private readonly retryAt = new Map<string, number>();

  constructor(private readonly deps: ActuatorDeps) {}

  async handle(finding: Assessment, signal: AbortSignal): Promise<HandleOutcome> {
    const { deps } = this;
    if (!deps.leadership.isLeader()) return 'not-leader';
    const key = findingKey(finding);
    if ((finding.verdict === 'report-only' || deps.dryRun) && this.announced.has(key)) return 'announced-before';
    if (finding.verdict === 'report-only') {
      this.announced.add(key);
      await this.announce(finding, 'Report', `not removed: ${finding.why}`);
      return 'reported';
    }
    const retryAt = this.retryAt.get(key);
    if (retryAt !== undefined && deps.clock.now() < retryAt) return 'backing-off';
    this.retryAt.delete(key);

    const log = deps.log.child({ pod: `${finding.pod.namespace}/${finding.pod.name}`, node: finding.pod.node, reason: finding.reason });
    if (!deps.dryRun) {
      await deps.limiter.acquire(finding.pod.node, {
        signal,
        onWait: ({ scope, waitMs }) => {
          deps.metrics.observeWait(scope, waitMs);
          log.info({ limit: scope, waitMs, limits: deps.config.reaper.rateLimit }, `rate limit reached (${scope}): waiting ${Math.ceil(waitMs / 1000)}s before the next removal`);
        },
      });
      // Leadership can be lost during the wait; a follower never writes.
      if (!deps.leadership.isLeader()) return 'not-leader';
    }

    const fresh = await this.reassess(finding, log);
    if (typeof fresh === 'string') {
      // The cache still shows it as a victim until the informers catch up: do not re-read it on every event.
      this.retryAt.set(key, deps.clock.now() + RETRY_AFTER_MS.skipped);
      deps.metrics.skipped.inc({ why: fresh });
      return 'skipped';
    }
    if (deps.dryRun) {
      this.announced.add(key);
      deps.metrics.dryRunFindings.inc({ reason: fresh.reason! });
      await this.announce(fresh, 'DryRun', `dry-run, would ${deps.config.reaper.action}: ${fresh.why}`);
      return 'dry-run';
    }
    return this.remove(fresh, key, log);
  }

  /** Step 2: the finding again, from the API server's copy of the pod and its CiliumEndpoint. */
  private async reassess(finding: Assessment, log: Logger): Promise<Assessment | SkipReason> {
    const { deps } = this;
    const { namespace, name, node } = finding.pod;
    const pod = await deps.api.readPod(namespace, name);
    if (!pod) {
      log.info('skipped: the pod is gone');
      return 'gone';
    }
    if (pod.metadata.uid !== finding.pod.uid) {
      log.info({ uid: pod.metadata.uid, expected: finding.pod.uid }, 'skipped: a different pod now has this name');
      return 'replaced';
    }
    const cep = await deps.api.readCiliumEndpoint(namespace, name);
    const now = new Date(deps.clock.now());
    const again = assessPod(assessContext(deps.view, deps.config, now), pod, cep, ciliumReadiness(deps.view, node));
    if (again?.verdict !== 'remove') {
      log.info({ now: again ? { verdict: again.verdict, why: again.why } : 'managed by Cilium or out of scope' }, 'skipped: not a victim on re-reading it from the API server');
      return 'no-longer-victim';
    }
    return again;
  }

  /** Step 3 and 4. */
  private async remove(finding: Assessment, key: string, log: Logger): Promise<HandleOutcome> {
    const { deps } = this;
    const action = deps.config.reaper.action;
    const { namespace, name } = finding.pod;
    const evidence = { ...finding.evidence, uid: finding.pod.uid, resourceVersion: finding.pod.resourceVersion };
    let outcome;
    try {
      outcome = await deps.api.remove(action, namespace, name, {
        uid: finding.pod.uid!,
        ...(finding.pod.resourceVersion ? { resourceVersion: finding.pod.resourceVersion } : {}),
      });
    } catch (err) {
      this.retryAt.set(key, deps.clock.now() + RETRY_AFTER_MS.failed);
      deps.metrics.removals.inc({ action, result: 'failed', reason: finding.reason! });
      log.error({ err, action, evidence }, `${action} failed; retrying in ${RETRY_AFTER_MS.failed / 1000}s at the earliest`);
      return 'failed';
    }
    switch (outcome) {
      case 'removed':
        deps.metrics.removals.inc({ action, result: 'removed', reason: finding.reason! });
        log.warn({ action, evidence }, `removed the pod (${action}): ${finding.why}`);
        await this.announce(finding, VERB[action], `${action === 'evict' ? 'evicted' : 'deleted'} by the reaper: ${finding.why}`);
        return 'removed';
      case 'blocked':
        this.retryAt.set(key, deps.clock.now() + RETRY_AFTER_MS.blocked);
        deps.metrics.removals.inc({ action, result: 'blocked', reason: finding.reason! });
        log.warn({ action, evidence }, `eviction refused by a PodDisruptionBudget; retrying in ${RETRY_AFTER_MS.blocked / 1000}s at the earliest`);
        await this.announce(finding, 'EvictBlocked', `eviction refused by a PodDisruptionBudget, will retry: ${finding.why}`);
        return 'blocked';
      case 'gone':
      case 'changed':
        deps.metrics.skipped.inc({ why: outcome });
        log.info({ action }, `skipped: the pod ${outcome === 'gone' ? 'is gone' : 'changed since it was re-read (precondition failed)'}`);
        return 'skipped';
    }
  }

  /** The Event on the pod and on its node, and (for announcements without removal) the log line. */
  private async announce(finding: Assessment, action: string, summary: string): Promise<void> {
    const { deps } = this;
    const { namespace, name, node, uid } = finding.pod;
    const message = `${summary}. Evidence: ${describeEvidence(finding.evidence)}`;
    if (action === 'Report' || action === 'DryRun') {
      deps.log.warn({ pod: `${namespace}/${name}`, node, reason: finding.reason, action, evidence: finding.evidence }, message);
    }
    const type = 'Warning';
    const reason = finding.reason!;
    await deps.events.record({ kind: 'Pod', namespace, name, ...(uid ? { uid } : {}) }, { type, reason, action, message });
    const nodeUid = deps.view.node(node)?.metadata.uid;
    await deps.events.record({ kind: 'Node', name: node, ...(nodeUid ? { uid: nodeUid } : {}) }, { type, reason, action, message: `pod ${namespace}/${name}: ${message}` });
  }

  /** Forget pods that are no longer findings, so memory follows the cluster, not its history. */
  prune(current: readonly Assessment[]): void {
    const keys = new Set(current.map(findingKey));
    for (const key of this.announced) if (!keys.has(key)) this.announced.delete(key);
    for (const key of this.retryAt.keys()) if (!keys.has(key)) this.retryAt.delete(key);
  }
}
