import { describe, expect, it } from 'vitest';
import { RemovalRateLimiter, type WaitNotice } from '../../src/reaper/ratelimit.js';
import { FakeClock, flush } from './fake-clock.js';

describe('RemovalRateLimiter (token buckets, fake clock)', () => {
  it('lets a burst up to the per-node limit through at once, then waits for the refill', async () => {
    const clock = new FakeClock();
    const limiter = new RemovalRateLimiter({ perMinute: 10, perNodePerMinute: 2 }, clock);
    expect(await limiter.acquire('n1')).toEqual({ waitedMs: 0 });
    expect(await limiter.acquire('n1')).toEqual({ waitedMs: 0 });

    const notices: WaitNotice[] = [];
    let done: { waitedMs: number } | undefined;
    void limiter.acquire('n1', { onWait: (n) => notices.push(n) }).then((r) => (done = r));
    await flush();
    // 2 per minute: one token every 30 s.
    expect(notices).toEqual([{ node: 'n1', scope: 'node', waitMs: 30_000 }]);
    await clock.advance(29_999);
    expect(done).toBeUndefined();
    await clock.advance(1);
    expect(done).toEqual({ waitedMs: 30_000 });
  });

  it('limits across nodes with the cluster-wide bucket', async () => {
    const clock = new FakeClock();
    const limiter = new RemovalRateLimiter({ perMinute: 3, perNodePerMinute: 3 }, clock);
    for (const node of ['a', 'b', 'c']) expect((await limiter.acquire(node)).waitedMs).toBe(0);
    const notices: WaitNotice[] = [];
    const pending = limiter.acquire('d', { onWait: (n) => notices.push(n) });
    await flush();
    expect(notices).toEqual([{ node: 'd', scope: 'cluster', waitMs: 20_000 }]);
    await clock.advance(20_000);
    expect(await pending).toEqual({ waitedMs: 20_000 });
  });

  it('refills over time up to the burst size, not beyond', async () => {
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
    expect(waits).toEqual([1_000]);
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
    expect(await limiter.acquire('n')).toEqual({ waitedMs: 0 });
  });

  it('forgets idle per-node buckets', async () => {
    const clock = new FakeClock();
    const limiter = new RemovalRateLimiter({ perMinute: 100, perNodePerMinute: 5 }, clock);
    for (let i = 0; i < 50; i++) await limiter.acquire(`node-${i}`);
    await clock.advance(60_000);
    await limiter.acquire('last');
    expect(limiter.trackedNodes).toBe(1);
  });
});
