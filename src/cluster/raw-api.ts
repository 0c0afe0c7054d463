// List and watch requests as raw JSON, for the informers (informers.ts): node's own http/https
// with the kubeconfig's credentials (client-node's KubeConfig.applyToHTTPSOptions: CA, client
// certificate, token, exec/OIDC plugins, proxy agent), and the answer parsed with JSON.parse and
// nothing else. client-node's typed list calls turn every object into model instances through
// its ObjectSerializer before we trim them: at 20,000 pods that was a quarter of the reaper's
// start-up CPU and most of its transient memory (docs/benchmarks.md, "Scale").
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
import type { KubeConfig } from '@kubernetes/client-node';

/** The API server answered with a status other than 200 (statusCode and code, as client-node's errors have them). */
export class ApiStatusError extends Error {
  readonly statusCode: number;
  readonly code: number;
  readonly reason: string | undefined;
  /** The answer's body (a Status, as JSON text), as client-node's ApiException keeps it. */
  readonly body: string;
  /** The Status's details.retryAfterSeconds (429 "storage is (re)initializing", priority and fairness). */
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

/**
 * client-node's agent for a direct connection (http.Agent / https.Agent, as KubeConfig.createAgent
 * makes them) does not keep connections alive: every list page would pay a TLS handshake. The
 * same options with keepAlive, one per agent (an idle kept socket is unref'd: it does not hold
 * the process). Proxy agents (subclasses) are used as they are.
 */
const keptAlive = new WeakMap<object, http.Agent>();
function keepAlive(agent: unknown): unknown {
  if (!(agent instanceof http.Agent)) return agent;
  const proto = Object.getPrototypeOf(agent) as object;
  if (proto !== http.Agent.prototype && proto !== https.Agent.prototype) return agent;
  let kept = keptAlive.get(agent);
  if (!kept) {
    const options = { ...(agent as unknown as { options: http.AgentOptions }).options, keepAlive: true };
    kept = proto === https.Agent.prototype ? new https.Agent(options) : new http.Agent(options);
    keptAlive.set(agent, kept);
  }
  return kept;
}

/** Sends a GET and resolves with the response body stream once the answer is 200; rejects otherwise. */
export async function get(kc: KubeConfig, pathAndQuery: string, options: RequestOptions): Promise<Readable> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster in the kubeconfig');
  const url = new URL(cluster.server.replace(/\/+$/, '') + pathAndQuery);
  const opts: https.RequestOptions = { method: 'GET', headers: {} };
  await kc.applyToHTTPSOptions(opts);
  opts.agent = keepAlive(opts.agent) as http.Agent;
  options.signal.throwIfAborted();
  const headers = { ...(opts.headers as Record<string, string>), Accept: 'application/json', ...(options.gzip ? { 'Accept-Encoding': 'gzip' } : {}) };
  const request = url.protocol === 'http:' ? http.request : https.request;
  return new Promise<Readable>((resolve, reject) => {
    const req = request(url, { ...opts, headers, signal: options.signal }, (res) => {
      const status = res.statusCode ?? 0;
      const body: Readable = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res;
      if (body !== res) res.on('error', (err) => body.destroy(err));
      if (status === 200) {
        resolve(body);
        return;
      }
      // An error answer: its Status (kind: Status, message, reason), read up to 64 KB.
      readAll(body, 64 * 1024)
        .then((text) => reject(statusError(status, text, url.pathname)))
        .catch(() => reject(statusError(status, '', url.pathname)));
    });
    req.on('error', reject);
    req.end();
  });
}

function statusError(status: number, text: string, path: string): ApiStatusError {
  let message = `${http.STATUS_CODES[status] ?? 'HTTP error'} (${status}) from GET ${path}`;
  let reason: string | undefined;
  let retryAfter: number | undefined;
  try {
    const parsed = JSON.parse(text) as { message?: unknown; reason?: unknown; details?: { retryAfterSeconds?: unknown } };
    if (typeof parsed.message === 'string') message = `${parsed.message} (${status})`;
    if (typeof parsed.reason === 'string') reason = parsed.reason;
    if (typeof parsed.details?.retryAfterSeconds === 'number') retryAfter = parsed.details.retryAfterSeconds;
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
  kc: KubeConfig,
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
export async function listPage(kc: KubeConfig, pathAndQuery: string, options: RequestOptions): Promise<RawList> {
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
