// AdmissionReview requests shaped as kube-apiserver sends them (admission.k8s.io/v1).

import { randomUUID } from 'node:crypto';
import type { AdmissionRequest, AdmissionReview, Operation } from '../../src/admission/types.js';

const USER = { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] };
const SCHEDULER = { username: 'system:kube-scheduler', groups: ['system:authenticated'] };

export function review(request: AdmissionRequest): AdmissionReview {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request };
}

export function daemonSetRequest(ds: any, operation: Operation = 'CREATE', oldObject?: any): AdmissionRequest {
  const gvk = { group: 'apps', version: 'v1', kind: 'DaemonSet' };
  const gvr = { group: 'apps', version: 'v1', resource: 'daemonsets' };
  return {
    uid: randomUUID(),
    kind: gvk,
    resource: gvr,
    requestKind: gvk,
    requestResource: gvr,
    name: ds?.metadata?.name,
    namespace: ds?.metadata?.namespace,
    operation,
    userInfo: USER,
    object: ds,
    ...(oldObject ? { oldObject } : {}),
    dryRun: false,
    options: { apiVersion: 'meta.k8s.io/v1', kind: operation === 'CREATE' ? 'CreateOptions' : 'UpdateOptions' },
  };
}

export function podRequest(pod: any): AdmissionRequest {
  const gvk = { group: '', version: 'v1', kind: 'Pod' };
  const gvr = { group: '', version: 'v1', resource: 'pods' };
  return {
    uid: randomUUID(),
    kind: gvk,
    resource: gvr,
    requestKind: gvk,
    requestResource: gvr,
    name: pod?.metadata?.name,
    namespace: pod?.metadata?.namespace,
    operation: 'CREATE',
    userInfo: USER,
    object: pod,
    dryRun: false,
    options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
  };
}

export function bindingRequest(namespace: string, name: string, node: string): AdmissionRequest {
  const gvk = { group: '', version: 'v1', kind: 'Binding' };
  const gvr = { group: '', version: 'v1', resource: 'pods' };
  return {
    uid: randomUUID(),
    kind: gvk,
    resource: gvr,
    subResource: 'binding',
    requestKind: gvk,
    requestResource: gvr,
    requestSubResource: 'binding',
    name,
    namespace,
    operation: 'CREATE',
    userInfo: SCHEDULER,
    object: {
      kind: 'Binding',
      apiVersion: 'v1',
      metadata: { name, namespace, uid: randomUUID(), creationTimestamp: null },
      target: { kind: 'Node', name: node },
    },
    dryRun: false,
    options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
  };
}
