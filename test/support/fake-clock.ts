// A manual clock for src/clock.ts's Clock: time moves only when a test calls advance(), which
// fires sleeps, timeouts and intervals in time order.

import type { Clock, Timer } from '../../src/clock.js';

interface Pending {
  at: number;
  run: () => void;
  /** Set for an interval: it is due again this many ms after it fired. */
  every?: number;
}

export class FakeClock implements Clock {
  private timers: Pending[] = [];
  /** Every sleep requested, in ms (for assertions). */
  readonly sleeps: number[] = [];

  constructor(private time = 1_000_000) {}

  now(): number {
    return this.time;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = this.add({ at: this.time + ms, run: resolve });
      signal?.addEventListener('abort', () => {
        timer.clear();
        reject(signal.reason);
      });
    });
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.add({ at: this.time + Math.max(0, ms), run: fn });
  }

  setInterval(fn: () => void, ms: number): Timer {
    return this.add({ at: this.time + ms, run: fn, every: ms });
  }

  private add(pending: Pending): Timer {
    this.timers.push(pending);
    return { clear: () => (this.timers = this.timers.filter((t) => t !== pending)) };
  }

  /** Moves time forward, firing what falls due in order, letting each one's continuation run. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (let guard = 0; guard < 10_000; guard++) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.time = next.at;
      if (next.every !== undefined) next.at += Math.max(1, next.every);
      else this.timers.shift();
      next.run();
      await flush();
    }
    this.time = end;
    await flush();
  }

  /** Sleeps, timeouts and intervals not yet fired or cleared. */
  get pending(): number {
    return this.timers.length;
  }

  /** When the earliest pending timer is due, if any. */
  get nextAt(): number | undefined {
    return this.timers.length === 0 ? undefined : Math.min(...this.timers.map((t) => t.at));
  }
}

export async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
