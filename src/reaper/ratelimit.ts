// At most N removals per minute cluster-wide and M per node: two token buckets (burst = the
// per-minute number, refilled continuously). A removal takes one token from both; when either is
// empty the caller waits for the refill, and is told so first (to log it and count it).

import type { Clock } from './clock.js';

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

class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly perMs: number;

  constructor(
    private readonly capacity: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.last = now;
    this.perMs = capacity / 60_000;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.capacity, this.tokens + Math.max(0, now - this.last) * this.perMs);
    this.last = now;
  }

  /** Milliseconds until a whole token is there (0: now). */
  waitMs(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) / this.perMs);
  }

  take(now: number): void {
    this.refill(now);
    this.tokens -= 1;
  }

  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.capacity;
  }
}

/** Bound on wait rounds per acquire; one round suffices for a single caller, a few for concurrent ones. */
const MAX_ROUNDS = 100;

export class RemovalRateLimiter {
  private readonly cluster: TokenBucket;
  private readonly nodes = new Map<string, TokenBucket>();

  constructor(
    private readonly limits: RateLimits,
    private readonly clock: Clock,
  ) {
    this.cluster = new TokenBucket(limits.perMinute, clock.now());
  }

  /**
   * Waits until a removal on `node` fits both limits, then takes it. `onWait` is called before each
   * wait. Rejects with an AbortError when `signal` aborts during a wait (nothing is taken then).
   */
  async acquire(node: string, options: { signal?: AbortSignal; onWait?: (notice: WaitNotice) => void } = {}): Promise<{ waitedMs: number }> {
    const start = this.clock.now();
    for (let round = 0; round < MAX_ROUNDS; round++) {
      options.signal?.throwIfAborted();
      const now = this.clock.now();
      const nodeBucket = this.bucketFor(node, now);
      const clusterWait = this.cluster.waitMs(now);
      const nodeWait = nodeBucket.waitMs(now);
      if (clusterWait === 0 && nodeWait === 0) {
        this.cluster.take(now);
        nodeBucket.take(now);
        this.forgetIdleNodes(now, node);
        return { waitedMs: now - start };
      }
      const scope: LimitScope = nodeWait >= clusterWait ? 'node' : 'cluster';
      const waitMs = Math.max(clusterWait, nodeWait);
      options.onWait?.({ node, scope, waitMs });
      await this.clock.sleep(waitMs, options.signal);
    }
    throw new Error(`rate limiter: no token for node ${node} after ${MAX_ROUNDS} waits`);
  }

  private bucketFor(node: string, now: number): TokenBucket {
    let bucket = this.nodes.get(node);
    if (!bucket) this.nodes.set(node, (bucket = new TokenBucket(this.limits.perNodePerMinute, now)));
    return bucket;
  }

  /** A full bucket is the same as no bucket: drop it, so the map does not grow with every node ever seen. */
  private forgetIdleNodes(now: number, keep: string): void {
    for (const [name, bucket] of this.nodes) if (name !== keep && bucket.isFull(now)) this.nodes.delete(name);
  }

  /** Per-node buckets held (for tests). */
  get trackedNodes(): number {
    return this.nodes.size;
  }
}
