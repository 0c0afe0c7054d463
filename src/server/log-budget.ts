// A budget for log lines a client can cause (bad requests, malformed reviews): the first
// `perWindow` in each window are logged, the rest only counted, and the count is logged once when
// the next window opens. Without it every malformed or abandoned request writes a line, and one
// client sending them as fast as it can fills the disk and the log pipeline (5.6 MB/s measured).
// The metrics (cmg_admission_requests_total{decision="bad_request"}) still count every request.

import type { Logger } from '../logger.js';

export interface LogBudgetOptions {
  /** Lines logged per window. Default 20. */
  perWindow?: number;
  /** Default 10 000 ms. */
  windowMs?: number;
  /** Injectable clock (tests). */
  now?: () => number;
}

export class LogBudget {
  private readonly perWindow: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private windowStart = Number.NEGATIVE_INFINITY;
  private used = 0;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger,
    options: LogBudgetOptions = {},
  ) {
    this.perWindow = options.perWindow ?? 20;
    this.windowMs = options.windowMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Whether to log this line now; when not, it is counted and summed up later. */
  take(): boolean {
    const now = this.now();
    if (now - this.windowStart >= this.windowMs) {
      if (this.suppressed > 0) {
        this.logger.warn(
          { suppressed: this.suppressed, windowMs: this.windowMs },
          `${this.suppressed} more client errors in ${this.windowMs / 1000} s were not logged (counted in cmg_admission_requests_total and cmg_admission_requests_aborted_total)`,
        );
      }
      this.windowStart = now;
      this.used = 0;
      this.suppressed = 0;
    }
    if (this.used < this.perWindow) {
      this.used += 1;
      return true;
    }
    this.suppressed += 1;
    return false;
  }
}
