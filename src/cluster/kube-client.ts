// The client-node toolbox every caller of the API server shares: per-call abort and timeout
// options, a deadline that also covers time before a request is sent, and what an error says
// (HTTP status, not found, aborted).
//
// The deadline is enforced twice: an AbortSignal set on the request by a per-call middleware
// (aborts the HTTP request itself), and a Promise.race timer (also covers time spent before the
// request is sent, e.g. an exec credential plugin that hangs).

import { ApiException, Observable, type ConfigurationOptions, type ObservableMiddleware } from '@kubernetes/client-node';

export class LookupTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`reading ${what} from the API server timed out after ${ms} ms`);
    this.name = 'LookupTimeoutError';
  }
}

/**
 * Per-call client options that attach an AbortSignal to the HTTP request (client-node 2.x sends
 * RequestContext's signal to fetch). `makeSignal` runs when the request is about to be sent.
 */
export function abortOptions(makeSignal: () => AbortSignal): ConfigurationOptions {
  const abort: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(makeSignal());
      return new Observable(Promise.resolve(ctx));
    },
    post: (res) => new Observable(Promise.resolve(res)),
  };
  return { middleware: [abort], middlewareMergeStrategy: 'append' };
}

/** Per-call client options that abort the HTTP request after `ms`. */
export function timeoutOptions(ms: number): ConfigurationOptions {
  return abortOptions(() => AbortSignal.timeout(ms));
}

/**
 * Rejects with LookupTimeoutError after `ms`, or with the signal's reason when `signal` aborts,
 * whatever `promise` does: this also covers time spent before a request is sent (e.g. a hanging
 * credential plugin), which an AbortSignal on the request itself cannot.
 */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string, signal?: AbortSignal): Promise<T> {
  signal?.throwIfAborted();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LookupTimeoutError(what, ms)), ms);
    if (signal) signal.addEventListener('abort', (onAbort = () => reject(signal.reason)), { once: true });
  });
  try {
    return await Promise.race([promise, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/** The HTTP status the API server answered with; undefined when it did not answer (network, timeout, abort). */
export function httpStatus(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code as number;
  // raw-api.ts's ApiStatusError (not imported here: raw-api imports nothing of ours).
  const e = err as { name?: unknown; statusCode?: unknown } | null;
  return e?.name === 'ApiStatusError' && typeof e.statusCode === 'number' ? e.statusCode : undefined;
}

export function isNotFound(err: unknown): boolean {
  if (err instanceof ApiException) return err.code === 404;
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  return e?.code === 404 || e?.statusCode === 404;
}

export function isAbort(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}
