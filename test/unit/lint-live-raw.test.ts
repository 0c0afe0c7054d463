// readLiveInput (lint --kubeconfig, and report's lint section) lists nodes and pods as raw JSON,
// page by page, keeping only what the checks read: against a stand-in API server on 127.0.0.1.

import { createServer, type Server } from 'node:http';
import type { KubeAccess } from '../../src/cluster/kube-config.js';
import { testAccess } from '../support/kube-access.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LiveReadError, readLiveInput } from '../../src/lint/live.js';
import { listenOnLoopback, closeNow } from '../support/loopback.js';

let server: Server;
let url = '';
const seen: Array<{ path: string; query: Record<string, string> }> = [];
let podsAnswer: (query: Record<string, string>) => { status: number; body: unknown };

const pod = (name: string, hostPort?: number) => ({
  metadata: { name, namespace: 'default' },
  spec: { nodeName: 'n1', containers: [{ name: 'c', ...(hostPort ? { ports: [{ containerPort: 80, hostPort }] } : {}) }] },
});

beforeEach(async () => {
  seen.length = 0;
  podsAnswer = (q) =>
    q.continue
      ? { status: 200, body: { items: [pod('b', 8080)], metadata: { resourceVersion: '9' } } }
      : { status: 200, body: { items: [pod('a')], metadata: { resourceVersion: '', continue: 'next' } } };
  server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(u.searchParams);
    seen.push({ path: u.pathname, query });
    let answer: { status: number; body: unknown };
    if (u.pathname === '/api/v1/pods') answer = podsAnswer(query);
    else if (u.pathname === '/api/v1/nodes')
      answer = { status: 200, body: { items: [{ metadata: { name: 'n1', labels: { cni: 'cilium' } }, spec: { podCIDRs: ['10.0.0.0/24'] } }], metadata: {} } };
    else answer = { status: 404, body: { kind: 'Status', code: 404, message: 'not found' } };
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer.body));
  });
  url = await listenOnLoopback(server);
});

afterEach(async () => {
  await closeNow(server);
});

function kubeConfig(): KubeAccess {
  return testAccess(url, { token: 't' });
}

describe('readLiveInput: nodes and pods as raw, paged lists', () => {
  it('counts every pod over all pages and keeps the host-port pods and the nodes', async () => {
    const input = await readLiveInput(kubeConfig(), { ciliumNamespace: 'kube-system', timeoutMs: 5_000 });
    expect(input.podCount).toBe(2);
    expect(input.hostPortPods).toEqual([{ namespace: 'default', name: 'b', node: 'n1', hostPorts: [8080] }]);
    expect(input.nodes).toEqual([{ name: 'n1', labels: { cni: 'cilium' }, podCIDRs: ['10.0.0.0/24'] }]);
    const podLists = seen.filter((r) => r.path === '/api/v1/pods');
    expect(podLists.map((r) => [r.query.limit, r.query.continue ?? ''])).toEqual([
      ['500', ''],
      ['500', 'next'],
    ]);
  });

  it('withoutPods (report: pods come from its caches) lists no pods and leaves the pod facts out', async () => {
    const input = await readLiveInput(kubeConfig(), { ciliumNamespace: 'kube-system', timeoutMs: 5_000, withoutPods: true });
    expect(seen.filter((r) => r.path === '/api/v1/pods')).toEqual([]);
    expect(input.podCount).toBeUndefined();
    expect(input.hostPortPods).toEqual([]);
    expect(input.nodes).toEqual([{ name: 'n1', labels: { cni: 'cilium' }, podCIDRs: ['10.0.0.0/24'] }]);
  });

  it("retries a 503 and says the server's own message when it refuses", async () => {
    let calls = 0;
    podsAnswer = () =>
      ++calls === 1 ? { status: 503, body: { kind: 'Status', code: 503, message: 'starting' } } : { status: 200, body: { items: [pod('a')], metadata: {} } };
    expect((await readLiveInput(kubeConfig(), { ciliumNamespace: 'kube-system', timeoutMs: 5_000 })).podCount).toBe(1);
    expect(calls).toBe(2);

    podsAnswer = () => ({ status: 403, body: { kind: 'Status', code: 403, message: 'pods is forbidden: User "u" cannot list resource "pods"' } });
    const err = await readLiveInput(kubeConfig(), { ciliumNamespace: 'kube-system', timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LiveReadError);
    expect((err as Error).message).toBe('reading pods from the API server failed: HTTP 403: pods is forbidden: User "u" cannot list resource "pods"');
  });
});
