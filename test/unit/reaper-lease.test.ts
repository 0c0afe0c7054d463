// apiLeaseStore (src/reaper/lease.ts) against a stand-in API server on 127.0.0.1: the paths and
// verbs of get/create/update, MicroTime written as kube-apiserver parses it (RFC3339Micro: UTC,
// exactly six fractional digits; apimachinery pkg/apis/meta/v1/micro_time.go), and 404/409.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LeaseConflictError } from '../../src/reaper/leader.js';
import { apiLeaseStore, microTime } from '../../src/reaper/lease.js';
import { testAccess } from '../support/kube-access.js';
import { listenOnLoopback, closeNow } from '../support/loopback.js';

let server: Server;
let url: string;
let answer: (req: IncomingMessage, res: ServerResponse, body: string) => void;
const seen: Array<{ method: string; path: string; body: string }> = [];

beforeEach(async () => {
  seen.length = 0;
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', path: req.url ?? '', body });
      answer(req, res, body);
    });
  });
  url = await listenOnLoopback(server);
});

afterEach(async () => {
  await closeNow(server);
});

const json = (res: ServerResponse, code: number, body: unknown) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
// Go's RFC3339Micro layout, as a pattern: six fractional digits, then Z or an offset.
const RFC3339_MICRO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

describe('apiLeaseStore', () => {
  it('writes MicroTime with six fractional digits in UTC', () => {
    expect(microTime(new Date('2026-12-01T22:20:57.123Z'))).toBe('2026-12-01T22:20:57.123000Z');
    expect(microTime(new Date(0))).toMatch(RFC3339_MICRO);
  });

  it('create POSTs the Lease with its times as the API server parses them; get reads them back', async () => {
    const store = apiLeaseStore(testAccess(url), 'kube-system', 'cmg-reaper');
    const at = new Date('2026-12-01T22:20:57.5Z');
    answer = (_req, res, body) => json(res, 201, { ...(JSON.parse(body) as object), metadata: { name: 'cmg-reaper', resourceVersion: '5' } });
    const created = await store.create({ holderIdentity: 'me', leaseDurationSeconds: 15, acquireTime: at, renewTime: at, leaseTransitions: 0 });
    expect(seen[0]).toMatchObject({ method: 'POST', path: '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases' });
    const sent = JSON.parse(seen[0]!.body) as { spec: { acquireTime: string; renewTime: string } };
    expect(sent.spec.renewTime).toBe('2026-12-01T22:20:57.500000Z');
    expect(sent.spec.acquireTime).toMatch(RFC3339_MICRO);
    expect(created).toEqual({ holderIdentity: 'me', leaseDurationSeconds: 15, acquireTime: at, renewTime: at, leaseTransitions: 0, resourceVersion: '5' });

    // What kube-apiserver writes back: microseconds that are not a whole millisecond.
    answer = (_req, res) =>
      json(res, 200, {
        metadata: { resourceVersion: '6' },
        spec: { holderIdentity: 'other', renewTime: '2026-12-01T22:21:00.123456Z', leaseDurationSeconds: 15 },
      });
    const read = await store.get();
    expect(seen[1]).toMatchObject({ method: 'GET', path: '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cmg-reaper' });
    expect(read?.renewTime?.toISOString()).toBe('2026-12-01T22:21:00.123Z');
    expect(read?.resourceVersion).toBe('6');
  });

  it('update PUTs with the resourceVersion read; 409 is a LeaseConflictError; get of a missing Lease is undefined', async () => {
    const store = apiLeaseStore(testAccess(url), 'kube-system', 'cmg-reaper');
    answer = (_req, res) => json(res, 409, { kind: 'Status', code: 409, reason: 'Conflict', message: 'the object has been modified' });
    await expect(store.update({ holderIdentity: 'me', resourceVersion: '6' })).rejects.toBeInstanceOf(LeaseConflictError);
    expect(seen[0]).toMatchObject({ method: 'PUT', path: '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cmg-reaper' });
    expect((JSON.parse(seen[0]!.body) as { metadata: { resourceVersion: string } }).metadata.resourceVersion).toBe('6');
    answer = (_req, res) => json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound', message: 'not found' });
    expect(await store.get()).toBeUndefined();
  });
});
