// The real webhooks behind the real HTTPS server, fed real-world manifests, over HTTP/1.1 and
// HTTP/2, deciding from the example snapshot that the quick start serves.

import type { ClientHttp2Session } from 'node:http2';
import jsonpatch from 'fast-json-patch';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerHandle } from '../../src/server/start.js';
import { daemonSet, pod } from '../support/fixtures.js';
import { bindingRequest, daemonSetRequest, podRequest, review } from '../support/reviews.js';
import { capturingLogger, h2Session, postJson } from '../support/https-client.js';
import { startExampleServer, type ExampleServer } from '../support/example-server.js';
import { WEBHOOK_PATHS } from '../../src/webhooks/routes.js';

let example: ExampleServer;
let caPem: string;
let server: ServerHandle;
let session: ClientHttp2Session;
const { logger, lines } = capturingLogger();

beforeAll(async () => {
  example = await startExampleServer({ logger });
  ({ server, caPem } = example);
  session = await h2Session(server.url, caPem);
});

afterAll(async () => {
  session?.close();
  await example?.close();
});

const http1 = () => request(server.url);

describe('DaemonSet webhook over HTTP/1.1', () => {
  it('patches aws-node so that the stored object keeps its own affinity and gains cni NotIn [cilium]', async () => {
    const ds = daemonSet('aws-node');
    const body = review(daemonSetRequest(ds));
    const res = await http1().post(WEBHOOK_PATHS.daemonSets).ca(caPem).send(body).expect(200);
    expect(res.body.response.uid).toBe(body.request!.uid);
    expect(res.body.response.allowed).toBe(true);
    expect(res.body.response.patchType).toBe('JSONPatch');
    const patch = JSON.parse(Buffer.from(res.body.response.patch, 'base64').toString());
    const after = jsonpatch.applyPatch(structuredClone(ds), patch, true, false).newDocument as any;
    const exprs = after.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions;
    expect(exprs.at(-1)).toEqual({ key: 'cni', operator: 'NotIn', values: ['cilium'] });
    expect(exprs.length).toBe(
      ds.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions.length + 1,
    );
    expect(res.body.response.auditAnnotations).toMatchObject({ role: 'legacy', rule: 'aws-node', action: 'injected' });
    expect(res.body.response.warnings[0]).toContain('cni NotIn [cilium]');
  });

  it('leaves an unrelated DaemonSet untouched: no patch, no patchType', async () => {
    const res = await http1()
      .post(WEBHOOK_PATHS.daemonSets)
      .ca(caPem)
      .send(review(daemonSetRequest(daemonSet('node-exporter'))))
      .expect(200);
    expect(res.body.response).toEqual({ uid: expect.any(String), allowed: true });
  });

  it('answers a Pod review sent to the DaemonSet route with a 400 that says so', async () => {
    const res = await http1()
      .post(WEBHOOK_PATHS.daemonSets)
      .ca(caPem)
      .send(review(podRequest(pod('nginx-pod'))))
      .expect(400);
    expect(res.body.error).toMatch(/handles apps\/v1 DaemonSets, not core\/v1 Pod/);
  });
});

describe('pod webhook over HTTP/2', () => {
  it('denies a bind to a migrated node where Cilium is not ready, with a message and audit annotations', async () => {
    const body = review(bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-pending'));
    const res = await postJson(session, WEBHOOK_PATHS.pods, body);
    expect(res.status).toBe(200);
    const response = JSON.parse(res.body).response;
    expect(response.uid).toBe(body.request!.uid);
    expect(response.allowed).toBe(false);
    expect(response.status).toMatchObject({ code: 403, reason: 'Forbidden' });
    expect(response.status.message).toContain('pod default/web-7d4b9c-x2x1z cannot be placed on node node-cilium-pending');
    expect(response.auditAnnotations).toEqual({
      decision: 'denied',
      node: 'node-cilium-pending',
      reason: 'agent-not-ready-taint,no-cilium-node,agent-not-ready',
    });
  });

  it('allows the same pod on the node where Cilium is ready', async () => {
    const res = await postJson(session, WEBHOOK_PATHS.pods, review(bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-ready')));
    expect(JSON.parse(res.body).response).toMatchObject({ allowed: true, auditAnnotations: { reason: 'cilium-ready' } });
  });

  it("never blocks Cilium's own agent pod created on the unready node", async () => {
    const agent = pod('cilium-agent-pod');
    agent.spec.nodeName = 'node-cilium-pending';
    const res = await postJson(session, WEBHOOK_PATHS.pods, review(podRequest(agent)));
    expect(JSON.parse(res.body).response).toMatchObject({ allowed: true });
  });

  it('refuses an operation it does not handle with a 400', async () => {
    const res = await postJson(session, WEBHOOK_PATHS.pods, review({ ...podRequest(pod('nginx-pod')), operation: 'DELETE' }));
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toContain('not DELETE');
  });

  it('logged one line per decision with uid, node, decision and reason, and no object body', () => {
    const denial = lines.find((line) => line.msg === 'admission decision' && line.decision === 'denied');
    expect(denial).toMatchObject({ webhook: 'pod-placement', node: 'node-cilium-pending', reason: 'cilium-not-ready', kind: 'Binding' });
    expect(typeof denial?.uid).toBe('string');
    expect(JSON.stringify(lines)).not.toContain('"target"');
  });
});
