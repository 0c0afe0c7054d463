// The reaper's plain-HTTP side port: GET /healthz (liveness: 200 while the reaper loop makes
// progress — a pass completed within 2 x resync + 60 s — else 503, so the kubelet restarts a stuck
// loop), GET /readyz (200 once the caches it reads have synced and its CRDs exist, 503 before, with
// the per-cache state), GET /metrics (Prometheus text).
// Plain HTTP: nothing but probes and scrapes talk to it, and it carries no secrets.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { listenWithFallback } from '../server/listen.js';

export interface ProbeServerOptions {
  host: string;
  port: number;
  /** With host "::": where IPv6 is unavailable, listen on 0.0.0.0 instead, with a log line. */
  ipv4Fallback?: boolean;
  metrics: Metrics;
  readiness: () => { ready: boolean; detail: Record<string, unknown> };
  /** Absent: always healthy (the process is up). */
  liveness?: () => { healthy: boolean; detail: Record<string, unknown> };
  log: Logger;
}

export interface ProbeServer {
  url: string;
  close(): Promise<void>;
}

export async function startProbeServer(options: ProbeServerOptions): Promise<ProbeServer> {
  const { metrics, readiness, liveness, log } = options;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      if (!liveness) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      }
      const state = liveness();
      res.writeHead(state.healthy ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(state)}\n`);
    } else if (path === '/readyz') {
      const state = readiness();
      res.writeHead(state.ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(state)}\n`);
    } else if (path === '/metrics') {
      metrics.text().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        (err: unknown) => {
          log.error({ err }, 'collecting metrics failed');
          res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
        },
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  const listen = (host: string) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  if (options.ipv4Fallback) await listenWithFallback(options.host, listen, log);
  else await listen(options.host);
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
