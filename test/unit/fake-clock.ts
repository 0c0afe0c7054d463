// A manual clock for the reaper's Clock interface: time moves only when a test calls advance().

import type { Clock } from '../../src/reaper/clock.js';

export class FakeClock implements Clock {
  private timers: Array<{ at: number; resolve: () => void }> = [];
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
      const timer = { at: this.time + ms, resolve };
      this.timers.push(timer);
      signal?.addEventListener('abort', () => {
        this.timers = this.timers.filter((t) => t !== timer);
        reject(signal.reason);
      });
    });
  }

  /** Moves time forward, waking sleepers in order, letting each one's continuation run. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (let guard = 0; guard < 10_000; guard++) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.time = next.at;
      next.resolve();
      await flush();
    }
    this.time = end;
    await flush();
  }

  get pending(): number {
    return this.timers.length;
  }
}

export async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
