// Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it,
// small enough to read in one sitting:
//   - acquire: the Lease is free (no holder) or its holder has not renewed for leaseDuration, as
//     measured on OUR clock from when we last saw the record change (no cross-node clock skew);
//   - every write carries the resourceVersion it read (optimistic concurrency): of two candidates
//     writing at once, one gets 409 Conflict and stays a follower;
//   - the leader renews every retryPeriod; when it has not renewed for renewDeadline (< leaseDuration)
//     it stops leading at once, before any follower can take over: no two leaders act at once;
//   - release on shutdown: holder cleared, so a successor takes over on its next retry.
// isLeader() also checks the time since the last renewal, so a renewal stuck in a slow request
// cannot leave a stale leader acting.

import type { Logger } from '../logger.js';
import type { Clock } from '../clock.js';

export interface LeaseRecord {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: Date;
  renewTime?: Date;
  leaseTransitions?: number;
  /** Set on reads; sent back on update as the precondition. */
  resourceVersion?: string;
}

/** Storage of one Lease. create/update reject with LeaseConflictError on 409 (exists / stale resourceVersion). */
export interface LeaseStore {
  /** "namespace/name", for logs. */
  readonly describe: string;
  get(): Promise<LeaseRecord | undefined>;
  create(record: LeaseRecord): Promise<LeaseRecord>;
  update(record: LeaseRecord): Promise<LeaseRecord>;
}

export class LeaseConflictError extends Error {
  constructor(message = 'the Lease changed since it was read') {
    super(message);
    this.name = 'LeaseConflictError';
  }
}

export interface ElectorTiming {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

const DEFAULT_TIMING: ElectorTiming = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

export interface Leadership {
  isLeader(): boolean;
  /**
   * Milliseconds before this replica stops acting on its own if it cannot renew (0 when not
   * leading; Infinity without leader election). A write sent while leading is given at most this
   * long, so it cannot still be in flight when a follower may take over.
   */
  remainingMs?(): number;
}

export interface ElectorOptions {
  store: LeaseStore;
  identity: string;
  clock: Clock;
  log: Logger;
  timing?: Partial<ElectorTiming>;
  /** Called on every change of leadership. */
  onChange?: (leading: boolean) => void;
}

/** Without leader election (--no-leader-elect): always the leader. */
export const alwaysLeader: Leadership = { isLeader: () => true, remainingMs: () => Infinity };

export class LeaderElector implements Leadership {
  private readonly timing: ElectorTiming;
  private readonly log: Logger;
  private leading = false;
  private lastRenew = 0;
  /** The record as last read, and when (our clock) it last changed: the follower's expiry clock. */
  private observed: { key: string; at: number } | undefined;
  private readonly stopper = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(private readonly options: ElectorOptions) {
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    if (!(this.timing.renewDeadlineMs < this.timing.leaseDurationMs)) throw new Error('renewDeadline must be shorter than leaseDuration');
    this.log = options.log.child({ component: 'leader-election', lease: options.store.describe, identity: options.identity });
  }

  isLeader(): boolean {
    return this.remainingMs() > 0;
  }

  remainingMs(): number {
    if (!this.leading) return 0;
    return Math.max(0, this.lastRenew + this.timing.renewDeadlineMs - this.options.clock.now());
  }

  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    const { clock } = this.options;
    while (!this.stopper.signal.aborted) {
      await this.tryAcquireOrRenew();
      if (this.leading && clock.now() - this.lastRenew >= this.timing.renewDeadlineMs) {
        this.setLeading(false, 'could not renew the lease within the renew deadline');
      }
      try {
        await clock.sleep(this.timing.retryPeriodMs, this.stopper.signal);
      } catch {
        break; // stopped
      }
    }
  }

  /** One attempt; every outcome is logged or reflected in `leading`. Exposed for tests. */
  async tryAcquireOrRenew(): Promise<void> {
    const { store, identity, clock } = this.options;
    const now = clock.now();
    try {
      const current = await store.get();
      if (!current) {
        await store.create(this.record(now, { leaseTransitions: 0 }));
        this.renewed(now, 'acquired a new lease');
        return;
      }
      const key = `${current.holderIdentity ?? ''}|${current.renewTime?.getTime() ?? ''}|${current.resourceVersion ?? ''}`;
      if (this.observed?.key !== key) this.observed = { key, at: now };
      const holder = current.holderIdentity ?? '';
      const durationMs = (current.leaseDurationSeconds ?? this.timing.leaseDurationMs / 1000) * 1000;
      if (holder !== identity && holder !== '' && now - this.observed.at < durationMs) {
        if (this.leading) this.setLeading(false, `the lease is held by ${holder}`);
        return;
      }
      const transitions = (current.leaseTransitions ?? 0) + (holder === identity ? 0 : 1);
      const acquireTime = holder === identity && current.acquireTime ? current.acquireTime : new Date(now);
      await store.update({ ...this.record(now, { leaseTransitions: transitions }), acquireTime, resourceVersion: current.resourceVersion });
      this.renewed(now, holder === identity ? undefined : holder ? `took over the lease from ${holder} (expired)` : 'acquired the released lease');
    } catch (err) {
      if (err instanceof LeaseConflictError) {
        this.log.debug('lease changed under us; will retry');
      } else {
        this.log.warn({ err }, 'lease request failed; will retry');
      }
    }
  }

  private record(now: number, extra: Partial<LeaseRecord>): LeaseRecord {
    return {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: Math.ceil(this.timing.leaseDurationMs / 1000),
      acquireTime: new Date(now),
      renewTime: new Date(now),
      ...extra,
    };
  }

  private renewed(now: number, how: string | undefined): void {
    this.lastRenew = now;
    if (!this.leading) this.setLeading(true, how ?? 'renewed the lease');
  }

  private setLeading(leading: boolean, why: string): void {
    if (this.leading === leading) return;
    this.leading = leading;
    if (leading) this.log.info(`became the leader: ${why}`);
    else this.log.warn(`stopped leading: ${why}`);
    this.options.onChange?.(leading);
  }

  /** Stops the loop; when leading, stops acting first and then releases the lease. */
  async stop(): Promise<void> {
    this.stopper.abort();
    await this.loop;
    if (!this.leading) return;
    this.setLeading(false, 'shutting down');
    const { store, identity, clock } = this.options;
    try {
      const current = await store.get();
      if (current?.holderIdentity !== identity) return;
      const now = new Date(clock.now());
      // client-go's release: empty holder, 1 s duration, so whoever looks next can take it.
      await store.update({ ...current, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now });
      this.log.info('released the lease');
    } catch (err) {
      this.log.warn({ err }, 'could not release the lease; a successor takes over when it expires');
    }
  }
}
