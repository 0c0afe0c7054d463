// At most N removals in ANY 60 s window cluster-wide, and M per node: sliding windows (the times of
// the removals still inside the window), not token buckets — a bucket of capacity N refilled at
// N/min lets 2N−1 through in one minute (a full burst, then the refill).
//
// The actuator never sleeps on the limiter inside a pass: it asks check() before re-reading a
// pod, takes a slot with tryTake() only once the re-read says "remove", and release()s the slot
// when the pod was not removed after all (gone, 409, PDB refusal, throttled), so only removals
// use up the budget. A finding whose node (or the cluster) is full is deferred to a pass at the
// time check() names; the other nodes go on. acquire() (waits) is kept for callers that can block.

import type { Clock } from '../clock.js';

export type LimitScope = 'cluster' | 'node';

export interface RateLimits {
  perMinute: number;
  perNodePerMinute: number;
}

export interface WaitNotice {
  node: string;
  scope: LimitScope;
  waitMs: number;
}

/** A taken removal slot; release() gives it back (the removal did not happen). */
export interface RateSlot {
  release(): void;
}

export const WINDOW_MS = 60_000;

class SlidingWindow {
  /** Times of the removals inside the window, oldest first. */
  private times: number[] = [];

  constructor(private readonly limit: number) {}

  private prune(now: number): void {
    let drop = 0;
    while (drop < this.times.length && this.times[drop]! <= now - WINDOW_MS) drop++;
    if (drop > 0) this.times.splice(0, drop);
  }

  /** Milliseconds until one more fits (0: now). */
  waitMs(now: number): number {
    this.prune(now);
    if (this.times.length < this.limit) return 0;
    // The (size − limit + 1)-th oldest must leave the window; with size == limit, the oldest.
    return this.times[this.times.length - this.limit]! + WINDOW_MS - now;
  }

  take(now: number): void {
    this.times.push(now);
  }

  /** Gives back the slot taken at `at` (one of them, if several). */
  release(at: number): void {
    const i = this.times.lastIndexOf(at);
    if (i >= 0) this.times.splice(i, 1);
  }

  isEmpty(now: number): boolean {
    this.prune(now);
    return this.times.length === 0;
  }
}

/** Bound on wait rounds per acquire; one round suffices for a single caller, a few for concurrent ones. */
const MAX_ROUNDS = 100;

export class RemovalRateLimiter {
  private readonly cluster: SlidingWindow;
  private readonly nodes = new Map<string, SlidingWindow>();

  constructor(
    private readonly limits: RateLimits,
    private readonly clock: Clock,
  ) {
    this.cluster = new SlidingWindow(limits.perMinute);
  }

  /** Whether a removal on `node` would have to wait, and for which limit and how long; undefined: it fits now. Takes nothing. */
  check(node: string): WaitNotice | undefined {
    const now = this.clock.now();
    const clusterWait = this.cluster.waitMs(now);
    const nodeWait = this.nodes.get(node)?.waitMs(now) ?? 0;
    if (clusterWait === 0 && nodeWait === 0) return undefined;
    return { node, scope: nodeWait >= clusterWait ? 'node' : 'cluster', waitMs: Math.max(clusterWait, nodeWait) };
  }

  /** Takes a slot on `node` if one is free now; never waits. */
  tryTake(node: string): { slot: RateSlot } | { wait: WaitNotice } {
    const wait = this.check(node);
    if (wait) return { wait };
    const now = this.clock.now();
    const window = this.windowFor(node);
    this.cluster.take(now);
    window.take(now);
    this.forgetIdleNodes(now, node);
    let released = false;
    return {
      slot: {
        release: () => {
          if (released) return;
          released = true;
          this.cluster.release(now);
          window.release(now);
        },
      },
    };
  }

  /**
   * Waits until a removal on `node` fits both limits, then takes it. `onWait` is called before each
   * wait. Rejects with the signal's reason when `signal` aborts during a wait (nothing is taken then).
   */
  async acquire(node: string, options: { signal?: AbortSignal; onWait?: (notice: WaitNotice) => void } = {}): Promise<{ waitedMs: number; slot: RateSlot }> {
    const start = this.clock.now();
    for (let round = 0; round < MAX_ROUNDS; round++) {
      options.signal?.throwIfAborted();
      const taken = this.tryTake(node);
      if ('slot' in taken) return { waitedMs: this.clock.now() - start, slot: taken.slot };
      options.onWait?.(taken.wait);
      await this.clock.sleep(taken.wait.waitMs, options.signal);
    }
    throw new Error(`rate limiter: no slot for node ${node} after ${MAX_ROUNDS} waits`);
  }

  private windowFor(node: string): SlidingWindow {
    let window = this.nodes.get(node);
    if (!window) this.nodes.set(node, (window = new SlidingWindow(this.limits.perNodePerMinute)));
    return window;
  }

  /** An empty window is the same as no window: drop it, so the map does not grow with every node ever seen. */
  private forgetIdleNodes(now: number, keep: string): void {
    for (const [name, window] of this.nodes) if (name !== keep && window.isEmpty(now)) this.nodes.delete(name);
  }

  /** Per-node windows held (for tests). */
  get trackedNodes(): number {
    return this.nodes.size;
  }
}
