// Requests to the API server as raw JSON: lists and watches for the informers (informers.ts), and
// one JSON call (request()) for every get, create, replace, patch and delete the rest makes. Node's
// own http/https with the credentials of kube-config.ts (KubeAccess: CA, client certificate,
// token, a rotating token file; client-node only for exec/auth-provider users), and the answer
// parsed with JSON.parse and nothing else. client-node's typed list calls turn every object into
// model instances through its ObjectSerializer before we trim them: at 20,000 pods that was a
// quarter of the reaper's start-up CPU and most of its transient memory; and importing client-node
// at all costs ~50 MB of RSS (docs/benchmarks.md, "Scale").
//
// Facts this follows (kube-apiserver, as client-go's reflector and client-node's ListWatch use it):
// - A list is paged with `limit` and `continue`; the last page carries the list's resourceVersion.
//   A `continue` token can expire (410 Gone): the list then starts over from the first page.
// - A watch (`watch=true&resourceVersion=RV`) answers 200 and then one JSON event per line:
//   {"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":{...}}. An ERROR event carries
//   a Status; code 410 means RV is too old (compacted): relist. With allowWatchBookmarks=true the
//   server sends BOOKMARK events (an object with only metadata.resourceVersion) so a quiet watch
//   can resume from a recent RV; `timeoutSeconds` makes the server end the watch cleanly after it.
// - We ask for application/json only (no protobuf, which we would have to decode) and send no
//   Accept-Encoding unless compression is asked for: node's http does not add one, and the API
//   server compresses only when asked (measured in docs/benchmarks.md).

import http from 'node:http';
import https from 'node:https';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import type { KubeAccess } from './kube-config.js';

/** The API server answered with a status other than 2xx (statusCode and code, as client-node's errors have them). */
export class ApiStatusError extends Error {
  readonly statusCode: number;
  readonly code: number;
  readonly reason: string | undefined;
  /** The answer's body (a Status, as JSON text), as client-node's ApiException keeps it. */
  readonly body: string;
  /** The Retry-After header, else the Status's details.retryAfterSeconds (429 "storage is (re)initializing", priority and fairness). */
  readonly retryAfterSeconds: number | undefined;
  constructor(status: number, message: string, reason: string | undefined, body: string, retryAfterSeconds?: number) {
    super(message);
    this.name = 'ApiStatusError';
    this.statusCode = status;
    this.code = status;
    this.reason = reason;
    this.body = body;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export type RawObject = { metadata?: { name?: unknown; namespace?: unknown; resourceVersion?: unknown }; [key: string]: unknown };

export interface RawList {
  items: RawObject[];
  resourceVersion: string;
  continue: string | undefined;
}

export interface RequestOptions {
  signal: AbortSignal;
  /** Send Accept-Encoding: gzip and gunzip the answer. */
  gzip?: boolean;
}

export function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== '') q.set(key, String(value));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** A request's Content-Type for a write: a JSON body, or one of the API server's three patch kinds. */
export type ContentType = 'application/json' | 'application/merge-patch+json' | 'application/json-patch+json' | 'application/strategic-merge-patch+json';

interface SendOptions extends RequestOptions {
  method?: string;
  body?: unknown;
  contentType?: ContentType;
}

/** Retry-After in seconds (the integer form the API server sends), if any. */
function retryAfterHeader(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  return text !== undefined && /^\d+$/.test(text.trim()) ? Number(text) : undefined;
}

/**
 * Sends a request and resolves with the response body stream once the answer is 2xx; rejects
 * with ApiStatusError otherwise (its Status read up to 64 KB), or with the network's error.
 */
async function send(kc: KubeAccess, pathAndQuery: string, options: SendOptions): Promise<Readable> {
  const method = options.method ?? 'GET';
  const url = new URL(kc.server + pathAndQuery);
  // Getting the credentials (an exec plugin, through client-node) is bounded by the signal too.
  const prepared = await untilAborted(kc.prepare(), options.signal);
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
  const headers: Record<string, string> = {
    // Names us in the API server's audit log (node's http sends no User-Agent).
    'User-Agent': 'cilium-migration-guard',
    ...prepared.headers,
    Accept: 'application/json',
    ...(options.gzip ? { 'Accept-Encoding': 'gzip' } : {}),
    ...(payload ? { 'Content-Type': options.contentType ?? 'application/json', 'Content-Length': String(payload.length) } : {}),
  };
  const transmit = url.protocol === 'http:' ? http.request : https.request;
  return new Promise<Readable>((resolve, reject) => {
    const req = transmit(url, { method, agent: prepared.agent, headers, signal: options.signal }, (res) => {
      const status = res.statusCode ?? 0;
      const body: Readable = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res;
      if (body !== res) res.on('error', (err) => body.destroy(err));
      if (status >= 200 && status < 300) {
        resolve(body);
        return;
      }
      if (status === 401) prepared.unauthorized?.();
      const retryAfter = retryAfterHeader(res.headers['retry-after']);
      // An error answer: its Status (kind: Status, message, reason), read up to 64 KB.
      readAll(body, 64 * 1024)
        .then((text) => reject(statusError(status, text, method, url.pathname, retryAfter)))
        .catch(() => reject(statusError(status, '', method, url.pathname, retryAfter)));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** `promise`, or the signal's reason as soon as it aborts (the promise is then left to settle unobserved). */
async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => signal.addEventListener('abort', (onAbort = () => reject(signal.reason as Error)), { once: true }));
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}

/** Sends a GET and resolves with the response body stream once the answer is 2xx; rejects otherwise. */
export function get(kc: KubeAccess, pathAndQuery: string, options: RequestOptions): Promise<Readable> {
  return send(kc, pathAndQuery, options);
}

export interface JsonRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** The API path, e.g. /api/v1/namespaces/default/pods/web (segments already encoded). */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Sent as JSON. */
  body?: unknown;
  /** Defaults to application/json when there is a body. */
  contentType?: ContentType;
  /** Deadline of the whole call (credentials, connection, answer and its body). */
  timeoutMs: number;
  /** Aborts the call (e.g. leadership lost). */
  signal?: AbortSignal;
}

/**
 * One JSON call to the API server: the answer's body parsed (undefined when empty). A non-2xx
 * answer rejects with ApiStatusError; the deadline or the signal with an AbortError/TimeoutError.
 */
export async function request<T = unknown>(kc: KubeAccess, call: JsonRequest): Promise<T> {
  const timeout = AbortSignal.timeout(call.timeoutMs);
  const signal = call.signal ? AbortSignal.any([call.signal, timeout]) : timeout;
  const body = await send(kc, call.path + (call.query ? query(call.query) : ''), {
    signal,
    ...(call.method ? { method: call.method } : {}),
    ...(call.body !== undefined ? { body: call.body } : {}),
    ...(call.contentType ? { contentType: call.contentType } : {}),
  });
  let text: string;
  try {
    text = await readAll(body);
  } catch (err) {
    // Aborted while the body was arriving: node says only "aborted" (ECONNRESET); the deadline or
    // the caller's signal is the reason (TimeoutError/AbortError, as before the answer began).
    signal.throwIfAborted();
    throw err;
  }
  if (text.trim() === '') return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    // E.g. a proxy's HTML page: say which call, and what came back.
    throw new Error(`${call.method ?? 'GET'} ${call.path}: the answer is not JSON: ${text.slice(0, 200)}`, { cause: err });
  }
}

/** An API path segment (a namespace or a name), encoded. */
export const seg = (text: string): string => encodeURIComponent(text);

function statusError(status: number, text: string, method: string, path: string, retryAfterSeconds: number | undefined): ApiStatusError {
  let message = `${http.STATUS_CODES[status] ?? 'HTTP error'} (${status}) from ${method} ${path}`;
  let reason: string | undefined;
  let retryAfter = retryAfterSeconds;
  try {
    const parsed = JSON.parse(text) as { message?: unknown; reason?: unknown; details?: { retryAfterSeconds?: unknown } };
    if (typeof parsed.message === 'string') message = `${parsed.message} (${status})`;
    if (typeof parsed.reason === 'string') reason = parsed.reason;
    if (retryAfter === undefined && typeof parsed.details?.retryAfterSeconds === 'number') retryAfter = parsed.details.retryAfterSeconds;
  } catch {
    // not a Status: keep the generic message
  }
  return new ApiStatusError(status, message, reason, text, retryAfter);
}

/** The whole body as a string (utf-8); rejects past `max` bytes when given. */
export async function readAll(body: Readable, max?: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (max !== undefined && size > max) throw new Error(`answer larger than ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/**
 * Every item of a list, page by page (`limit`/`continue`, with the query given), handing each
 * page's items to `onPage` as it arrives, so a caller can keep only what it needs of each.
 * Each page has its own deadline. An expired continue token (410) is not retried here.
 */
export async function listAllPages(
  kc: KubeAccess,
  path: string,
  params: Record<string, string | undefined>,
  options: { pageSize: number; pageTimeoutMs: number; signal?: AbortSignal },
  onPage: (items: RawObject[]) => void,
): Promise<{ resourceVersion: string }> {
  let cont: string | undefined;
  let resourceVersion = '';
  do {
    const signal = options.signal ? AbortSignal.any([options.signal, AbortSignal.timeout(options.pageTimeoutMs)]) : AbortSignal.timeout(options.pageTimeoutMs);
    const page = await listPage(kc, path + query({ ...params, limit: options.pageSize, continue: cont }), { signal });
    onPage(page.items);
    resourceVersion = page.resourceVersion || resourceVersion;
    cont = page.continue;
  } while (cont !== undefined);
  return { resourceVersion };
}

/** One page of a list. */
export async function listPage(kc: KubeAccess, pathAndQuery: string, options: RequestOptions): Promise<RawList> {
  const body = await get(kc, pathAndQuery, options);
  const parsed = JSON.parse(await readAll(body)) as { items?: unknown; metadata?: { resourceVersion?: unknown; continue?: unknown } };
  const items = Array.isArray(parsed.items) ? (parsed.items as RawObject[]) : [];
  const rv = typeof parsed.metadata?.resourceVersion === 'string' ? parsed.metadata.resourceVersion : '';
  const cont = typeof parsed.metadata?.continue === 'string' && parsed.metadata.continue !== '' ? parsed.metadata.continue : undefined;
  return { items, resourceVersion: rv, continue: cont };
}

export interface WatchEvent {
  type: string;
  object: RawObject;
}

/**
 * Splits a watch body into events (one JSON document per line) and calls `onEvent` for each;
 * `onData` on every chunk (for an inactivity timeout). Resolves when the server ends the body
 * (a clean end: its timeoutSeconds, or a restart); rejects when the connection breaks first.
 * A line that is not JSON is skipped (`onBadLine`).
 */
export function readEvents(body: Readable, onEvent: (event: WatchEvent) => void, onData: () => void, onBadLine: (line: string) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    // Pieces of a line not ended yet (an object can span many chunks).
    let pending: string[] = [];
    const line = (text: string): void => {
      if (text.trim() === '') return;
      let event: WatchEvent;
      try {
        event = JSON.parse(text) as WatchEvent;
      } catch {
        onBadLine(text.slice(0, 200));
        return;
      }
      if (event && typeof event.type === 'string' && typeof event.object === 'object' && event.object !== null) onEvent(event);
      else onBadLine(text.slice(0, 200));
    };
    body.setEncoding('utf8');
    body.on('data', (chunk: string) => {
      onData();
      let start = 0;
      let newline = chunk.indexOf('\n');
      while (newline !== -1) {
        const piece = chunk.slice(start, newline);
        if (pending.length > 0) {
          pending.push(piece);
          const joined = pending.join('');
          pending = [];
          line(joined);
        } else line(piece);
        start = newline + 1;
        newline = chunk.indexOf('\n', start);
      }
      if (start < chunk.length) pending.push(chunk.slice(start));
    });
    body.on('end', () => resolve());
    body.on('error', reject);
    body.on('close', () => {
      // 'close' without 'end': the connection broke (an ended body emits 'end' first).
      if (!body.readableEnded) reject(Object.assign(new Error('watch connection closed by the server before the end of its answer'), { code: 'ECONNRESET' }));
    });
  });
}
