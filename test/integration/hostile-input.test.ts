// Hostile and malformed input against the real server with the real webhooks (the example snapshot
// the quick start serves): every answer is a clear 4xx or a decision, never a 500, never an
// error-level log line or a `decision="error"` count for what is the client's doing.

import type { ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allowed } from '../../src/admission/decision.js';
import { Metrics } from '../../src/metrics.js';
import type { ServerHandle } from '../../src/server/start.js';
import { daemonSet, pod } from '../support/fixtures.js';
import { bindingRequest, daemonSetRequest, podRequest, review } from '../support/reviews.js';
import { capturingLogger, eventually, h2Request, h2Session } from '../support/https-client.js';
import { startExampleServer, type ExampleServer } from '../support/example-server.js';

let example: ExampleServer;
let caPem: string;
let server: ServerHandle;
let session: ClientHttp2Session;
const metrics = new Metrics({ defaultMetrics: false });
const { logger, lines, raw } = capturingLogger();

beforeAll(async () => {
  example = await startExampleServer({
    logger,
    metrics,
    // Decides after 300 ms: time for a client to hang up while its request is being decided.
    handlers: [{ path: '/slow', handler: { name: 'slow', handle: () => new Promise((resolve) => setTimeout(() => resolve(allowed('slow')), 300)) } }],
  });
  ({ server, caPem } = example);
  session = await h2Session(server.url, caPem);
});

afterAll(async () => {
  session?.close();
  await example?.close();
});

const errorLines = () => lines.filter((line) => line.level === 'error' || line.level === 'fatal');
async function errorCount(): Promise<number> {
  const metric = await metrics.admissionRequests.get();
  return metric.values.filter((v) => v.labels.decision === 'error').reduce((sum, v) => sum + v.value, 0);
}

/** Every path to a value inside `value` (objects and arrays included, the root excluded). */
function paths(value: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  if (value === null || typeof value !== 'object') return [];
  const out: Array<Array<string | number>> = [];
  for (const [key, child] of Object.entries(value)) {
    const path = [...prefix, Array.isArray(value) ? Number(key) : key];
    out.push(path, ...paths(child, path));
  }
  return out;
}

function replaced(root: any, path: Array<string | number>, value: unknown): any {
  const copy = structuredClone(root);
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key];
  node[path.at(-1) as string | number] = value;
  return copy;
}

describe('type confusion in the object', () => {
  const CASES: Array<{ name: string; path: string; request: () => any }> = [
    ...['aws-node', 'calico-node', 'cilium', 'kube-proxy', 'netd', 'node-exporter'].map((name) => ({
      name: `DaemonSet ${name}`,
      path: '/mutate/daemonsets',
      request: () => daemonSetRequest(daemonSet(name)),
    })),
    ...['nginx-pod', 'cilium-agent-pod', 'kube-proxy-mirror-pod'].map((name) => ({
      name: `Pod ${name}`,
      path: '/validate/pods',
      request: () => {
        const p = pod(name);
        p.spec.nodeName = 'node-cilium-pending';
        return podRequest(p);
      },
    })),
    { name: 'Binding', path: '/validate/pods', request: () => bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-pending') },
  ];
  const WRONG: unknown[] = [{}, [], 7, true, null, 'x'];

  it('every field of every object replaced by a value of another type: 200 or 4xx, never 500', async () => {
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let cases = 0;
    for (const c of CASES) {
      const base = c.request();
      for (const path of paths(base.object)) {
        for (const wrong of WRONG) {
          const request = { ...base, object: replaced(base.object, path, wrong) };
          const res = await server.app.inject({ method: 'POST', url: c.path, payload: review(request) });
          cases += 1;
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          if (res.statusCode >= 500) failures.push(`${c.name} ${path.join('.')}=${JSON.stringify(wrong)}: ${res.statusCode} ${res.body}`);
        }
      }
    }
    console.log(`type confusion in the object: ${cases} cases, by status ${JSON.stringify(Object.fromEntries(statuses))}`);
    expect(failures.slice(0, 20)).toEqual([]);
    expect(errorLines()).toEqual([]);
    expect(await errorCount()).toBe(0);
  }, 120_000);

  it('every field of the request envelope (object aside) replaced by a value of another type: 200 or 4xx, never 500', async () => {
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let cases = 0;
    for (const c of CASES) {
      const base = c.request();
      const { object, ...envelope } = base;
      for (const path of paths(envelope)) {
        for (const wrong of WRONG) {
          const request = { ...replaced(envelope, path, wrong), object };
          const res = await server.app.inject({ method: 'POST', url: c.path, payload: review(request) });
          cases += 1;
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          if (res.statusCode >= 500) failures.push(`${c.name} request.${path.join('.')}=${JSON.stringify(wrong)}: ${res.statusCode} ${res.body}`);
        }
      }
    }
    console.log(`type confusion in the envelope: ${cases} cases, by status ${JSON.stringify(Object.fromEntries(statuses))}`);
    expect(failures.slice(0, 20)).toEqual([]);
    expect(errorLines()).toEqual([]);
    expect(await errorCount()).toBe(0);
  }, 120_000);
});

/** POST over HTTP/1.1 with exactly these headers (no content-type unless given). */
function http1Post(path: string, body: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${server.url}${path}`, { method: 'POST', ca: caPem, headers, agent: false, timeout: 5_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

describe('clear answers', () => {
  const body = JSON.stringify(review(podRequest(pod('nginx-pod'))));

  it('a review with no content-type gets 415 naming the missing header, over HTTP/2 and HTTP/1.1', async () => {
    const h2 = await h2Request(session, { path: '/validate/pods', method: 'POST', body });
    expect(h2.status).toBe(415);
    expect(JSON.parse(h2.body).error).toBe('no Content-Type header: send the AdmissionReview as application/json');
    const h1 = await http1Post('/validate/pods', body, { 'content-length': String(Buffer.byteLength(body)) });
    expect(h1.status).toBe(415);
    expect(JSON.parse(h1.body).error).toBe('no Content-Type header: send the AdmissionReview as application/json');
  });

  it('__proto__ and constructor.prototype keys get a message that names them', async () => {
    const proto = '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"__proto__":{"allowed":true}}}';
    const res = await h2Request(session, { path: '/validate/pods', method: 'POST', headers: { 'content-type': 'application/json' }, body: proto });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toBe(
      'request body has a "__proto__" or "constructor.prototype" key, which is refused (prototype pollution); no Kubernetes object has one',
    );
    const ctor = '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"object":{"constructor":{"prototype":{"x":1}}}}}';
    const res2 = await h2Request(session, { path: '/validate/pods', method: 'POST', headers: { 'content-type': 'application/json' }, body: ctor });
    expect(res2.status).toBe(400);
    expect(JSON.parse(res2.body).error).toContain('"constructor.prototype"');
  });

  it("an object where a string belongs in the object's metadata is a 400 naming the field", async () => {
    const p = pod('nginx-pod');
    p.metadata.name = { injected: true };
    p.spec.nodeName = 'node-cilium-pending';
    const request = podRequest(p);
    delete (request as { name?: string }).name;
    const res = await h2Request(session, {
      path: '/validate/pods',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(review(request)),
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toBe('request.object.metadata.name must be a string');
    const ds = daemonSet('aws-node');
    ds.metadata.labels = { 'k8s-app': ['aws-node'] };
    const res2 = await h2Request(session, {
      path: '/mutate/daemonsets',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(review(daemonSetRequest(ds))),
    });
    expect(res2.status).toBe(400);
    expect(JSON.parse(res2.body).error).toBe('request.object.metadata.labels["k8s-app"] must be a string');
  });

  it('a client that stops mid-upload is neither an error in the log nor decision="error", and no "Reply was already sent"', async () => {
    const before = lines.length;
    const full = JSON.stringify(review(podRequest(pod('nginx-pod'))));
    // HTTP/2: headers announce the full length, half the body, then the stream is reset.
    for (let i = 0; i < 5; i++) {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/validate/pods',
        'content-type': 'application/json',
        'content-length': String(full.length),
      });
      stream.on('error', () => {});
      stream.write(full.slice(0, full.length / 2));
      await new Promise((resolve) => setTimeout(resolve, 30));
      stream.close(8 /* NGHTTP2_CANCEL */);
    }
    // HTTP/1.1: the same, then the connection is closed.
    for (let i = 0; i < 5; i++) {
      const socket = tlsConnect({ host: '127.0.0.1', port: server.port, ca: caPem, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('secureConnect', resolve));
      socket.write(
        `POST /validate/pods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${full.length}\r\n\r\n${full.slice(0, 100)}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 30));
      socket.destroy();
    }
    const abortedSeen = await eventually(async () => (await metrics.admissionAborted.get()).values.reduce((s, v) => s + v.value, 0) >= 10, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = lines.slice(before);
    expect(abortedSeen).toBe(true);
    expect(after.filter((line) => line.level === 'error' || line.level === 'fatal')).toEqual([]);
    expect(raw.slice(before).some((line) => line.includes('Reply was already sent'))).toBe(false);
    expect(await errorCount()).toBe(0);
    // A client that hangs up while its (complete) request is being decided: the late answer has
    // nowhere to go, which is not an error either.
    const beforeSlow = lines.length;
    for (let i = 0; i < 3; i++) {
      const stream = session.request({ ':method': 'POST', ':path': '/slow', 'content-type': 'application/json' });
      stream.on('error', () => {});
      stream.end(full);
      await new Promise((resolve) => setTimeout(resolve, 50));
      stream.close(8 /* NGHTTP2_CANCEL */);
    }
    const socket = tlsConnect({ host: '127.0.0.1', port: server.port, ca: caPem, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    socket.write(`POST /slow HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${full.length}\r\n\r\n${full}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 600));
    const slowLines = raw.slice(beforeSlow);
    expect(slowLines.filter((line) => /"level":"(error|fatal)"/.test(line))).toEqual([]);
    expect(slowLines.some((line) => line.includes('Reply was already sent'))).toBe(false);
    expect(await errorCount()).toBe(0);

    // The server still answers on the same HTTP/2 session.
    const ok = await h2Request(session, { path: '/validate/pods', method: 'POST', headers: { 'content-type': 'application/json' }, body: full });
    expect(ok.status).toBe(200);
  });
});
