// The HTTP server: the admission routes (answered by admission-route.ts, in front of fastify for
// the common case and through fastify's routes otherwise), health, readiness, metrics, 404s, and
// the one error handler for what fastify's parser refuses. Handlers (src/webhooks) never see HTTP.
// buildApp() returns a fastify instance that is not listening: start.ts listens on it, tests
// either inject() or listen on port 0.

import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerBase,
} from 'fastify';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Logger } from '../logger.js';
import type { AdmissionOutcome, Metrics } from '../metrics.js';
import type { Pair } from '../certs/x509.js';
import { TLS_SETTINGS } from './tls.js';
import { clientGaveUp, http2ServerLimits } from './limits.js';
import { LogBudget } from './log-budget.js';
import { HANDLER_TIMEOUT_MS } from '../timeouts.js';
import { AdmissionRoutes, BODY_MESSAGES, MAX_BODY_BYTES, invalidJsonMessage, parseJsonBody, type WebhookRoute } from './admission-route.js';

export { MAX_BODY_BYTES, parseJsonBody, type WebhookRoute };

export interface Readiness {
  ready: boolean;
  /** Per cache: has it completed its initial list? */
  detail: Record<string, boolean>;
  /** Facts an operator should see next to readiness (e.g. managedDataplane), added to the /readyz body. */
  notes?: Record<string, unknown>;
}

export interface ServerTimeouts {
  /**
   * Longest a handler may take before the reply is a 503 (the API server then applies the
   * failurePolicy). Decisions are in-memory lookups; the default (HANDLER_TIMEOUT_MS, 1.5 s) is
   * below the registrations' timeoutSeconds so this 503 is what the API server sees.
   */
  handlerMs?: number;
  /** Idle socket timeout (node's server.setTimeout). Default 120 000 ms. */
  connectionMs?: number;
  /** An idle HTTP/2 session is closed (GOAWAY) after this. Default 72 000 ms (fastify's). */
  http2SessionMs?: number;
  /** A TLS handshake must complete within this. Default 10 000 ms. */
  tlsHandshakeMs?: number;
}

export interface AppOptions {
  handlers: WebhookRoute[];
  readiness: () => Readiness;
  metrics: Metrics;
  logger: Logger;
  /**
   * When set, the server is HTTPS with HTTP/2 (the API server negotiates h2 via ALPN) and an
   * HTTP/1.1 fallback (curl, supertest), TLS 1.2 at least. Without it: plain HTTP/1.1, for inject().
   */
  tls?: Pair;
  timeouts?: ServerTimeouts;
}

/** The app whatever its transport; start.ts narrows `server` to a tls.Server. */
export type App = FastifyInstance<RawServerBase, RawRequestDefaultExpression<RawServerBase>, RawReplyDefaultExpression<RawServerBase>, FastifyBaseLogger>;

function createFastify(options: AppOptions): App {
  const timeouts = options.timeouts ?? {};
  const common = {
    loggerInstance: options.logger,
    // One line per decision is written by the route itself; fastify's per-request lines
    // ("incoming request", "request completed") would double the volume and say less.
    logController: new LogController({ disableRequestLogging: true }),
    // request.log is the logger itself, not a child bound to fastify's request id (a child per
    // request cost a bindings serialisation each time; the AdmissionReview uid identifies a request).
    childLoggerFactory: (logger: FastifyBaseLogger) => logger,
    bodyLimit: MAX_BODY_BYTES,
    connectionTimeout: timeouts.connectionMs ?? 120_000,
    http2SessionTimeout: timeouts.http2SessionMs ?? 72_000,
    // While draining on shutdown, requests that still arrive on open connections are answered
    // normally (with "Connection: close" on HTTP/1.1) rather than failed with a 503: the process
    // can still decide, and a 503 would make the API server apply the failurePolicy for nothing.
    return503OnClosing: false,
  };
  if (options.tls) {
    return Fastify({
      ...common,
      http2: true,
      https: {
        allowHTTP1: true,
        ...TLS_SETTINGS,
        key: options.tls.key,
        cert: options.tls.cert,
        handshakeTimeout: timeouts.tlsHandshakeMs ?? 10_000,
        ...http2ServerLimits(),
      },
    }) as unknown as App;
  }
  return Fastify(common) as unknown as App;
}

export const NO_CONTENT_TYPE = 'no Content-Type header: send the AdmissionReview as application/json';

/**
 * Whether the client went away before its request was read: an HTTP/1.1 connection closed or an
 * HTTP/2 stream reset mid-upload. Nobody is left to answer; it is not a bad request either.
 */
function clientGone(error: FastifyError, raw: Parameters<typeof clientGaveUp>[0]): boolean {
  return error.code === 'ECONNRESET' || error.message === 'aborted' || clientGaveUp(raw);
}

/** Messages for fastify's own client errors, in words an operator can act on. */
function clientErrorMessage(error: FastifyError, contentType: string | undefined): string {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      if (contentType === undefined || contentType.trim() === '') return NO_CONTENT_TYPE;
      return `unsupported Content-Type ${JSON.stringify(contentType.slice(0, 100))}: send application/json`;
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return BODY_MESSAGES.tooLarge;
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return BODY_MESSAGES.empty;
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return BODY_MESSAGES.lengthMismatch;
    default:
      // Our parser's messages (parseJsonBody) name no content and are meant to be read.
      if (error.code?.startsWith('CMG_')) return error.message;
      // A parser's message may quote the body; only where it broke is kept (no object bodies in
      // replies or logs).
      if (error instanceof SyntaxError || error.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return invalidJsonMessage(error);
      return error.message;
  }
}

export async function buildApp(options: AppOptions): Promise<App> {
  const { metrics } = options;
  const app = createFastify(options);
  const handlerMs = options.timeouts?.handlerMs ?? HANDLER_TIMEOUT_MS;
  // Lines a client causes by sending bad requests are budgeted; decisions are always logged.
  const clientErrorLog = new LogBudget(options.logger);
  const routes = new AdmissionRoutes({ handlers: options.handlers, metrics, logger: options.logger, handlerMs, clientErrorLog });
  metrics.trackCaches(() => options.readiness().detail);

  // The admission POSTs skip fastify: the server's request listener (fastify's router) is put
  // behind AdmissionRoutes.serveRaw, which answers the common case (POST, webhook path, plain
  // application/json) itself and hands everything else to fastify unchanged. The server keeps
  // every setting fastify gave it (TLS, HTTP/2 limits, timeouts).
  const server = app.server as unknown as NodeJS.EventEmitter;
  const [route] = server.listeners('request') as ((req: unknown, res: unknown) => void)[];
  if (route) {
    server.removeListener('request', route);
    server.on('request', (req: Parameters<AdmissionRoutes['serveRaw']>[0], res: Parameters<AdmissionRoutes['serveRaw']>[1]) => {
      if (!routes.serveRaw(req, res)) route(req, res);
    });
  }
  // HTTP/2 admission POSTs are taken one step earlier, as streams: node's compatibility layer (the
  // 'stream' listener that makes the request and response objects and emits 'request') only sees
  // the streams serveStream leaves, so fastify and serveRaw get those exactly as before.
  const [compat, ...others] = server.listeners('stream') as ((this: unknown, ...args: unknown[]) => void)[];
  if (compat && others.length === 0) {
    server.removeListener('stream', compat);
    server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ...rest: unknown[]) => {
      if (!routes.serveStream(stream, headers)) compat.call(server, stream, headers, ...rest);
    });
  }
  // While draining, HTTP/1.1 answers say "Connection: close" (fastify does the same for its routes).
  app.addHook('preClose', (done) => {
    routes.closing = true;
    done();
  });

  // JSON only: fastify's text/plain parser goes, and its application/json one is replaced by
  // parseJsonBody, which refuses __proto__ / constructor.prototype keys with a message saying so
  // (fastify's says "not valid JSON"). Anything else is a 415.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  // Counts only requests to webhook routes; `route` is the matched route pattern, `elapsedMs` the
  // time since fastify received the request (reply.elapsedTime).
  const observe = (route: string | undefined, elapsedMs: number, operation: string, decision: AdmissionOutcome): void => {
    const webhook = routes.webhookAt(route);
    if (webhook) routes.observe(webhook, performance.now() - elapsedMs, operation, decision);
  };

  // The same routes in fastify, for what the fast path leaves to it (a content type with other
  // parameters, a missing one: 415) and for inject(): the same answer(), lines and metrics.
  for (const { path, handler } of options.handlers) {
    // A POST without Content-Type would reach the handler with no body (and a misleading 400);
    // the README promises 415 for anything that is not JSON.
    const requireContentType = async (
      request: { headers: Record<string, unknown>; routeOptions: { url?: string } },
      reply: { code(n: number): { send(b: unknown): unknown }; elapsedTime: number },
    ) => {
      const contentType = request.headers['content-type'];
      if (typeof contentType === 'string' && contentType.trim() !== '') return;
      observe(request.routeOptions.url, reply.elapsedTime, 'unknown', 'bad_request');
      return reply.code(415).send({ error: NO_CONTENT_TYPE });
    };
    app.post(path, { onRequest: requireContentType }, async (request, reply) => {
      const answer = await routes.answer(path, handler, request.body, performance.now() - reply.elapsedTime);
      return reply.code(answer.status).type('application/json; charset=utf-8').send(answer.body);
    });
  }

  app.get('/healthz', async (_request, reply) => reply.type('text/plain').send('ok'));

  app.get('/readyz', async (_request, reply) => {
    const { ready, detail, notes } = options.readiness();
    return reply.code(ready ? 200 : 503).send({ ready, caches: detail, ...notes });
  });

  app.get('/metrics', async (_request, reply) => reply.type(metrics.contentType).send(await metrics.text()));

  app.setNotFoundHandler(async (request, reply) => reply.code(404).send({ error: `no route for ${request.method} ${request.url.split('?')[0] ?? ''}` }));

  // The single error handler: fastify's own client errors (content type, size, JSON) become a 4xx
  // with a clear message; anything else is a 5xx whose details stay in the log.
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    // fastify adds "Connection: close" after a body parse error; HTTP/2 forbids that header
    // (node drops it with a process warning), and the stream ends with the reply anyway.
    if (request.raw.httpVersionMajor === 2) reply.removeHeader('connection');
    if (clientGone(error, request.raw)) {
      // Counted apart, and logged at info within the client-error budget (a rapid-reset client
      // would otherwise write a line per stream): a client that hung up is neither a bad request
      // nor our failure.
      routes.countAborted(routes.webhookAt(request.routeOptions.url));
      if (clientErrorLog.take())
        request.log.info({ url: request.routeOptions.url, latencyMs: reply.elapsedTime }, 'client went away before its request was read');
      reply.hijack(); // nothing can be sent; fastify must not try (and log "Reply was already sent")
      if (!reply.raw.destroyed) reply.raw.destroy();
      return;
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const message = clientErrorMessage(error, request.headers['content-type']);
      if (clientErrorLog.take()) request.log.warn({ status, problem: message, url: request.routeOptions.url }, 'bad request');
      observe(request.routeOptions.url, reply.elapsedTime, 'unknown', 'bad_request');
      return reply.code(status).send({ error: message });
    }
    request.log.error({ err: error, url: request.routeOptions.url }, 'unhandled error');
    observe(request.routeOptions.url, reply.elapsedTime, 'unknown', 'error');
    return reply.code(500).send({ error: 'internal error; see the webhook logs' });
  });

  await app.ready();
  return app;
}
