// Time as a dependency: the one clock that the reaper, the informers, the certificate controller
// and the rest read the time and set their timers from, so each timed behaviour (the reaper's
// debounce and resync, the informers' restart backoff, certificate passes) can be unit-tested
// with a fake clock (test/support/fake-clock.ts).

import { setTimeout as delay } from 'node:timers/promises';

/** A pending timer; clear() is idempotent. */
export interface Timer {
  clear(): void;
}

export interface TimerOptions {
  /** Do not keep the process alive for this timer (Node's timer.unref()). */
  unref?: boolean;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`; rejects with an AbortError when `signal` aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Calls `fn` once after `ms`. */
  setTimeout(fn: () => void, ms: number, options?: TimerOptions): Timer;
  /** Calls `fn` every `ms`. */
  setInterval(fn: () => void, ms: number, options?: TimerOptions): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => delay(ms, undefined, signal ? { signal } : {}),
  setTimeout: (fn, ms, options) => {
    const handle = setTimeout(fn, ms);
    if (options?.unref) handle.unref();
    return { clear: () => clearTimeout(handle) };
  },
  setInterval: (fn, ms, options) => {
    const handle = setInterval(fn, ms);
    if (options?.unref) handle.unref();
    return { clear: () => clearInterval(handle) };
  },
};
