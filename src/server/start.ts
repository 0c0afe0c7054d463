// Starting and stopping the HTTPS listener. buildApp() owns the routes; this file owns the socket:
// TLS from a watched pair, HTTP/2 with an HTTP/1.1 fallback, and a shutdown that drains.

import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Logger } from '../logger.js';
import { buildApp, type App, type AppOptions } from './app.js';
import { listenWithFallback } from './listen.js';
import { guardCounters, MAX_CONNECTIONS } from './limits.js';
import { CERT_FILE, KEY_FILE, ensureServingCert, type ServingCertOptions } from '../certs/local.js';
import { CertWatcher, secureContextOptions } from './tls.js';

export interface ServeOptions extends Omit<AppOptions, 'tls'> {
  /** Directory holding tls.crt and tls.key (a mounted Secret in a cluster). */
  certDir: string;
  /** When set and certDir has no pair, generate a CA and a pair signed by it there (local runs). */
  generateCert?: ServingCertOptions;
  /** 0 picks a free port (tests). */
  port: number;
  /** Default "0.0.0.0". "::" listens on every address of both families (dual-stack on Linux). */
  host?: string;
  /** With host "::": where IPv6 is unavailable (EAFNOSUPPORT, EADDRNOTAVAIL), listen on 0.0.0.0 instead, with a log line. */
  ipv4Fallback?: boolean;
  /** CertWatcher's fallback poll. Default 10 s. */
  certPollIntervalMs?: number;
  /** The names clients reach the server by; a rotated pair must keep covering them (CertWatcher). */
  servingNames?: readonly string[];
  /** Connections open at once; more are closed on arrival. Default MAX_CONNECTIONS (256). */
  maxConnections?: number;
  /**
   * How long close() waits for in-flight requests before cutting the remaining connections.
   * Default 20 s: inside Kubernetes' default 30 s terminationGracePeriodSeconds.
   */
  shutdownTimeoutMs?: number;
}

export interface ServerHandle {
  app: App;
  /** e.g. "https://127.0.0.1:8443" */
  url: string;
  port: number;
  certWatcher: CertWatcher;
  /** Stops accepting, lets in-flight requests finish, then resolves. Idempotent. */
  close(): Promise<void>;
}

function tlsServerOf(app: App): TlsServer {
  return app.server as unknown as TlsServer;
}

/**
 * Tracks connections so shutdown can drain them: idle HTTP/1.1 keep-alive sockets are closed at
 * once (node's HTTP/2 server.close() only knows about HTTP/2 sessions), busy ones after their last
 * response (fastify sends "Connection: close" while closing), and whatever is left at the deadline
 * is destroyed.
 */
class ConnectionTracker {
  private readonly sockets = new Set<Socket>();
  private readonly http1InFlight = new Map<TLSSocket, number>();
  private draining = false;

  constructor(server: TlsServer) {
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol === 'h2') return;
      this.http1InFlight.set(socket, 0);
      socket.once('close', () => this.http1InFlight.delete(socket));
    });
    server.on('request', (request: { socket: unknown; httpVersionMajor: number }, response: NodeJS.EventEmitter) => {
      if (request.httpVersionMajor !== 1) return;
      const socket = request.socket as TLSSocket;
      this.http1InFlight.set(socket, (this.http1InFlight.get(socket) ?? 0) + 1);
      response.once('close', () => {
        const left = (this.http1InFlight.get(socket) ?? 1) - 1;
        if (!this.http1InFlight.has(socket)) return;
        this.http1InFlight.set(socket, left);
        if (this.draining && left === 0) socket.end();
      });
    });
  }

  /** Ends idle HTTP/1.1 connections now; busy ones end after their last response. */
  drain(): void {
    this.draining = true;
    for (const [socket, inFlight] of this.http1InFlight) if (inFlight === 0) socket.end();
  }

  destroyAll(): number {
    const count = this.sockets.size;
    for (const socket of this.sockets) socket.destroy();
    return count;
  }
}

/** Listens without touching process signals; commands/signals.ts owns shutdown on SIGTERM. */
export async function startServer(options: ServeOptions): Promise<ServerHandle> {
  const logger: Logger = options.logger;
  if (options.generateCert) {
    const files = await ensureServingCert(options.certDir, options.generateCert);
    if (files.generated) logger.info({ certDir: options.certDir, caFile: files.caFile }, 'generated a serving certificate');
  }
  const certWatcher = new CertWatcher({
    certFile: join(options.certDir, CERT_FILE),
    keyFile: join(options.certDir, KEY_FILE),
    logger,
    ...(options.certPollIntervalMs === undefined ? {} : { pollIntervalMs: options.certPollIntervalMs }),
    ...(options.servingNames ? { servingNames: options.servingNames } : {}),
    onReject: (reason) => options.metrics.certificateRejected.inc({ reason }),
  });
  const pair = await certWatcher.start();

  let app: App;
  try {
    app = await buildApp({ ...options, tls: pair });
  } catch (err) {
    certWatcher.close();
    throw err;
  }
  const server = tlsServerOf(app);
  // Beyond this node closes a new connection as soon as it is accepted ('drop'), counted.
  server.maxConnections = options.maxConnections ?? MAX_CONNECTIONS;
  server.on('drop', () => guardCounters(options.metrics).dropped.inc());
  const connections = new ConnectionTracker(server);
  // New handshakes use the new pair; established connections keep theirs until they end.
  certWatcher.onRotate((next) => server.setSecureContext(secureContextOptions(next)));
  options.metrics.trackCertificateExpiry(() => certWatcher.notAfter);

  let host = options.host ?? '0.0.0.0';
  try {
    const listen = (candidate: string) => app.listen({ port: options.port, host: candidate });
    host = options.ipv4Fallback ? await listenWithFallback(host, listen, logger) : (await listen(host), host);
  } catch (err) {
    certWatcher.close();
    await app.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const started = Date.now();
      logger.info('shutting down: no new connections, draining in-flight requests');
      certWatcher.close();
      connections.drain();
      // fastify's close: stop routing new work, server.close() (no new connections; on node ≥ 24 it
      // also sends GOAWAY to every HTTP/2 session, which then ends once its open streams complete).
      const closed = app.close();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), options.shutdownTimeoutMs ?? 20_000);
      });
      if ((await Promise.race([closed.then(() => 'closed' as const), deadline])) === 'timeout') {
        const cut = connections.destroyAll();
        logger.warn({ connections: cut }, 'shutdown deadline passed; closed the remaining connections');
        await closed;
      }
      clearTimeout(timer);
      logger.info({ ms: Date.now() - started }, 'server closed');
    })();
    return closing;
  };

  return { app, url, port, certWatcher, close };
}
