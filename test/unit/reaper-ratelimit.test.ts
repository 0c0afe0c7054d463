import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RemovalRateLimiter, type WaitNotice } from '../../src/reaper/ratelimit.js';
import { FakeClock, flush } from '../support/fake-clock.js';

describe('RemovalRateLimiter (fake clock)', () => {
  const waited = async (p: Promise<{ waitedMs: number }>) => (await p).waitedMs;

  it('lets up to the per-node limit through at once, then waits for the window to free', async () => {
    const clock = new FakeClock();
    const limiter = new RemovalRateLimiter({ perMinute: 10, perNodePerMinute: 2 }, clock);
    expect(await waited(limiter.acquire('n1'))).toBe(0);
    expect(await waited(limiter.acquire('n1'))).toBe(0);

    const notices: WaitNotice[] = [];
    let done: number | undefined;
    void waited(limiter.acquire('n1', { onWait: (n) => notices.push(n) })).then((r) => (done = r));
    await flush();
    expect(notices).toEqual([{ node: 'n1', scope: 'node', waitMs: 60_000 }]);
    await clock.advance(59_999);
    expect(done).toBeUndefined();
    await clock.advance(1);
    expect(done).toBe(60_000);
  });

  it('limits across nodes with the cluster-wide window', async () => {
    const clock = new FakeClock();
    const limiter = new RemovalRateLimiter({ perMinute: 3, perNodePerMinute: 3 }, clock);
    for (const node of ['a', 'b', 'c']) {
      expect(await waited(limiter.acquire(node))).toBe(0);
      await clock.advance(5_000);
    }
    const notices: WaitNotice[] = [];
    const pending = waited(limiter.acquire('d', { onWait: (n) => notices.push(n) }));
    await flush();
    expect(notices).toEqual([{ node: 'd', scope: 'cluster', waitMs: 45_000 }]);
    await clock.advance(45_000);
    expect(await pending).toBe(45_000);
  });

  it('after a long idle time allows exactly N in the next minute, not more', async () => {
    const clock = new FakeClock();
    const limiter = new RemovalRateLimiter({ perMinute: 60, perNodePerMinute: 60 }, clock);
    await clock.advance(3_600_000);
    const waits: number[] = [];
    for (let i = 0; i < 61; i++) {
      const p = limiter.acquire('n', { onWait: (n) => waits.push(n.waitMs) });
      await flush();
      if (waits.length) await clock.advance(waits[waits.length - 1]!);
      await p;
    }
    expect(waits).toEqual([60_000]);
  });

  it('gives up a wait when aborted, taking nothing', async () => {
    const clock = new FakeClock();
    const limiter = new RemovalRateLimiter({ perMinute: 1, perNodePerMinute: 1 }, clock);
    await limiter.acquire('n');
    const abort = new AbortController();
    const pending = limiter.acquire('n', { signal: abort.signal });
    await flush();
    abort.abort(new Error('leadership lost'));
    await expect(pending).rejects.toThrow('leadership lost');
    await clock.advance(60_000);
    expect(await waited(limiter.acquire('n'))).toBe(0);
  });

  it('forgets idle per-node windows', async () => {
    const clock = new FakeClock();
    const limiter = new RemovalRateLimiter({ perMinute: 100, perNodePerMinute: 5 }, clock);
    for (let i = 0; i < 50; i++) await limiter.acquire(`node-${i}`);
    await clock.advance(60_000);
    await limiter.acquire('last');
    expect(limiter.trackedNodes).toBe(1);
  });
});

describe('RemovalRateLimiter is a sliding window: never more than N removals in any 60 s', () => {
  it('a full node waits until its oldest removal leaves the window (not N/min refill)', async () => {
    const clock = new FakeClock();
    const limiter = new RemovalRateLimiter({ perMinute: 10, perNodePerMinute: 2 }, clock);
    await limiter.acquire('n1');
    await clock.advance(10_000);
    await limiter.acquire('n1');
    const notices: WaitNotice[] = [];
    let done: { waitedMs: number } | undefined;
    void limiter.acquire('n1', { onWait: (n) => notices.push(n) }).then((r) => (done = { waitedMs: r.waitedMs }));
    await flush();
    // The first removal leaves the window 60 s after it happened: 50 s from now.
    expect(notices).toEqual([{ node: 'n1', scope: 'node', waitMs: 50_000 }]);
    await clock.advance(49_999);
    expect(done).toBeUndefined();
    await clock.advance(1);
    expect(done).toEqual({ waitedMs: 50_000 });
  });

  it('check() and tryTake() never block; release() gives a slot back', () => {
    const clock = new FakeClock();
    const limiter = new RemovalRateLimiter({ perMinute: 10, perNodePerMinute: 1 }, clock);
    expect(limiter.check('n1')).toBeUndefined();
    const taken = limiter.tryTake('n1');
    expect('slot' in taken).toBe(true);
    expect(limiter.check('n1')).toEqual({ node: 'n1', scope: 'node', waitMs: 60_000 });
    expect(limiter.check('n2')).toBeUndefined();
    if ('slot' in taken) taken.slot.release();
    expect(limiter.check('n1')).toBeUndefined();
  });

  it('property: whatever the timing of requests, no 60 s window holds more than N (cluster) or M (per node)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: 0, max: 3 }), fc.boolean()), { minLength: 1, maxLength: 200 }),
        (perMinute, perNodePerMinute, steps) => {
          const clock = new FakeClock(0);
          const limiter = new RemovalRateLimiter({ perMinute, perNodePerMinute }, clock);
          const removals: Array<{ at: number; node: string }> = [];
          let time = 0;
          for (const [gap, n, fails] of steps) {
            time += gap;
            void clock.advance(gap);
            const node = `n${n}`;
            const r = limiter.tryTake(node);
            if (!('slot' in r)) {
              expect(r.wait.waitMs).toBeGreaterThan(0);
              continue;
            }
            if (fails)
              r.slot.release(); // not removed after all (skipped, 409, PDB): refunded
            else removals.push({ at: time, node });
          }
          for (const start of removals.map((r) => r.at)) {
            const inWindow = removals.filter((r) => r.at >= start && r.at < start + 60_000);
            expect(inWindow.length).toBeLessThanOrEqual(perMinute);
            const byNode = new Map<string, number>();
            for (const r of inWindow) byNode.set(r.node, (byNode.get(r.node) ?? 0) + 1);
            for (const count of byNode.values()) expect(count).toBeLessThanOrEqual(perNodePerMinute);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
