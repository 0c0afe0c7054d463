// Listening on "::" (every address of both families, dual-stack on Linux) where the pod may have
// IPv6 disabled: then "0.0.0.0", said in the log. Shared by the webhook server and the reaper's
// probe port, each applying it to its own real listen call.

import type { Logger } from '../logger.js';

/** Listening on "::" fails with one of these where the pod or host has IPv6 disabled. */
const IPV6_UNAVAILABLE: ReadonlySet<string> = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL']);

/** The address to try after listening on `host` failed with `err`: 0.0.0.0 after "::" without IPv6, else none. */
export function fallbackHost(host: string, err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return host === '::' && typeof code === 'string' && IPV6_UNAVAILABLE.has(code) ? '0.0.0.0' : undefined;
}

/**
 * Calls listen(host), and on "::" without IPv6 listen("0.0.0.0") with a log line; any other error
 * is thrown. Resolves to the host it listens on.
 */
export async function listenWithFallback(host: string, listen: (host: string) => Promise<unknown>, logger: Logger): Promise<string> {
  try {
    await listen(host);
    return host;
  } catch (err) {
    const next = fallbackHost(host, err);
    if (next === undefined) throw err;
    logger.warn(
      { host, code: (err as { code?: unknown }).code, fallback: next },
      `cannot listen on ${host} (IPv6 is unavailable here): listening on ${next}, IPv4 only`,
    );
    await listen(next);
    return next;
  }
}
