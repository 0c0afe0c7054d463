// The elector's LeaseStore on the API server: get/create/update (PUT with the read
// resourceVersion) of one coordination.k8s.io/v1 Lease, each request with a deadline shorter
// than the elector's retry period. 409 (AlreadyExists on create, Conflict on update) becomes
// LeaseConflictError.

import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { httpStatus, timeoutOptions } from '../cluster/kube-client.js';
import { LeaseConflictError, type LeaseRecord, type LeaseStore } from './leader.js';

const REQUEST_TIMEOUT_MS = 5_000;

/** Lease times arrive as strings (client-node does not deserialize MicroTime) or Dates. */
function time(value: unknown): Date | undefined {
  if (value instanceof Date) return value;
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

function micro(date: Date | undefined): V1MicroTime | undefined {
  return date ? new V1MicroTime(date.getTime()) : undefined;
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

export function apiLeaseStore(kc: KubeConfig, namespace: string, name: string): LeaseStore {
  const api = kc.makeApiClient(CoordinationV1Api);
  const toLease = (record: LeaseRecord): V1Lease => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace, ...(record.resourceVersion ? { resourceVersion: record.resourceVersion } : {}) },
    spec: {
      // An empty holder is how a release is written; the API stores it as absent.
      ...(record.holderIdentity ? { holderIdentity: record.holderIdentity } : {}),
      ...(record.leaseDurationSeconds !== undefined ? { leaseDurationSeconds: record.leaseDurationSeconds } : {}),
      ...(record.leaseTransitions !== undefined ? { leaseTransitions: record.leaseTransitions } : {}),
      ...(record.acquireTime ? { acquireTime: micro(record.acquireTime)! } : {}),
      ...(record.renewTime ? { renewTime: micro(record.renewTime)! } : {}),
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
        return toRecord(await api.readNamespacedLease({ name, namespace }, timeoutOptions(REQUEST_TIMEOUT_MS)));
      } catch (err) {
        if (httpStatus(err) === 404) return undefined;
        throw err;
      }
    },
    create: (record) => write(() => api.createNamespacedLease({ namespace, body: toLease(record) }, timeoutOptions(REQUEST_TIMEOUT_MS))),
    update: (record) => write(() => api.replaceNamespacedLease({ name, namespace, body: toLease(record) }, timeoutOptions(REQUEST_TIMEOUT_MS))),
  };
}
