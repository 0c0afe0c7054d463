// Bounds on what one client can make the HTTPS server hold: streams per HTTP/2 connection,
// connections, per-session memory, header sizes, and how fast a client may reset streams.
// The API server is the only client that matters; every number below leaves it room to spare
// and says why. The NetworkPolicy in manifests/base keeps everyone else off the port.

import type { SecureServerOptions } from 'node:http2';
import { Counter } from 'prom-client';
import { METRIC_PREFIX, type Metrics } from '../metrics.js';

export const HTTP2_LIMITS = {
  /**
   * SETTINGS_MAX_CONCURRENT_STREAMS advertised on every connection (node's default advertises
   * 2^32-1). The API server calls webhooks with Go's HTTP/2 transport, which by default
   * (StrictMaxConcurrentStreams false, golang.org/x/net/http2/transport.go) opens another
   * connection rather than queue when a connection is full; and one API server has at most
   * --max-mutating-requests-inflight (default 200) writes in flight, each of which calls a
   * webhook once at a time. 250 covers that on one connection; more only serves an attacker.
   */
  maxConcurrentStreams: 250,
  /**
   * SETTINGS_MAX_HEADER_LIST_SIZE, enforced by node on incoming header blocks. The API server
   * sends a handful of short headers (content-type, accept, user-agent, content-length, perhaps
   * a bearer token and traceparent); 16 KiB is node's HTTP/1.1 default limit for the same thing.
   */
  maxHeaderListSize: 16 * 1024,
  /** Header fields per request (node's default 128). */
  maxHeaderListPairs: 64,
  /**
   * nghttp2's memory per session, in MiB (node's default 10): header tables, stream state and
   * queued outgoing data. New streams are refused while it is exceeded. The largest answer this
   * webhook gives (a patch for a 3 MiB DaemonSet, base64) is about 4 MiB, so 8 leaves room for it
   * and the small answers next to it.
   */
  maxSessionMemory: 8,
  /**
   * RST_STREAM frames a client may send: a burst, then a rate per second; beyond it nghttp2 ends
   * the session with GOAWAY. nghttp2's defaults are 1000 and 33. The API server resets a stream
   * only when its call times out; even if every call on a full connection timed out at once that
   * is 250 resets, so the burst is one connection's worth.
   */
  streamResetBurst: 250,
  streamResetRate: 33,
} as const;

/**
 * Connections open at once (HTTP/2 and HTTP/1.1 together); node closes any beyond this as soon as
 * it is accepted. Who connects: each API server instance (a few connections: one per webhook
 * client it builds, more only past 250 streams), Prometheus, and the kubelet's probes (a new
 * HTTP/1.1 connection per probe, closed after it). 256 is ten times what a large HA control plane
 * needs, and keeps the worst case of idle TLS connections to tens of MiB.
 */
export const MAX_CONNECTIONS = 256;

/** The http2.createSecureServer options that carry HTTP2_LIMITS. */
export function http2ServerLimits(): Pick<
  SecureServerOptions,
  'settings' | 'maxHeaderListPairs' | 'maxSessionMemory' | 'streamResetBurst' | 'streamResetRate'
> {
  return {
    settings: { maxConcurrentStreams: HTTP2_LIMITS.maxConcurrentStreams, maxHeaderListSize: HTTP2_LIMITS.maxHeaderListSize },
    maxHeaderListPairs: HTTP2_LIMITS.maxHeaderListPairs,
    maxSessionMemory: HTTP2_LIMITS.maxSessionMemory,
    streamResetBurst: HTTP2_LIMITS.streamResetBurst,
    streamResetRate: HTTP2_LIMITS.streamResetRate,
  };
}

interface RawRequest {
  aborted?: boolean;
  readableAborted?: boolean;
  stream?: { destroyed?: boolean; rstCode?: number };
  socket?: { destroyed?: boolean } | null;
}

/**
 * Did the client give up on this request (reset the HTTP/2 stream, or closed the connection)
 * before it was answered? Such a request is nobody's mistake worth a log line: a rapid-reset
 * client makes thousands a second. It is counted instead (cmg_admission_requests_aborted_total).
 */
export function clientGaveUp(raw: RawRequest): boolean {
  if (raw.aborted === true || raw.readableAborted === true) return true;
  if (raw.stream !== undefined) return raw.stream.destroyed === true || (raw.stream.rstCode ?? 0) !== 0;
  return raw.socket?.destroyed === true;
}

export interface GuardCounters {
  /** Connections closed on arrival because MAX_CONNECTIONS were open. */
  dropped: Counter;
}

// One set per Metrics (its registry refuses a second metric of the same name).
const countersByMetrics = new WeakMap<Metrics, GuardCounters>();

export function guardCounters(metrics: Metrics): GuardCounters {
  let counters = countersByMetrics.get(metrics);
  if (!counters) {
    const registers = [metrics.registry];
    counters = {
      dropped: new Counter({
        name: `${METRIC_PREFIX}connections_dropped_total`,
        help: 'Connections closed on arrival because the connection limit (default 256) was reached.',
        registers,
      }),
    };
    countersByMetrics.set(metrics, counters);
  }
  return counters;
}
