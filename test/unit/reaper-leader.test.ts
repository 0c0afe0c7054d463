import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LeaderElector, LeaseConflictError, type LeaseRecord, type LeaseStore } from '../../src/reaper/leader.js';
import { FakeClock, flush } from '../support/fake-clock.js';

/** A Lease in memory that honours resourceVersion like the API server: stale writes get a conflict. */
class MemoryLeaseStore implements LeaseStore {
  readonly describe = 'test/lease';
  record: LeaseRecord | undefined;
  private rv = 0;
  failing = false;
  writes = 0;

  async get(): Promise<LeaseRecord | undefined> {
    if (this.failing) throw new Error('API server unreachable');
    return this.record ? { ...this.record } : undefined;
  }
  async create(record: LeaseRecord): Promise<LeaseRecord> {
    if (this.failing) throw new Error('API server unreachable');
    if (this.record) throw new LeaseConflictError('already exists');
    return this.store(record);
  }
  async update(record: LeaseRecord): Promise<LeaseRecord> {
    if (this.failing) throw new Error('API server unreachable');
    if (!this.record || record.resourceVersion !== this.record.resourceVersion) throw new LeaseConflictError();
    return this.store(record);
  }
  private store(record: LeaseRecord): LeaseRecord {
    this.writes++;
    this.record = { ...record, resourceVersion: String(++this.rv) };
    return { ...this.record };
  }
}

const silent = pino({ level: 'silent' });
const TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

function elector(store: LeaseStore, identity: string, clock: FakeClock, changes: boolean[] = []): LeaderElector {
  return new LeaderElector({ store, identity, clock, log: silent, timing: TIMING, onChange: (l) => changes.push(l) });
}

describe('LeaderElector (in-memory Lease, fake clock)', () => {
  it('acquires a missing lease, and a follower waits a full lease duration after the last renewal it saw', async () => {
    const store = new MemoryLeaseStore();
    const clock = new FakeClock();
    const a = elector(store, 'a', clock);
    const b = elector(store, 'b', clock);
    await a.tryAcquireOrRenew();
    expect(a.isLeader()).toBe(true);
    expect(store.record).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 15, leaseTransitions: 0 });

    await b.tryAcquireOrRenew();
    expect(b.isLeader()).toBe(false);
    // a dies without releasing; b keeps observing the same record.
    await clock.advance(14_000);
    await b.tryAcquireOrRenew();
    expect(b.isLeader()).toBe(false);
    await clock.advance(1_000);
    await b.tryAcquireOrRenew();
    expect(b.isLeader()).toBe(true);
    expect(store.record).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    // By then a stopped counting itself leader (renew deadline passed), so there was no overlap.
    expect(a.isLeader()).toBe(false);
  });

  it('lets only one of two simultaneous candidates win (resourceVersion conflict)', async () => {
    const store = new MemoryLeaseStore();
    store.record = { holderIdentity: '', leaseDurationSeconds: 1, resourceVersion: '7' };
    const clock = new FakeClock();
    const a = elector(store, 'a', clock);
    const b = elector(store, 'b', clock);
    await Promise.all([a.tryAcquireOrRenew(), b.tryAcquireOrRenew()]);
    expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
  });

  it('stops counting itself leader when it cannot renew within the renew deadline', async () => {
    const store = new MemoryLeaseStore();
    const clock = new FakeClock();
    const changes: boolean[] = [];
    const a = elector(store, 'a', clock, changes);
    a.start();
    await flush();
    expect(a.isLeader()).toBe(true);
    store.failing = true;
    await clock.advance(9_999);
    expect(a.isLeader()).toBe(true);
    await clock.advance(1);
    // isLeader() turns false at the deadline itself, even before the loop notices.
    expect(a.isLeader()).toBe(false);
    await clock.advance(2_000);
    expect(changes).toEqual([true, false]);
    store.failing = false;
    await clock.advance(2_000);
    expect(a.isLeader()).toBe(true);
    await a.stop();
  });

  it('never has two leaders while running, and hands over at once on release', async () => {
    const store = new MemoryLeaseStore();
    const clock = new FakeClock();
    const a = elector(store, 'a', clock);
    const b = elector(store, 'b', clock);
    a.start();
    await flush();
    b.start();
    for (let t = 0; t < 60; t++) {
      await clock.advance(500);
      expect(a.isLeader() && b.isLeader()).toBe(false);
    }
    expect(a.isLeader()).toBe(true);
    await a.stop();
    expect(a.isLeader()).toBe(false);
    expect(store.record?.holderIdentity).toBe('');
    await clock.advance(TIMING.retryPeriodMs);
    expect(b.isLeader()).toBe(true);
    expect(store.record).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    await b.stop();
  });

  it('rejects a renew deadline that is not shorter than the lease', () => {
    expect(
      () => new LeaderElector({ store: new MemoryLeaseStore(), identity: 'a', clock: new FakeClock(), log: silent, timing: { renewDeadlineMs: 15_000 } }),
    ).toThrow('renewDeadline must be shorter than leaseDuration');
  });
});
