// The admission POSTs, answered without fastify: the envelope, the handler's deadline, the
// decision log line, the metrics and the reply, all in one place. start.ts's server hands a
// request here first (`serveRaw`) when it is the plain common case — POST to a webhook path with
// an application/json body, which is every call the API server makes — and fastify gets
// everything else (health, metrics, 404s, other content types, …). Fastify's own admission
// routes call `answer()` too (app.ts), so inject() and any request the fast path leaves to
// fastify get the same decisions, lines and metrics. Why: fastify's request lifecycle and the
// garbage it leaves were a third of the CPU per admission (docs/benchmarks.md).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Readable } from 'node:stream';
import type { Decision } from '../admission/decision.js';
import type { AdmissionHandler } from '../admission/handler.js';
import { BadReview, parseReview, toResponse } from '../admission/review.js';
import type { AdmissionRequest } from '../admission/types.js';
import { lineWriter, type LineFields, type Logger } from '../logger.js';
import type { AdmissionOutcome, Metrics } from '../metrics.js';
import type { LogBudget } from './log-budget.js';

/**
 * The API server sends at most two objects (object and oldObject), each capped at 3 MiB by etcd's
 * request limit, plus the envelope; controller-runtime caps webhook bodies at 7 MiB for the same
 * reason. Fastify's 1 MiB default would turn a large ConfigMap-bearing pod update into a failure.
 */
export const MAX_BODY_BYTES = 7 * 1024 * 1024;

/** The answers to body problems, worded for an operator (fastify's error handler uses them too). */
export const BODY_MESSAGES = {
  tooLarge: `request body is larger than ${MAX_BODY_BYTES} bytes (7 MiB), the most an AdmissionReview can need`,
  empty: 'request body is empty: expected a JSON AdmissionReview',
  lengthMismatch: 'Content-Length does not match the body that was sent',
} as const;

const PROTOTYPE_KEYS = 'request body has a "__proto__" or "constructor.prototype" key, which is refused (prototype pollution); no Kubernetes object has one';

/** A 4xx about the request body; `code` is what fastify's error handler recognises. */
export function clientError(message: string, code: string, statusCode = 400): Error & { statusCode: number; code: string } {
  return Object.assign(new Error(message), { statusCode, code });
}

export function invalidJsonMessage(error: Error): string {
  const position = /position (\d+)/.exec(error.message)?.[1];
  return `request body is not valid JSON${position ? ` (at byte ${position})` : ''}`;
}

/** Whether a parsed value has an own "__proto__" key, or a "constructor" object with a "prototype" key, anywhere (no recursion). */
function hasPrototypeKey(value: unknown): boolean {
  const stack: unknown[] = [value];
  for (let node = stack.pop(); stack.length > 0 || node !== undefined; node = stack.pop()) {
    if (node === null || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      for (const item of node) if (item !== null && typeof item === 'object') stack.push(item);
      continue;
    }
    if (Object.hasOwn(node, '__proto__')) return true;
    const ctor = (node as Record<string, unknown>).constructor;
    if (Object.hasOwn(node, 'constructor') && ctor !== null && typeof ctor === 'object' && Object.hasOwn(ctor, 'prototype')) return true;
    for (const key in node) {
      const child = (node as Record<string, unknown>)[key];
      if (child !== null && typeof child === 'object') stack.push(child);
    }
  }
  return false;
}

/**
 * JSON.parse, then refuse what fastify's parser (secure-json-parse) refuses: an own "__proto__"
 * key, or a "constructor" object with a "prototype" key, anywhere. The walk over the parsed value
 * only runs when the text could hold such a key: a key named "__proto__" or "constructor" appears
 * in JSON text either literally or with \u escapes, so a body with neither word and no "\u"
 * cannot have one (the common case: JSON.parse alone). The protection matters because handlers
 * and the decision code copy and spread request objects.
 */
export function parseJsonBody(body: string): unknown {
  if (body.length === 0) throw clientError(BODY_MESSAGES.empty, 'CMG_EMPTY_BODY');
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    throw clientError(invalidJsonMessage(err as Error), 'CMG_INVALID_JSON');
  }
  const suspect = body.includes('__proto__') || body.includes('constructor') || body.includes('\\u');
  if (suspect && hasPrototypeKey(value)) throw clientError(PROTOTYPE_KEYS, 'CMG_PROTOTYPE_KEY');
  return value;
}

/** What the server sends back: a status and a JSON body. */
export interface Answer {
  status: number;
  body: string;
}

/** One webhook route: its path and handler. */
export interface WebhookRoute {
  /** e.g. "/mutate/daemonsets" */
  path: string;
  handler: AdmissionHandler;
}

export interface AdmissionRoutesOptions {
  handlers: WebhookRoute[];
  metrics: Metrics;
  logger: Logger;
  /** Longest a pending (API-reading) handler may take before the answer is a 503. */
  handlerMs: number;
  /** Lines a client causes with bad requests (shared with fastify's error handler). */
  clientErrorLog: LogBudget;
}

const TIMED_OUT: unique symbol = Symbol('timed out');

function ignore(): void {}

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

function isDecision(value: unknown): value is Decision {
  return typeof value === 'object' && value !== null && typeof (value as Decision).allowed === 'boolean';
}

function outcomeOf(decision: Decision): AdmissionOutcome {
  if (!decision.allowed) return 'denied';
  return decision.patch && decision.patch.length > 0 ? 'patched' : 'allowed';
}

function errorAnswer(status: number, message: string): Answer {
  return { status, body: `{"error":${JSON.stringify(message)}}` };
}

// The envelope around every response, written once; only the response object is serialised per request.
const REVIEW_HEAD = '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":';

/** Milliseconds since `startedAt` (a performance.now() reading), as fastify's reply.elapsedTime. */
function since(startedAt: number): number {
  return performance.now() - startedAt;
}

type RawRequest = IncomingMessage | Http2ServerRequest;
type RawResponse = ServerResponse | Http2ServerResponse;

/** The content types the fast path reads; any other (or none) is left to fastify's parser and its 415. */
const PLAIN_JSON = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8']);

const JSON_HEADERS_TYPE = 'application/json; charset=utf-8';

/** Where an answer goes: a compatibility-layer response (HTTP/1.1) or an HTTP/2 stream. */
interface Reply {
  /** Nobody is left to answer (the client reset the stream or closed the connection, or it was answered). */
  readonly gone: boolean;
  readonly headersSent: boolean;
  send(answer: Answer, closeAfter: boolean): void;
  /** Gives up on the request (its client went away). */
  destroy(): void;
}

class CompatReply implements Reply {
  constructor(
    private readonly req: RawRequest,
    private readonly res: RawResponse,
    private readonly routes: { readonly closing: boolean },
  ) {}

  get gone(): boolean {
    return this.res.destroyed || this.res.writableEnded || (this.req as Http2ServerRequest).stream?.destroyed === true;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  send(answer: Answer, closeAfter: boolean): void {
    const headers: Record<string, string | number> = { 'content-type': JSON_HEADERS_TYPE, 'content-length': Buffer.byteLength(answer.body) };
    if ((closeAfter || this.routes.closing) && (this.res as ServerResponse).req?.httpVersionMajor === 1) headers.connection = 'close';
    (this.res as ServerResponse).writeHead(answer.status, headers);
    this.res.end(answer.body);
  }

  destroy(): void {
    if (!this.res.destroyed) this.res.destroy();
  }
}

class StreamReply implements Reply {
  constructor(private readonly stream: ServerHttp2Stream) {}

  get gone(): boolean {
    return this.stream.destroyed || this.stream.closed || this.stream.headersSent;
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  send(answer: Answer): void {
    // HTTP/2 has no "Connection: close": the stream ends with the answer, the connection stays.
    if (this.gone) return;
    // Node adds the Date header, as it does for the compatibility layer. Ended as that layer ends
    // a response: the body, then empty trailers once node asks for them. Ended with the body
    // alone, the stream often closed while its last write was still in flight, and node then built
    // an ERR_STREAM_DESTROYED (a stack trace) per request, thrown away: a few µs each
    // (docs/benchmarks.md).
    this.stream.once('wantTrailers', this.endTrailers);
    this.stream.respond(
      { ':status': answer.status, 'content-type': JSON_HEADERS_TYPE, 'content-length': Buffer.byteLength(answer.body) },
      { waitForTrailers: true },
    );
    this.stream.end(answer.body);
  }

  private readonly endTrailers = (): void => {
    if (!this.stream.destroyed) this.stream.sendTrailers({});
  };

  destroy(): void {
    if (!this.stream.destroyed) this.stream.destroy();
  }
}

export class AdmissionRoutes {
  private readonly byPath: Map<string, AdmissionHandler>;
  /** Set when the server starts draining: HTTP/1.1 answers then carry "Connection: close" (as fastify's do). */
  closing = false;

  /** The decision line, as `logger.info(line, 'admission decision')` writes it (logger.ts lineWriter). */
  private readonly decisionLine: (fields: LineFields) => void;

  constructor(private readonly options: AdmissionRoutesOptions) {
    this.decisionLine = lineWriter(options.logger, 'admission decision');
    this.byPath = new Map(options.handlers.map((route) => [route.path, route.handler]));
  }

  /** The webhook (handler name) served at this route pattern, if any. */
  webhookAt(path: string | undefined): string | undefined {
    return path === undefined ? undefined : this.byPath.get(path)?.name;
  }

  /** Counts a request whose client went away before it was read (cmg_admission_requests_aborted_total). */
  countAborted(webhook: string | undefined): void {
    this.options.metrics.admissionAborted.inc({ webhook: webhook ?? 'none' });
  }

  /** Counts an answered request (cmg_admission_requests_total, the duration histogram). */
  observe(webhook: string, startedAt: number, operation: string, decision: AdmissionOutcome): void {
    this.options.metrics.observeAdmission({ webhook, operation, decision }, since(startedAt) / 1000);
  }

  /** The webhook handler for a POST to `url` (a query allowed) with a plain JSON content type; undefined: not the fast path's. */
  private route(method: string | undefined, url: string | undefined, contentType: string | undefined): { path: string; handler: AdmissionHandler } | undefined {
    if (method !== 'POST' || url === undefined) return undefined;
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    const handler = this.byPath.get(path);
    if (handler === undefined || contentType === undefined || !PLAIN_JSON.has(contentType)) return undefined;
    return { path, handler };
  }

  /**
   * Serves the request here if it is the common case (POST, a webhook path, a plain JSON
   * content type) and returns true; returns false, touching nothing, for fastify to route it.
   * HTTP/1.1 requests come this way; HTTP/2 ones through serveStream.
   */
  serveRaw(req: RawRequest, res: RawResponse): boolean {
    const found = this.route(req.method, req.url, req.headers['content-type']);
    if (found === undefined) return false;
    this.readBody(found.path, found.handler, req, req.headers['content-length'], new CompatReply(req, res, this), performance.now());
    return true;
  }

  /**
   * The same for an HTTP/2 stream, before node's compatibility layer makes a request and a
   * response object of it (eleven listeners on the stream and two objects per request, which cost
   * more CPU per admission than the decision: docs/benchmarks.md). Returns false, touching
   * nothing, for everything else, which then goes through the compatibility layer to fastify.
   */
  serveStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean {
    // "Expect: 100-continue" needs the interim response the compatibility layer sends.
    if (headers.expect !== undefined) return false;
    const found = this.route(headers[':method'], headers[':path'], headers['content-type']);
    if (found === undefined) return false;
    this.readBody(found.path, found.handler, stream, headers['content-length'], new StreamReply(stream), performance.now());
    return true;
  }

  /** Reads the body as fastify's parser would (limit, Content-Length check, aborts), then answers. */
  private readBody(path: string, handler: AdmissionHandler, source: Readable, contentLength: string | undefined, reply: Reply, startedAt: number): void {
    const declared = Number(contentLength);
    if (declared > MAX_BODY_BYTES) {
      // Answered without reading, but the source still needs an 'error' listener: an HTTP/2 stream
      // the client resets (or that ends short of its Content-Length) emits one, which uncaught
      // would end the process.
      source.on('error', ignore);
      this.bodyProblem(path, handler.name, reply, startedAt, 413, BODY_MESSAGES.tooLarge);
      return;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    let done = false;
    const finish = (): void => {
      done = true;
      source.removeListener('data', onData);
      source.removeListener('end', onEnd);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > MAX_BODY_BYTES) {
        finish();
        this.bodyProblem(path, handler.name, reply, startedAt, 413, BODY_MESSAGES.tooLarge);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      finish();
      if (!Number.isNaN(declared) && received !== declared) {
        this.bodyProblem(path, handler.name, reply, startedAt, 400, BODY_MESSAGES.lengthMismatch);
        return;
      }
      const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, received).toString('utf8');
      let body: unknown;
      try {
        body = parseJsonBody(text);
      } catch (err) {
        this.bodyProblem(path, handler.name, reply, startedAt, 400, (err as Error).message);
        return;
      }
      // answer() turns every handler outcome into an Answer; what escapes it anyway (a logger or a
      // serialiser throwing) is answered 500 as fastify's error handler does, never a crash.
      const unhandled = (err: unknown): void => this.unhandled(path, handler.name, reply, startedAt, err);
      try {
        const answer = this.answer(path, handler, body, startedAt);
        if (isThenable(answer)) answer.then((a) => this.send(reply, a)).catch(unhandled);
        else this.send(reply, answer);
      } catch (err) {
        unhandled(err);
      }
    };
    // A stream reset or a closed connection before the body was read: nobody is left to answer,
    // and it is not a bad request; counted, and logged at info within the client-error budget.
    // The 'error' listener stays for the stream's life (an HTTP/2 stream may report an error after
    // its body was read; without a listener that would be an uncaught exception).
    const onGone = (): void => {
      if (done) return;
      finish();
      this.countAborted(handler.name);
      if (this.options.clientErrorLog.take())
        this.options.logger.info({ url: path, latencyMs: since(startedAt) }, 'client went away before its request was read');
      reply.destroy();
    };
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onGone);
    source.once('close', onGone);
  }

  /** A 4xx about the body, answered and logged as fastify's error handler does. */
  private bodyProblem(path: string, webhook: string, reply: Reply, startedAt: number, status: number, problem: string): void {
    if (this.options.clientErrorLog.take()) this.options.logger.warn({ status, problem, url: path }, 'bad request');
    this.observe(webhook, startedAt, 'unknown', 'bad_request');
    // The client may still be sending: an HTTP/1.1 connection is closed after the answer (fastify does the same).
    reply.send(errorAnswer(status, problem), true);
  }

  private unhandled(path: string, webhook: string, reply: Reply, startedAt: number, err: unknown): void {
    this.options.logger.error({ err, url: path }, 'unhandled error');
    this.observe(webhook, startedAt, 'unknown', 'error');
    if (!reply.headersSent && !reply.gone) reply.send(errorAnswer(500, 'internal error; see the webhook logs'), false);
  }

  private send(reply: Reply, answer: Answer): void {
    // A client that hung up while its request was being decided: nothing to send, not an error.
    if (reply.gone) return;
    reply.send(answer, false);
  }

  /**
   * The answer to a parsed body: the envelope checked, the handler run (within the deadline when
   * it is pending), one decision line logged, the metrics counted. Synchronous when the handler is.
   */
  answer(path: string, handler: AdmissionHandler, body: unknown, startedAt: number): Answer | Promise<Answer> {
    const { logger: log, clientErrorLog } = this.options;
    let review: AdmissionRequest;
    try {
      review = parseReview(body);
    } catch (err) {
      if (!(err instanceof BadReview)) throw err;
      if (clientErrorLog.take()) log.warn({ webhook: handler.name, status: err.statusCode, problem: err.message }, 'bad admission review');
      this.observe(handler.name, startedAt, 'unknown', 'bad_request');
      return errorAnswer(err.statusCode, err.message);
    }
    let pending: Decision | Promise<Decision>;
    try {
      pending = handler.handle(review);
    } catch (err) {
      return this.failed(handler, review, startedAt, err);
    }
    // A decision from the caches comes back synchronously; only a pending one (an API read) gets
    // the deadline, so the common path arms no timer.
    if (!isThenable(pending)) return this.decided(handler, review, startedAt, pending);
    return withinDeadline(pending, this.options.handlerMs).then(
      (result) => {
        if (result !== TIMED_OUT) return this.decided(handler, review, startedAt, result);
        // Answered 503 now (the API server applies the failurePolicy); whatever comes later is dropped.
        pending.then(
          () => log.warn({ ...this.fields(handler, review), latencyMs: since(startedAt) }, 'admission decision arrived after the handler timeout; dropped'),
          (err: unknown) =>
            log.warn({ ...this.fields(handler, review), err, latencyMs: since(startedAt) }, 'admission handler failed after the handler timeout'),
        );
        log.error({ ...this.fields(handler, review), url: path, latencyMs: since(startedAt) }, 'handler timed out');
        this.observe(handler.name, startedAt, review.operation, 'error');
        return errorAnswer(503, 'the webhook did not decide in time');
      },
      (err: unknown) => this.failed(handler, review, startedAt, err),
    );
  }

  /** The fields every line about this request carries, first in each (the decision line adds its own after them). */
  private fields(handler: AdmissionHandler, review: AdmissionRequest): LineFields {
    return {
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
  }

  private decided(handler: AdmissionHandler, review: AdmissionRequest, startedAt: number, result: unknown): Answer {
    if (!isDecision(result)) {
      return this.failed(handler, review, startedAt, new TypeError(`handler ${handler.name} returned ${typeof result}, not a Decision`));
    }
    const decision = result;
    // Serialised first: a decision that cannot be sent is not logged or counted as one.
    const body = `${REVIEW_HEAD}${JSON.stringify(toResponse(review.uid, decision))}}`;
    const outcome = outcomeOf(decision);
    const latencyMs = since(startedAt);
    // One object, added to in the line's key order, no spreads: the audit trail, one line per admission.
    // Values straight from the parsed review (validated strings, or whatever JSON the client sent
    // where it is not validated): JSON values, which the line writer renders as pino would.
    const line = this.fields(handler, review);
    line.node = decision.node;
    line.decision = outcome;
    line.reason = decision.reason;
    if (decision.mode) line.mode = decision.mode;
    if (decision.wouldBe) line.wouldBe = decision.wouldBe;
    line.latencyMs = Math.round(latencyMs * 1000) / 1000;
    this.decisionLine(line);
    this.options.metrics.decisions.inc({
      webhook: handler.name,
      mode: decision.mode ?? 'none',
      decision: decision.wouldBe ? (decision.wouldBe === 'denied' ? 'would-deny' : 'would-patch') : outcome,
      reason: decision.reason,
    });
    this.options.metrics.observeAdmission({ webhook: handler.name, operation: review.operation, decision: outcome }, latencyMs / 1000);
    return { status: 200, body };
  }

  private failed(handler: AdmissionHandler, review: AdmissionRequest, startedAt: number, err: unknown): Answer {
    const { logger: log, clientErrorLog } = this.options;
    // A request this webhook does not serve (wrong resource or operation) is the caller's
    // mistake: a 4xx that names it, like a malformed envelope.
    if (err instanceof BadReview) {
      if (clientErrorLog.take())
        log.warn({ ...this.fields(handler, review), status: err.statusCode, problem: err.message }, 'admission request not served by this webhook');
      this.observe(handler.name, startedAt, review.operation, 'bad_request');
      return errorAnswer(err.statusCode, err.message);
    }
    // A handler failure is ours, not the request's: answer 500 so the API server applies the
    // webhook's failurePolicy (Fail → the request is refused with "failed calling webhook";
    // Ignore → it goes through). An `allowed: false` review here would instead deny regardless
    // of the policy the operator chose. The uid is in the log line, the stack only in the log.
    log.error({ ...this.fields(handler, review), err, latencyMs: since(startedAt) }, 'admission handler failed');
    this.observe(handler.name, startedAt, review.operation, 'error');
    return errorAnswer(500, `webhook ${handler.name} failed internally (request uid ${review.uid}); see its logs`);
  }
}
