// The elector's LeaseStore on the API server: get/create/update (PUT with the read
// resourceVersion) of one coordination.k8s.io/v1 Lease, each request with a deadline shorter
// than the elector's retry period. 409 (AlreadyExists on create, Conflict on update) becomes
// LeaseConflictError.
//
// acquireTime and renewTime are metav1.MicroTime: the API server parses them with the layout
// RFC3339Micro "2006-01-02T15:04:05.000000Z07:00" and writes them in UTC with exactly six
// fractional digits (apimachinery pkg/apis/meta/v1/micro_time.go, UnmarshalJSON/MarshalJSON).
// Go's parser requires as many fractional digits as that layout has, so ours are written with six.

import type { V1Lease } from '@kubernetes/client-node';
import { httpStatus } from '../cluster/kube-client.js';
import type { KubeAccess } from '../cluster/kube-config.js';
import { request, seg } from '../cluster/raw-api.js';
import { LeaseConflictError, type LeaseRecord, type LeaseStore } from './leader.js';

const REQUEST_TIMEOUT_MS = 5_000;

/** Lease times arrive as RFC 3339 strings with microseconds (or Dates, from tests). */
function time(value: unknown): Date | undefined {
  if (value instanceof Date) return value;
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

/** A MicroTime as the API server writes and parses it: UTC, six fractional digits (ours end in 000: ms precision). */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function toRecord(lease: V1Lease): LeaseRecord {
  const spec = lease.spec ?? {};
  const record: LeaseRecord = {};
  if (spec.holderIdentity !== undefined) record.holderIdentity = spec.holderIdentity;
  if (spec.leaseDurationSeconds !== undefined) record.leaseDurationSeconds = spec.leaseDurationSeconds;
  if (spec.leaseTransitions !== undefined) record.leaseTransitions = spec.leaseTransitions;
  const acquireTime = time(spec.acquireTime);
  const renewTime = time(spec.renewTime);
  if (acquireTime) record.acquireTime = acquireTime;
  if (renewTime) record.renewTime = renewTime;
  if (lease.metadata?.resourceVersion) record.resourceVersion = lease.metadata.resourceVersion;
  return record;
}

/** The Lease as sent: V1Lease, but its times as the strings the API server parses. */
type LeaseBody = Omit<V1Lease, 'spec'> & {
  spec: Omit<NonNullable<V1Lease['spec']>, 'acquireTime' | 'renewTime'> & { acquireTime?: string; renewTime?: string };
};

export function apiLeaseStore(kc: KubeAccess, namespace: string, name: string): LeaseStore {
  const collection = `/apis/coordination.k8s.io/v1/namespaces/${seg(namespace)}/leases`;
  const toLease = (record: LeaseRecord): LeaseBody => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace, ...(record.resourceVersion ? { resourceVersion: record.resourceVersion } : {}) },
    spec: {
      // An empty holder is how a release is written; the API stores it as absent.
      ...(record.holderIdentity ? { holderIdentity: record.holderIdentity } : {}),
      ...(record.leaseDurationSeconds !== undefined ? { leaseDurationSeconds: record.leaseDurationSeconds } : {}),
      ...(record.leaseTransitions !== undefined ? { leaseTransitions: record.leaseTransitions } : {}),
      ...(record.acquireTime ? { acquireTime: microTime(record.acquireTime) } : {}),
      ...(record.renewTime ? { renewTime: microTime(record.renewTime) } : {}),
    },
  });
  const write = async (call: () => Promise<V1Lease>): Promise<LeaseRecord> => {
    try {
      return toRecord(await call());
    } catch (err) {
      if (httpStatus(err) === 409) throw new LeaseConflictError();
      throw err;
    }
  };
  return {
    describe: `${namespace}/${name}`,
    async get() {
      try {
        return toRecord(await request<V1Lease>(kc, { path: `${collection}/${seg(name)}`, timeoutMs: REQUEST_TIMEOUT_MS }));
      } catch (err) {
        if (httpStatus(err) === 404) return undefined;
        throw err;
      }
    },
    create: (record) => write(() => request<V1Lease>(kc, { method: 'POST', path: collection, body: toLease(record), timeoutMs: REQUEST_TIMEOUT_MS })),
    update: (record) =>
      write(() => request<V1Lease>(kc, { method: 'PUT', path: `${collection}/${seg(name)}`, body: toLease(record), timeoutMs: REQUEST_TIMEOUT_MS })),
  };
}
