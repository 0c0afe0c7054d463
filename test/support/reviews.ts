// AdmissionReview requests shaped as kube-apiserver sends them (admission.k8s.io/v1).

import { randomUUID } from 'node:crypto';
import type { AdmissionRequest, AdmissionReview, Operation } from '../../src/admission/types.js';

const USER = { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] };
const SCHEDULER = { username: 'system:kube-scheduler', groups: ['system:authenticated'] };

export function review(request: AdmissionRequest): AdmissionReview {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request };
}

interface Target {
  group: string;
  kind: string;
  resource: string;
  subResource?: string;
}

function request(target: Target, operation: Operation, object: any, extra: Partial<AdmissionRequest> = {}): AdmissionRequest {
  const gvk = { group: target.group, version: 'v1', kind: target.kind };
  const gvr = { group: target.group, version: 'v1', resource: target.resource };
  const sub = target.subResource ? { subResource: target.subResource, requestSubResource: target.subResource } : {};
  return {
    uid: randomUUID(),
    kind: gvk,
    resource: gvr,
    requestKind: gvk,
    requestResource: gvr,
    ...sub,
    name: object?.metadata?.name,
    namespace: object?.metadata?.namespace,
    operation,
    userInfo: USER,
    object,
    dryRun: false,
    options: { apiVersion: 'meta.k8s.io/v1', kind: operation === 'CREATE' ? 'CreateOptions' : 'UpdateOptions' },
    ...extra,
  };
}

export function daemonSetRequest(ds: any, operation: Operation = 'CREATE', oldObject?: any): AdmissionRequest {
  return request({ group: 'apps', kind: 'DaemonSet', resource: 'daemonsets' }, operation, ds, oldObject ? { oldObject } : {});
}

export function podRequest(pod: any): AdmissionRequest {
  return request({ group: '', kind: 'Pod', resource: 'pods' }, 'CREATE', pod);
}

export function bindingRequest(namespace: string, name: string, node: string): AdmissionRequest {
  const binding = {
    kind: 'Binding',
    apiVersion: 'v1',
    metadata: { name, namespace, uid: randomUUID(), creationTimestamp: null },
    target: { kind: 'Node', name: node },
  };
  return request({ group: '', kind: 'Binding', resource: 'pods', subResource: 'binding' }, 'CREATE', binding, { userInfo: SCHEDULER });
}
