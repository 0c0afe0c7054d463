// What every caller of the API server shares: a deadline that also covers time before a request
// is sent, and what an error says (HTTP status, not found, aborted).
//
// Requests (raw-api.ts request()) carry their own deadline as an AbortSignal, which aborts the
// HTTP request itself; withDeadline() adds a timer that also covers time spent before the request
// is sent (e.g. an exec credential plugin that hangs, kube-config.ts's client-node fallback).
// Errors are recognised by shape, not class: raw-api's ApiStatusError (statusCode) and
// client-node's ApiException (numeric code), so nothing here loads client-node.

export class LookupTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`reading ${what} from the API server timed out after ${ms} ms`);
    this.name = 'LookupTimeoutError';
  }
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

const isHttpStatus = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value >= 100 && value < 600;

/** The HTTP status the API server answered with; undefined when it did not answer (network, timeout, abort). */
export function httpStatus(err: unknown): number | undefined {
  const e = err as { statusCode?: unknown; code?: unknown } | null;
  // raw-api.ts's ApiStatusError has statusCode; client-node's ApiException a numeric code (a
  // network error's code is a string such as ECONNRESET).
  if (isHttpStatus(e?.statusCode)) return e.statusCode;
  return isHttpStatus(e?.code) ? e.code : undefined;
}

export function isNotFound(err: unknown): boolean {
  return httpStatus(err) === 404;
}

export function isAbort(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}
