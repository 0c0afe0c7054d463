// The real HTTPS server (HTTP/2 + HTTP/1.1) on 127.0.0.1 with a generated CA, stub handlers,
// and both kinds of client the webhook meets: the API server (h2) and curl-like tools (HTTP/1.1).

import { mkdtemp, rm } from 'node:fs/promises';
import type { ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { denied, patched, type Decision } from '../../src/admission/decision.js';
import type { AdmissionHandler } from '../../src/admission/handler.js';
import type { AdmissionReview, JsonPatchOp } from '../../src/admission/types.js';
import { Metrics } from '../../src/metrics.js';
import { MAX_BODY_BYTES, buildApp } from '../../src/server/app.js';
import { startServer, type ServerHandle } from '../../src/server/start.js';
import { ensureServingCert } from '../../src/certs/local.js';
import { capturingLogger, h2Request, h2Session, postJson, review } from '../support/https-client.js';
import { WEBHOOK_PATHS } from '../../src/webhooks/routes.js';

const PATCH: JsonPatchOp[] = [
  { op: 'add', path: '/spec/template/spec/affinity', value: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: {} } } },
];

const patcher: AdmissionHandler = {
  name: 'patcher',
  handle: async () => ({ ...patched('affinity-added', PATCH, { warnings: ['affinity added'] }), node: 'n1' }),
};
const denier: AdmissionHandler = {
  name: 'denier',
  handle: () => ({ ...denied('cilium-not-ready', 'Cilium is not ready on node n1'), node: 'n1' }),
};
const thrower: AdmissionHandler = {
  name: 'thrower',
  handle: () => {
    throw new Error('boom: internal detail at /srv/secret/path');
  },
};

const ROUTES = [
  { path: WEBHOOK_PATHS.daemonSets, handler: patcher },
  { path: WEBHOOK_PATHS.pods, handler: denier },
  { path: '/throws', handler: thrower },
];

let dir: string;
let caPem: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cmg-server-'));
  const files = await ensureServingCert(dir);
  caPem = files.caPem ?? '';
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('admission server', () => {
  let server: ServerHandle;
  let session: ClientHttp2Session;
  let ready = false;
  const metrics = new Metrics();
  const logs = capturingLogger();

  beforeAll(async () => {
    server = await startServer({
      certDir: dir,
      port: 0,
      host: '127.0.0.1',
      logger: logs.logger,
      metrics,
      readiness: () => ({ ready, detail: { nodes: true, ciliumnodes: ready } }),
      handlers: ROUTES,
    });
    session = await h2Session(server.url, caPem);
  });

  afterAll(async () => {
    session?.close();
    await server?.close();
  });

  const http1 = () => request(server.url);

  describe('over HTTP/2', () => {
    it('negotiates h2 through ALPN', () => {
      expect(session.alpnProtocol).toBe('h2');
    });

    it('echoes the uid and returns the handler patch, base64 JSONPatch', async () => {
      const body = review();
      const res = await postJson(session, WEBHOOK_PATHS.daemonSets, body);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/application\/json/);
      const reply = JSON.parse(res.body) as AdmissionReview;
      expect(reply.apiVersion).toBe('admission.k8s.io/v1');
      expect(reply.kind).toBe('AdmissionReview');
      expect(reply.response?.uid).toBe(body.request.uid);
      expect(reply.response?.allowed).toBe(true);
      expect(reply.response?.patchType).toBe('JSONPatch');
      expect(JSON.parse(Buffer.from(reply.response?.patch ?? '', 'base64').toString('utf8'))).toEqual(PATCH);
      expect(reply.response?.warnings).toEqual(['affinity added']);
    });

    it('renders a denial as allowed:false with 403 Forbidden and the message', async () => {
      const body = review();
      const res = await postJson(session, WEBHOOK_PATHS.pods, body);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toEqual({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        response: {
          uid: body.request.uid,
          allowed: false,
          status: { code: 403, reason: 'Forbidden', message: 'Cilium is not ready on node n1' },
        },
      });
    });

    it('answers a handler exception with 500 and a JSON error without the stack or the message', async () => {
      const body = review();
      const res = await postJson(session, '/throws', body);
      expect(res.status).toBe(500);
      const error = JSON.parse(res.body) as { error: string };
      expect(Object.keys(error)).toEqual(['error']);
      expect(error.error).toContain(body.request.uid);
      expect(res.body).not.toMatch(/boom|secret|stack|at .*\.ts/);
    });

    it('refuses a body over 7 MiB with 413', async () => {
      const huge = review({ object: { padding: 'x'.repeat(MAX_BODY_BYTES) } });
      const res = await postJson(session, WEBHOOK_PATHS.daemonSets, huge);
      expect(res.status).toBe(413);
      expect((JSON.parse(res.body) as { error: string }).error).toMatch(/larger than 7340032 bytes \(7 MiB\)/);
    });

    it('accepts a body just under 7 MiB (the API server may send two 3 MiB objects)', async () => {
      const big = review({ object: { padding: 'x'.repeat(3 * 1024 * 1024) }, oldObject: { padding: 'y'.repeat(3 * 1024 * 1024) } });
      const res = await postJson(session, WEBHOOK_PATHS.daemonSets, big);
      expect(res.status).toBe(200);
      expect((JSON.parse(res.body) as AdmissionReview).response?.uid).toBe(big.request.uid);
    });
  });

  describe('over HTTP/1.1', () => {
    it('echoes the uid and returns the patch', async () => {
      const body = review();
      const res = await http1().post(WEBHOOK_PATHS.daemonSets).ca(caPem).set('content-type', 'application/json').send(body);
      expect(res.status).toBe(200);
      const reply = res.body as AdmissionReview;
      expect(reply.response?.uid).toBe(body.request.uid);
      expect(JSON.parse(Buffer.from(reply.response?.patch ?? '', 'base64').toString('utf8'))).toEqual(PATCH);
    });

    it('renders a denial', async () => {
      const body = review();
      const res = await http1().post(WEBHOOK_PATHS.pods).ca(caPem).send(body);
      expect(res.status).toBe(200);
      expect((res.body as AdmissionReview).response).toEqual({
        uid: body.request.uid,
        allowed: false,
        status: { code: 403, reason: 'Forbidden', message: 'Cilium is not ready on node n1' },
      });
    });

    it('answers malformed JSON with 400', async () => {
      const res = await http1()
        .post(WEBHOOK_PATHS.pods)
        .ca(caPem)
        .set('content-type', 'application/json')
        .send('secret-token {"apiVersion": "admission.k8s.io/v1"}'); // JSON.parse itself would quote this body
      expect(res.status).toBe(400);
      expect((res.body as { error: string }).error).toMatch(/not valid JSON/);
      expect(JSON.stringify(res.body)).not.toContain('secret'); // the body is never echoed
    });

    it('answers an empty JSON body with 400', async () => {
      const res = await http1().post(WEBHOOK_PATHS.pods).ca(caPem).set('content-type', 'application/json').send('');
      expect(res.status).toBe(400);
      expect((res.body as { error: string }).error).toMatch(/empty|AdmissionReview/);
    });

    it('answers a wrong apiVersion with 400 naming it', async () => {
      const res = await http1()
        .post(WEBHOOK_PATHS.pods)
        .ca(caPem)
        .send({ ...review(), apiVersion: 'admission.k8s.io/v1beta1' });
      expect(res.status).toBe(400);
      expect((res.body as { error: string }).error).toMatch(/admission\.k8s\.io\/v1beta1/);
    });

    it('answers a missing uid with 400', async () => {
      const body = review();
      const { uid: _uid, ...withoutUid } = body.request;
      const res = await http1()
        .post(WEBHOOK_PATHS.pods)
        .ca(caPem)
        .send({ ...body, request: withoutUid });
      expect(res.status).toBe(400);
      expect((res.body as { error: string }).error).toMatch(/request\.uid is missing/);
    });

    it.each(['text/plain', 'application/x-www-form-urlencoded', 'application/yaml'])('answers Content-Type %s with 415', async (contentType) => {
      const res = await http1().post(WEBHOOK_PATHS.pods).ca(caPem).set('content-type', contentType).send('apiVersion: v1');
      expect(res.status).toBe(415);
      expect((res.body as { error: string }).error).toMatch(/send application\/json/);
    });

    it('refuses a body over 7 MiB with 413', async () => {
      const huge = JSON.stringify(review({ object: { padding: 'x'.repeat(MAX_BODY_BYTES) } }));
      const res = await http1().post(WEBHOOK_PATHS.daemonSets).ca(caPem).set('content-type', 'application/json').send(huge);
      expect(res.status).toBe(413);
      expect((res.body as { error: string }).error).toMatch(/7 MiB/);
    });

    it('answers a handler exception with 500 and no stack', async () => {
      const res = await http1().post('/throws').ca(caPem).send(review());
      expect(res.status).toBe(500);
      expect(res.text).not.toMatch(/boom|stack|\.ts:\d+/);
    });

    it('answers an unknown route with a JSON 404', async () => {
      const res = await http1().get('/nope').ca(caPem);
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: 'no route for GET /nope' });
    });
  });

  describe('probes and metrics', () => {
    it('GET /healthz is 200 ok', async () => {
      const res = await http1().get('/healthz').ca(caPem);
      expect(res.status).toBe(200);
      expect(res.text).toBe('ok');
    });

    it('GET /readyz is 503 until readiness flips, then 200, with the per-cache detail', async () => {
      ready = false;
      const before = await http1().get('/readyz').ca(caPem);
      expect(before.status).toBe(503);
      expect(before.body).toEqual({ ready: false, caches: { nodes: true, ciliumnodes: false } });
      ready = true;
      const after = await http1().get('/readyz').ca(caPem);
      expect(after.status).toBe(200);
      expect(after.body).toEqual({ ready: true, caches: { nodes: true, ciliumnodes: true } });
      const overH2 = await h2Request(session, { path: '/readyz' });
      expect(overH2.status).toBe(200);
    });

    it('GET /metrics counts requests by webhook, operation and decision', async () => {
      await postJson(session, WEBHOOK_PATHS.daemonSets, review({ operation: 'UPDATE' }));
      const res = await http1().get('/metrics').ca(caPem);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/text\/plain/);
      const text = res.text;
      expect(text).toMatch(/^cmg_admission_requests_total\{webhook="patcher",operation="UPDATE",decision="patched"\} 1$/m);
      expect(text).toMatch(/^cmg_admission_requests_total\{webhook="patcher",operation="CREATE",decision="patched"\} \d+$/m);
      expect(text).toMatch(/^cmg_admission_requests_total\{webhook="denier",operation="CREATE",decision="denied"\} \d+$/m);
      expect(text).toMatch(/^cmg_admission_requests_total\{webhook="thrower",operation="CREATE",decision="error"\} 2$/m);
      expect(text).toMatch(/^cmg_admission_requests_total\{webhook="denier",operation="unknown",decision="bad_request"\} \d+$/m);
      expect(text).toMatch(/^cmg_admission_request_duration_seconds_bucket\{le="0.001",webhook="patcher",operation="UPDATE",decision="patched"\} \d+$/m);
      expect(text).toMatch(/^cmg_cache_synced\{cache="ciliumnodes"\} 1$/m);
      expect(text).toMatch(/^cmg_certificate_expiry_timestamp_seconds \d+/m);
      expect(text).toMatch(/^cmg_process_cpu_user_seconds_total /m);
    });
  });

  describe('TLS', () => {
    function handshake(options: { minVersion: 'TLSv1' | 'TLSv1.2'; maxVersion: 'TLSv1.1' | 'TLSv1.2' }, port = server.port): Promise<string> {
      return new Promise((resolve, reject) => {
        const socket = tlsConnect({
          host: '127.0.0.1',
          port,
          ca: caPem,
          ...options,
          // OpenSSL 3 disables TLS 1.0/1.1 at the default security level on the client side too;
          // level 0 lets this client offer TLS 1.1, so the refusal must come from the server.
          ciphers: 'DEFAULT:@SECLEVEL=0',
        });
        socket.once('secureConnect', () => {
          const version = socket.getProtocol() ?? '';
          socket.end();
          resolve(version);
        });
        socket.once('error', reject);
      });
    }

    it('accepts a TLS 1.2 client', async () => {
      expect(await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).toBe('TLSv1.2');
    });

    it('refuses a TLS 1.1 client (server minVersion TLSv1.2)', async () => {
      // Control: this client does speak TLS 1.1 to a server that allows it...
      const { key, cert } = server.certWatcher.current;
      const legacy = createTlsServer({ key, cert, minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' }, (s) => s.end());
      await new Promise<void>((resolve) => legacy.listen(0, '127.0.0.1', resolve));
      try {
        const address = legacy.address();
        const port = typeof address === 'object' && address ? address.port : 0;
        expect(await handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }, port)).toBe('TLSv1.1');
      } finally {
        await new Promise((resolve) => legacy.close(resolve));
      }
      // ...and ours refuses it.
      await expect(handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })).rejects.toMatchObject({
        code: expect.stringMatching(/ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION|ERR_SSL_UNSUPPORTED_PROTOCOL/),
      });
    });
  });

  describe('logs', () => {
    it('writes one decision line per admission with the request identity and no object body', async () => {
      const body = review({
        name: 'db-0',
        namespace: 'prod',
        dryRun: true,
        object: { apiVersion: 'v1', kind: 'Secret', data: { password: 'aHVudGVyMg==' } },
      });
      await postJson(session, WEBHOOK_PATHS.pods, body);
      const lines = logs.lines.filter((line) => line.uid === body.request.uid);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        level: 'info',
        msg: 'admission decision',
        webhook: 'denier',
        uid: body.request.uid,
        kind: 'Pod',
        namespace: 'prod',
        name: 'db-0',
        operation: 'CREATE',
        node: 'n1',
        decision: 'denied',
        reason: 'cilium-not-ready',
        dryRun: true,
        user: 'system:serviceaccount:kube-system:replicaset-controller',
      });
      expect(typeof lines[0]?.latencyMs).toBe('number');
      expect(logs.raw.join('\n')).not.toContain('aHVudGVyMg==');
    });

    it('logs a handler failure under err with its stack, and the uid', async () => {
      const body = review();
      await postJson(session, '/throws', body);
      const line = logs.lines.find((l) => l.uid === body.request.uid);
      expect(line).toMatchObject({ level: 'error', webhook: 'thrower', msg: 'admission handler failed' });
      const err = line?.err as { message?: string; stack?: string } | undefined;
      expect(err?.message).toContain('boom');
      expect(err?.stack).toMatch(/server\.test\.ts/);
    });
  });
});

describe('graceful shutdown', () => {
  it('completes in-flight requests (HTTP/2 and HTTP/1.1) while close() runs, then refuses new ones', async () => {
    let entered = 0;
    let signalEntered: () => void = () => {};
    const bothEntered = new Promise<void>((resolve) => (signalEntered = resolve));
    const slow: AdmissionHandler = {
      name: 'slow',
      handle: async () => {
        entered += 1;
        if (entered === 2) signalEntered();
        await new Promise((resolve) => setTimeout(resolve, 300));
        return { allowed: true, reason: 'slow-but-fine' };
      },
    };
    const { logger } = capturingLogger();
    const server = await startServer({
      certDir: dir,
      port: 0,
      host: '127.0.0.1',
      logger,
      metrics: new Metrics({ defaultMetrics: false }),
      readiness: () => ({ ready: true, detail: {} }),
      handlers: [{ path: '/slow', handler: slow }],
    });
    let session: ClientHttp2Session | undefined;
    try {
      session = await h2Session(server.url, caPem);
      const h2Body = review();
      const h1Body = review();
      const h2Reply = postJson(session, '/slow', h2Body);
      const h1Reply = request(server.url)
        .post('/slow')
        .ca(caPem)
        .send(h1Body)
        .then((res) => res);
      await bothEntered;
      const started = Date.now();
      const closed = server.close();

      const [h2Res, h1Res] = await Promise.all([h2Reply, h1Reply]);
      expect(h2Res.status).toBe(200);
      expect((JSON.parse(h2Res.body) as AdmissionReview).response?.uid).toBe(h2Body.request.uid);
      expect(h1Res.status).toBe(200);
      expect((h1Res.body as AdmissionReview).response?.uid).toBe(h1Body.request.uid);

      await closed;
      // Drained, not cut at the deadline (20 s).
      expect(Date.now() - started).toBeLessThan(5_000);
      await expect(request(server.url).get('/healthz').ca(caPem)).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      session?.destroy();
      await server.close();
    }
  });
});

describe('buildApp without TLS (inject)', () => {
  async function app(handler: AdmissionHandler, handlerMs?: number) {
    const metrics = new Metrics({ defaultMetrics: false });
    const logs = capturingLogger();
    const instance = await buildApp({
      handlers: [{ path: '/h', handler }],
      readiness: () => ({ ready: true, detail: {} }),
      metrics,
      logger: logs.logger,
      ...(handlerMs === undefined ? {} : { timeouts: { handlerMs } }),
    });
    return { instance, metrics, logs };
  }

  it('answers 503 when a handler outlives the handler timeout, and drops its late decision', async () => {
    const { instance, metrics, logs } = await app(
      {
        name: 'stuck',
        handle: async () => {
          await new Promise((resolve) => setTimeout(resolve, 300));
          return { allowed: true, reason: 'late' };
        },
      },
      50,
    );
    try {
      const body = review({ operation: 'DELETE' });
      const res = await instance.inject({ method: 'POST', url: '/h', payload: body });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ error: 'the webhook did not decide in time' });
      await new Promise((resolve) => setTimeout(resolve, 350));
      expect(logs.lines.some((l) => l.uid === body.request.uid && l.msg === 'handler timed out')).toBe(true);
      expect(logs.lines.some((l) => l.msg === 'admission decision')).toBe(false);
      expect(await metrics.text()).toMatch(/^cmg_admission_requests_total\{webhook="stuck",operation="DELETE",decision="error"\} 1$/m);
    } finally {
      await instance.close();
    }
  });

  it('treats a handler that returns something other than a Decision as an internal error', async () => {
    const { instance } = await app({ name: 'broken', handle: () => undefined as unknown as Decision });
    try {
      const res = await instance.inject({ method: 'POST', url: '/h', payload: review() });
      expect(res.statusCode).toBe(500);
      expect(Object.keys(res.json() as object)).toEqual(['error']);
    } finally {
      await instance.close();
    }
  });
});
