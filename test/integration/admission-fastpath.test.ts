// The admission POSTs are answered in front of fastify (src/server/admission-route.ts) when they
// are the common case (plain application/json), and by fastify's routes otherwise. Both must give
// the same answer, byte for byte, the same metrics and the same log lines: here every kind of
// body goes through both, over HTTP/2 and HTTP/1.1. "application/json; charset=UTF-8" is a JSON
// content type the fast path leaves to fastify (only exact forms are taken), so it picks the path.

import type { ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics.js';
import { AdmissionRoutes } from '../../src/server/admission-route.js';
import { LogBudget } from '../../src/server/log-budget.js';
import type { ServerHandle } from '../../src/server/start.js';
import { daemonSet, pod } from '../support/fixtures.js';
import { bindingRequest, daemonSetRequest, podRequest, review } from '../support/reviews.js';
import { capturingLogger, h2Request, h2Session } from '../support/https-client.js';
import { startExampleServer, type ExampleServer } from '../support/example-server.js';

let example: ExampleServer;
let caPem: string;
let server: ServerHandle;
let session: ClientHttp2Session;
const metrics = new Metrics({ defaultMetrics: false });
const { logger, lines } = capturingLogger();

const FAST = 'application/json';
const FASTIFY = 'application/json; charset=UTF-8';

beforeAll(async () => {
  example = await startExampleServer({
    logger,
    metrics,
    handlers: [
      { path: '/throws', handler: { name: 'throws', handle: () => Promise.reject(new Error('boom')) } },
      // A decision that cannot be serialised: what escapes answer() is a 500, never a crash.
      {
        path: '/bad-decision',
        handler: {
          name: 'bad-decision',
          handle: () => ({
            allowed: true,
            reason: 'x',
            get audit(): Record<string, string> {
              throw new Error('unserialisable');
            },
          }),
        },
      },
    ],
  });
  ({ server, caPem } = example);
  session = await h2Session(server.url, caPem);
});

afterAll(async () => {
  session?.close();
  await example?.close();
});

function http1Post(path: string, body: string, contentType: string): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${server.url}${path}`,
      { method: 'POST', ca: caPem, headers: { 'content-type': contentType }, agent: false, timeout: 5_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), connection: res.headers.connection }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const nginx = pod('nginx-pod');
nginx.spec.nodeName = 'node-cilium-pending';
const ds = daemonSet('aws-node');
const BODIES: Array<{ name: string; path: string; body: string; status: number }> = [
  {
    name: 'a binding (denied)',
    path: '/validate/pods',
    body: JSON.stringify(review(bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-pending'))),
    status: 200,
  },
  { name: 'a pod CREATE with nodeName', path: '/validate/pods', body: JSON.stringify(review(podRequest(nginx))), status: 200 },
  {
    name: 'a DaemonSet to patch (with a query, as the API server sends)',
    path: '/mutate/daemonsets?timeout=10s',
    body: JSON.stringify(review(daemonSetRequest(ds))),
    status: 200,
  },
  { name: 'malformed JSON', path: '/validate/pods', body: '{"apiVersion": "admission.k8s.io/v1", ', status: 400 },
  { name: 'an empty body', path: '/validate/pods', body: '', status: 400 },
  {
    name: 'a __proto__ key',
    path: '/validate/pods',
    body: '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"__proto__":{"x":1}}}',
    status: 400,
  },
  { name: 'a \\u-escaped __proto__ key', path: '/validate/pods', body: '{"a":{"\\u005f_proto__":{"x":1}}}', status: 400 },
  { name: 'a constructor.prototype key', path: '/validate/pods', body: '{"a":[{"constructor":{"prototype":{"x":1}}}]}', status: 400 },
  {
    name: 'a "constructor" that is harmless',
    path: '/validate/pods',
    body: '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"constructor":"x"}}',
    status: 400,
  },
  {
    name: 'a wrong apiVersion',
    path: '/validate/pods',
    body: JSON.stringify({ ...review(bindingRequest('default', 'p', 'n')), apiVersion: 'admission.k8s.io/v1beta1' }),
    status: 400,
  },
  {
    name: 'a wrongly typed metadata field',
    path: '/mutate/daemonsets',
    body: JSON.stringify(review(daemonSetRequest({ ...ds, metadata: { ...ds.metadata, name: 7 } } as never))),
    status: 400,
  },
  { name: 'a resource the webhook does not serve', path: '/mutate/daemonsets', body: JSON.stringify(review(bindingRequest('default', 'p', 'n'))), status: 400 },
  { name: 'a handler that fails', path: '/throws', body: JSON.stringify(review(bindingRequest('default', 'p', 'n'))), status: 500 },
  { name: 'a decision that cannot be serialised', path: '/bad-decision', body: JSON.stringify(review(bindingRequest('default', 'p', 'n'))), status: 500 },
  { name: 'a body over 7 MiB', path: '/validate/pods', body: `{"x":"${'a'.repeat(7 * 1024 * 1024)}"}`, status: 413 },
];

/** The answer with the request's uid-free parts only (every body here is the same both times). */
const normalise = (text: string) => text.replace(/"latencyMs":[0-9.e-]+/g, '');

describe('the fast path and fastify answer alike', () => {
  it.each(BODIES)('$name: $status, the same body over HTTP/2 and HTTP/1.1 and the same log lines both ways', async ({ path, body, status }) => {
    const answers = [];
    for (const contentType of [FAST, FASTIFY]) {
      const before = lines.length;
      const h2 = await h2Request(session, { path, headers: { 'content-type': contentType }, body });
      const h1 = await http1Post(path, body, contentType);
      // The time, the latency and an error's stack (which names the path's own frames) differ by nature.
      const logged = lines
        .slice(before)
        .map(({ time: _time, latencyMs: _latency, err, ...rest }) => ({ ...rest, err: (err as { message?: string } | undefined)?.message }));
      answers.push({
        // The HTTP/2 fast path answers on the stream itself; the headers are the compatibility layer's.
        h2: {
          status: h2.status,
          type: h2.headers['content-type'],
          length: h2.headers['content-length'],
          date: typeof h2.headers.date,
          body: normalise(h2.body),
        },
        h1: { status: h1.status, body: normalise(h1.body) },
        logged,
      });
      // After a body fastify could not parse, HTTP/1.1 says "Connection: close" (the client may still be sending).
      if (h1.status === 413 || (h1.status === 400 && /JSON|body|proto/.test(h1.body))) expect(h1.connection).toBe('close');
    }
    expect(answers[0]).toEqual(answers[1]);
    expect(answers[0]!.h2.type).toBe('application/json; charset=utf-8');
    expect(answers[0]!.h2.date).toBe('string');
    expect(answers[0]!.h2.status).toBe(status);
    expect(answers[0]!.h1.status).toBe(status);
  });

  it('counts both paths alike in cmg_admission_requests_total', async () => {
    const counts = async () => (await metrics.admissionRequests.get()).values.map((v) => `${JSON.stringify(v.labels)} ${v.value}`);
    const body = JSON.stringify(review(bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-pending')));
    const before = await counts();
    await h2Request(session, { path: '/validate/pods', headers: { 'content-type': FAST }, body });
    await h2Request(session, { path: '/validate/pods', headers: { 'content-type': FAST }, body: '{' });
    const afterFast = await counts();
    await h2Request(session, { path: '/validate/pods', headers: { 'content-type': FASTIFY }, body });
    await h2Request(session, { path: '/validate/pods', headers: { 'content-type': FASTIFY }, body: '{' });
    const afterBoth = await counts();
    const delta = (a: string[], b: string[]) =>
      b.map((line) => {
        const [labels, value] = [line.slice(0, line.lastIndexOf(' ')), Number(line.slice(line.lastIndexOf(' ') + 1))];
        const old = a.find((l) => l.startsWith(`${labels} `));
        return `${labels} ${value - (old ? Number(old.slice(old.lastIndexOf(' ') + 1)) : 0)}`;
      });
    const fast = delta(before, afterFast).filter((l) => !l.endsWith(' 0'));
    const slow = delta(afterFast, afterBoth).filter((l) => !l.endsWith(' 0'));
    expect(fast).toEqual(slow);
    expect(fast).toHaveLength(2);
  });
});

describe('which requests the fast path takes', () => {
  const routes = new AdmissionRoutes({
    handlers: [{ path: '/validate/pods', handler: { name: 'x', handle: () => ({ allowed: true, reason: 'x' }) } }],
    metrics: new Metrics({ defaultMetrics: false }),
    logger,
    handlerMs: 1_000,
    clientErrorLog: new LogBudget(logger),
  });
  const take = (method: string, url: string, contentType?: string) => {
    // Only the routing decision is looked at: a request it takes would be read, so it is not taken here.
    let reads = 0;
    const req = { method, url, headers: contentType === undefined ? {} : { 'content-type': contentType }, on: () => reads++, once: () => reads++ };
    const res = { writeHead: () => undefined, end: () => undefined };
    return routes.serveRaw(req as never, res as never);
  };
  it('POST to a webhook path with plain application/json, with or without a query: here', () => {
    expect(take('POST', '/validate/pods', 'application/json')).toBe(true);
    expect(take('POST', '/validate/pods?timeout=10s', 'application/json')).toBe(true);
    expect(take('POST', '/validate/pods', 'application/json; charset=utf-8')).toBe(true);
  });
  const takeStream = (headers: Record<string, string>) => {
    let reads = 0;
    const stream = { on: () => reads++, once: () => reads++ };
    return routes.serveStream(stream as never, headers);
  };
  it('an HTTP/2 stream: the same choice from its pseudo-headers; "Expect: 100-continue" is left to the compatibility layer', () => {
    expect(takeStream({ ':method': 'POST', ':path': '/validate/pods?timeout=10s', 'content-type': 'application/json' })).toBe(true);
    expect(takeStream({ ':method': 'GET', ':path': '/validate/pods', 'content-type': 'application/json' })).toBe(false);
    expect(takeStream({ ':method': 'POST', ':path': '/validate/pods', 'content-type': 'text/plain' })).toBe(false);
    expect(takeStream({ ':method': 'POST', ':path': '/validate/pods' })).toBe(false);
    expect(takeStream({ ':method': 'POST', ':path': '/validate/pods', 'content-type': 'application/json', expect: '100-continue' })).toBe(false);
  });
  it('anything else: left to fastify', () => {
    expect(take('GET', '/validate/pods', 'application/json')).toBe(false);
    expect(take('POST', '/validate/pods')).toBe(false);
    expect(take('POST', '/validate/pods', 'text/plain')).toBe(false);
    expect(take('POST', '/validate/pods', 'application/json; charset=UTF-8')).toBe(false);
    expect(take('POST', '/validate/pods/', 'application/json')).toBe(false);
    expect(take('POST', '/healthz', 'application/json')).toBe(false);
  });
});
