// All HTTP concerns in one place: routes, the AdmissionReview envelope, body limits, errors,
// the decision log line and the metrics. Handlers (src/webhooks) never see HTTP.
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
import type { Decision } from '../admission/decision.js';
import type { AdmissionHandler } from '../admission/handler.js';
import { BadReview, parseReview, toReview } from '../admission/review.js';
import type { AdmissionRequest } from '../admission/types.js';
import type { Logger } from '../logger.js';
import type { AdmissionOutcome, Metrics } from '../metrics.js';
import type { Pair } from '../certs/x509.js';
import { TLS_SETTINGS } from './tls.js';
import { clientGaveUp, guardCounters, http2ServerLimits } from './limits.js';
import { LogBudget } from './log-budget.js';
import { HANDLER_TIMEOUT_MS } from '../timeouts.js';

/**
 * The API server sends at most two objects (object and oldObject), each capped at 3 MiB by etcd's
 * request limit, plus the envelope; controller-runtime caps webhook bodies at 7 MiB for the same
 * reason. Fastify's 1 MiB default would turn a large ConfigMap-bearing pod update into a failure.
 */
export const MAX_BODY_BYTES = 7 * 1024 * 1024;

export interface WebhookRoute {
  /** e.g. "/mutate/daemonsets" */
  path: string;
  handler: AdmissionHandler;
}

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

function outcomeOf(decision: Decision): AdmissionOutcome {
  if (!decision.allowed) return 'denied';
  return decision.patch && decision.patch.length > 0 ? 'patched' : 'allowed';
}

function isDecision(value: unknown): value is Decision {
  return typeof value === 'object' && value !== null && typeof (value as Decision).allowed === 'boolean';
}

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

const TIMED_OUT: unique symbol = Symbol('timed out');

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

/** The handler's result, or TIMED_OUT after `ms`; the timer is cleared either way. */
function withinDeadline<T>(pending: PromiseLike<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(resolve, ms, TIMED_OUT);
  });
  return Promise.race([pending, deadline]).finally(() => clearTimeout(timer));
}

const PROTOTYPE_KEYS = 'request body has a "__proto__" or "constructor.prototype" key, which is refused (prototype pollution); no Kubernetes object has one';

function clientError(message: string, code: string): Error {
  return Object.assign(new Error(message), { statusCode: 400, code });
}

/**
 * JSON.parse, then refuse what fastify's parser refuses: an own "__proto__" key, or a
 * "constructor" object with a "prototype" key, anywhere (walked without recursion, so nesting
 * depth cannot overflow the stack).
 */
export function parseJsonBody(body: string): unknown {
  if (body.length === 0) throw clientError('request body is empty: expected a JSON AdmissionReview', 'CMG_EMPTY_BODY');
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    const position = /position (\d+)/.exec((err as Error).message)?.[1];
    throw clientError(`request body is not valid JSON${position ? ` (at byte ${position})` : ''}`, 'CMG_INVALID_JSON');
  }
  const stack: unknown[] = [value];
  for (let node = stack.pop(); stack.length > 0 || node !== undefined; node = stack.pop()) {
    if (node === null || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      for (const item of node) if (item !== null && typeof item === 'object') stack.push(item);
      continue;
    }
    if (Object.hasOwn(node, '__proto__')) throw clientError(PROTOTYPE_KEYS, 'CMG_PROTOTYPE_KEY');
    const ctor = (node as Record<string, unknown>).constructor;
    if (Object.hasOwn(node, 'constructor') && ctor !== null && typeof ctor === 'object' && Object.hasOwn(ctor, 'prototype')) {
      throw clientError(PROTOTYPE_KEYS, 'CMG_PROTOTYPE_KEY');
    }
    for (const child of Object.values(node)) if (child !== null && typeof child === 'object') stack.push(child);
  }
  return value;
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
      return `request body is larger than ${MAX_BODY_BYTES} bytes (7 MiB), the most an AdmissionReview can need`;
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'request body is empty: expected a JSON AdmissionReview';
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'Content-Length does not match the body that was sent';
    default:
      // Our parser's messages (parseJsonBody) name no content and are meant to be read.
      if (error.code?.startsWith('CMG_')) return error.message;
      // A parser's message may quote the body; only where it broke is kept (no object bodies in
      // replies or logs).
      if (error instanceof SyntaxError || error.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
        const position = /position (\d+)/.exec(error.message)?.[1];
        return `request body is not valid JSON${position ? ` (at byte ${position})` : ''}`;
      }
      return error.message;
  }
}

export async function buildApp(options: AppOptions): Promise<App> {
  const { metrics } = options;
  const app = createFastify(options);
  const handlerMs = options.timeouts?.handlerMs ?? HANDLER_TIMEOUT_MS;
  const webhookByPath = new Map(options.handlers.map((route) => [route.path, route.handler.name]));

  metrics.trackCaches(() => options.readiness().detail);
  // Lines a client causes by sending bad requests are budgeted; decisions are always logged.
  const clientErrorLog = new LogBudget(options.logger);

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
    const webhook = webhookByPath.get(route ?? '');
    if (webhook) metrics.observeAdmission({ webhook, operation, decision }, elapsedMs / 1000);
  };

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
      let review: AdmissionRequest;
      try {
        review = parseReview(request.body);
      } catch (err) {
        if (!(err instanceof BadReview)) throw err;
        if (clientErrorLog.take()) request.log.warn({ webhook: handler.name, status: err.statusCode, problem: err.message }, 'bad admission review');
        observe(request.routeOptions.url, reply.elapsedTime, 'unknown', 'bad_request');
        return reply.code(err.statusCode).send({ error: err.message });
      }

      // The fields every line about this request carries. One object per request, merged into the
      // line at write time: a pino child logger per request (fastify's reqId child, then ours)
      // serialised its bindings on every request and cost more than the decision (docs/benchmarks.md).
      const fields = {
        webhook: handler.name,
        uid: review.uid,
        kind: review.kind.kind,
        namespace: review.namespace,
        name: review.name,
        operation: review.operation,
        subResource: review.subResource,
        dryRun: review.dryRun ?? false,
        user: review.userInfo?.username,
      };
      const log = request.log;

      let decision: Decision;
      try {
        const pending = handler.handle(review);
        // A decision from the caches comes back synchronously; only a pending one (an API read)
        // gets the deadline, so the common path arms no timer (fastify's handlerTimeout armed a
        // timer, an AbortController and a close listener per request: docs/benchmarks.md).
        const result: unknown = isThenable(pending) ? await withinDeadline(pending, handlerMs) : pending;
        if (result === TIMED_OUT) {
          // Answered 503 now (the API server applies the failurePolicy); whatever comes later is dropped.
          (pending as Promise<unknown>).then(
            () => log.warn({ ...fields, latencyMs: reply.elapsedTime }, 'admission decision arrived after the handler timeout; dropped'),
            (err: unknown) => log.warn({ ...fields, err, latencyMs: reply.elapsedTime }, 'admission handler failed after the handler timeout'),
          );
          log.error({ ...fields, url: request.routeOptions.url, latencyMs: reply.elapsedTime }, 'handler timed out');
          observe(request.routeOptions.url, reply.elapsedTime, review.operation, 'error');
          return reply.code(503).send({ error: 'the webhook did not decide in time' });
        }
        if (!isDecision(result)) throw new TypeError(`handler ${handler.name} returned ${typeof result}, not a Decision`);
        decision = result;
      } catch (err) {
        // A request this webhook does not serve (wrong resource or operation) is the caller's
        // mistake: a 4xx that names it, like a malformed envelope.
        if (err instanceof BadReview) {
          if (clientErrorLog.take()) log.warn({ ...fields, status: err.statusCode, problem: err.message }, 'admission request not served by this webhook');
          observe(request.routeOptions.url, reply.elapsedTime, review.operation, 'bad_request');
          return reply.code(err.statusCode).send({ error: err.message });
        }
        // A handler failure is ours, not the request's: answer 500 so the API server applies the
        // webhook's failurePolicy (Fail → the request is refused with "failed calling webhook";
        // Ignore → it goes through). An `allowed: false` review here would instead deny regardless
        // of the policy the operator chose. The uid is in the log line, the stack only in the log.
        log.error({ ...fields, err, latencyMs: reply.elapsedTime }, 'admission handler failed');
        observe(request.routeOptions.url, reply.elapsedTime, review.operation, 'error');
        return reply.code(500).send({ error: `webhook ${handler.name} failed internally (request uid ${review.uid}); see its logs` });
      }

      const outcome = outcomeOf(decision);
      log.info(
        {
          ...fields,
          node: decision.node,
          decision: outcome,
          reason: decision.reason,
          ...(decision.mode ? { mode: decision.mode } : {}),
          ...(decision.wouldBe ? { wouldBe: decision.wouldBe } : {}),
          latencyMs: Number(reply.elapsedTime.toFixed(3)),
        },
        'admission decision',
      );
      metrics.decisions.inc({
        webhook: handler.name,
        mode: decision.mode ?? 'none',
        decision: decision.wouldBe ? (decision.wouldBe === 'denied' ? 'would-deny' : 'would-patch') : outcome,
        reason: decision.reason,
      });
      observe(request.routeOptions.url, reply.elapsedTime, review.operation, outcome);
      return reply.code(200).send(toReview(review.uid, decision));
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
      const webhook = webhookByPath.get(request.routeOptions.url ?? '');
      if (webhook) metrics.admissionAborted.inc({ webhook });
      guardCounters(metrics).aborted.inc({ route: request.routeOptions.url ?? 'none' });
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
