// liveReaperApi against a stand-in API server on 127.0.0.1: how the eviction's answers are told
// apart (audit item 7) and that the caller's AbortSignal reaches the HTTP request (item 1).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { KubeAccess } from '../../src/cluster/kube-config.js';
import { ApiStatusError } from '../../src/cluster/raw-api.js';
import { testAccess } from '../support/kube-access.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { liveReaperApi, RemovalThrottledError } from '../../src/reaper/api.js';
import { listenOnLoopback, closeNow } from '../support/loopback.js';

let server: Server;
let answer: (req: IncomingMessage, res: ServerResponse) => void;
let kc: KubeAccess;

beforeEach(async () => {
  server = createServer((req, res) => answer(req, res));
  kc = testAccess(await listenOnLoopback(server), { token: 't' });
});

afterEach(async () => {
  await closeNow(server);
});

const status = (res: ServerResponse, code: number, body: object, headers: Record<string, string> = {}) =>
  res
    .writeHead(code, { 'content-type': 'application/json', ...headers })
    .end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, ...body }));
const pre = { uid: 'u1', resourceVersion: '7' };

describe('liveReaperApi.remove (evict): what the answer means', () => {
  it('429 with a DisruptionBudget cause: blocked by a PodDisruptionBudget', async () => {
    answer = (_req, res) =>
      status(res, 429, {
        reason: 'TooManyRequests',
        message: "Cannot evict pod as it would violate the pod's disruption budget.",
        details: { causes: [{ reason: 'DisruptionBudget', message: 'The disruption budget web needs 1 healthy pods and has 1 currently' }] },
      });
    expect(await liveReaperApi(kc).remove('evict', 'default', 'a', pre)).toBe('blocked');
  });

  it('429 without it (API Priority and Fairness): throttled, with Retry-After', async () => {
    answer = (_req, res) =>
      status(
        res,
        429,
        { reason: 'TooManyRequests', message: 'Too many requests, please try again later.', details: { retryAfterSeconds: 3 } },
        { 'retry-after': '3' },
      );
    const err = await liveReaperApi(kc)
      .remove('evict', 'default', 'a', pre)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemovalThrottledError);
    expect((err as RemovalThrottledError).retryAfterMs).toBe(3_000);
  });

  it('500 (e.g. several PodDisruptionBudgets select the pod) is a failure, thrown', async () => {
    answer = (_req, res) =>
      status(res, 500, {
        reason: 'InternalError',
        message: 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.',
      });
    const err = await liveReaperApi(kc)
      .remove('evict', 'default', 'a', pre)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiStatusError);
    expect((err as ApiStatusError).code).toBe(500);
  });

  it('404 gone, 409 changed, 201 removed', async () => {
    for (const [code, want] of [
      [404, 'gone'],
      [409, 'changed'],
    ] as const) {
      answer = (_req, res) => status(res, code, { reason: 'x', message: 'x' });
      expect(await liveReaperApi(kc).remove('evict', 'default', 'a', pre)).toBe(want);
    }
    answer = (_req, res) =>
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Success' }));
    expect(await liveReaperApi(kc).remove('evict', 'default', 'a', pre)).toBe('removed');
  });
});

describe('liveReaperApi: the caller’s signal aborts the request', () => {
  it('aborts a hanging re-read when the pass is aborted', async () => {
    answer = () => {}; // never answers
    const abort = new AbortController();
    const started = Date.now();
    const pending = liveReaperApi(kc).readPod('default', 'a', { signal: abort.signal, timeoutMs: 10_000 });
    setTimeout(() => abort.abort(new Error('leadership lost')), 50);
    await expect(pending).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('aborts a hanging removal at its deadline', async () => {
    answer = () => {};
    const started = Date.now();
    await expect(liveReaperApi(kc).remove('evict', 'default', 'a', pre, { timeoutMs: 100 })).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
