import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { KubeAccess } from '../../src/cluster/kube-config.js';
import { testAccess } from '../support/kube-access.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LookupTimeoutError, withDeadline } from '../../src/cluster/kube-client.js';
import { liveReader, readNode, readPod } from '../../src/cluster/live-reader.js';
import { noReader } from '../../src/cluster/reader.js';
import { listenOnLoopback, closeNow } from '../support/loopback.js';

// A stand-in API server: GET /api/v1/namespaces/<ns>/pods/<name> and /api/v1/nodes/<name>.
let server: Server;
let kc: KubeAccess;
const hanging = new Set<ServerResponse>();

function status(res: ServerResponse, code: number, reason: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ apiVersion: 'v1', kind: 'Status', status: 'Failure', reason, code, message: `${reason} (test)` }));
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  if (path === '/api/v1/namespaces/default/pods/web') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace: 'default', creationTimestamp: '2025-06-02T09:38:55Z', managedFields: [{ manager: 'x' }] },
        spec: { containers: [{ name: 'web', image: 'nginx' }], schedulerName: 'default-scheduler' },
        status: { phase: 'Pending' },
      }),
    );
  } else if (path === '/api/v1/nodes/node-a') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels: { cni: 'cilium' } }, status: { capacity: { cpu: '2' } } }));
  } else if (path === '/api/v1/nodes/slow') {
    hanging.add(res); // never answers
  } else if (path === '/api/v1/nodes/broken') {
    status(res, 500, 'InternalError');
  } else if (path === '/api/v1/namespaces/default/pods/forbidden') {
    status(res, 403, 'Forbidden');
  } else {
    status(res, 404, 'NotFound');
  }
}

beforeAll(async () => {
  server = createServer(handle);
  kc = testAccess(await listenOnLoopback(server), { token: 't' });
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  await closeNow(server);
});

describe('readPod / readNode', () => {
  it('returns the trimmed object', async () => {
    expect(await readPod(kc, 'default', 'web')).toEqual({
      metadata: { name: 'web', namespace: 'default', creationTimestamp: '2025-06-02T09:38:55Z' },
      spec: { schedulerName: 'default-scheduler' },
      status: { phase: 'Pending' },
    });
    expect(await readNode(kc, 'node-a')).toEqual({ metadata: { name: 'node-a', labels: { cni: 'cilium' } } });
  });

  it('returns undefined on 404', async () => {
    expect(await readPod(kc, 'default', 'missing')).toBeUndefined();
    expect(await readNode(kc, 'missing')).toBeUndefined();
  });

  it('throws on other errors, with the status code', async () => {
    await expect(readNode(kc, 'broken')).rejects.toMatchObject({ code: 500 });
    await expect(readPod(kc, 'default', 'forbidden')).rejects.toMatchObject({ code: 403 });
  });

  it('gives up after the timeout', async () => {
    const started = Date.now();
    const read = readNode(kc, 'slow', { timeoutMs: 200 });
    await expect(read).rejects.toThrow(LookupTimeoutError);
    await expect(read).rejects.toThrow('reading node slow from the API server timed out after 200 ms');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('aborts the HTTP request itself, not only the wait', async () => {
    const before = hanging.size;
    await expect(readNode(kc, 'slow', { timeoutMs: 100 })).rejects.toThrow(LookupTimeoutError);
    const res = [...hanging][before]!;
    await expect.poll(() => res.req.destroyed || res.destroyed, { timeout: 2_000 }).toBe(true);
  });
});

describe('ClusterReader', () => {
  it('liveReader reads through the API', async () => {
    const reader = liveReader(kc, { timeoutMs: 1_000 });
    expect((await reader.node('node-a'))?.metadata.name).toBe('node-a');
    expect((await reader.pod('default', 'web'))?.metadata.name).toBe('web');
    expect(await reader.pod('default', 'missing')).toBeUndefined();
  });

  it('noReader always answers undefined', async () => {
    expect(await noReader.pod('default', 'web')).toBeUndefined();
    expect(await noReader.node('node-a')).toBeUndefined();
  });
});

describe('withDeadline', () => {
  it('passes a result through and clears its timer', async () => {
    expect(await withDeadline(Promise.resolve(7), 50, 'x')).toBe(7);
  });
  it('passes a rejection through', async () => {
    await expect(withDeadline(Promise.reject(new Error('boom')), 50, 'x')).rejects.toThrow('boom');
  });
  it('rejects with the signal’s reason when the caller aborts, before the deadline', async () => {
    const abort = new AbortController();
    const pending = withDeadline(new Promise(() => {}), 10_000, 'x', abort.signal);
    abort.abort(new Error('pass interrupted'));
    await expect(pending).rejects.toThrow('pass interrupted');
    await expect(withDeadline(Promise.resolve(1), 50, 'x', abort.signal)).rejects.toThrow('pass interrupted');
  });
});
