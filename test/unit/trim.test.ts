import { describe, expect, it } from 'vitest';
import {
  labelTimesFromManagedFields,
  REAPER_POD_ANNOTATIONS,
  TrimError,
  trimCiliumConfig,
  trimCiliumEndpoint,
  trimCiliumNode,
  trimNode,
  trimPod,
  trimPodForReaper,
} from '../../src/cluster/trim.js';
import { defaultConfig } from '../../src/config.js';
import { exemptionFor, MIRROR_POD_ANNOTATION } from '../../src/policy/exemptions.js';

const managedFields = [
  { apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': {} }, manager: 'kubelet', operation: 'Update', time: '2025-06-02T09:14:41Z' },
];

const fullPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'cilium-7xk2p',
    generateName: 'cilium-',
    namespace: 'kube-system',
    uid: 'e31c6c6a-4d28-49bf-85bf-083d7e1a0f5b',
    resourceVersion: '4180405',
    generation: 1,
    creationTimestamp: '2025-06-02T09:14:02Z',
    deletionTimestamp: '2025-06-02T10:00:00Z',
    deletionGracePeriodSeconds: 30,
    labels: { 'k8s-app': 'cilium' },
    annotations: {
      'cilium-migration-guard.io/skip-affinity': 'true',
      'kubectl.kubernetes.io/last-applied-configuration': '{"huge":"json"}',
    },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'cilium', uid: 'e824931a', controller: true, blockOwnerDeletion: true }],
    finalizers: ['example.com/keep'],
    managedFields,
  },
  spec: {
    nodeName: 'node-a',
    hostNetwork: true,
    schedulerName: 'default-scheduler',
    priorityClassName: 'system-node-critical',
    containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium:v1.17.4' }],
    initContainers: [{ name: 'config', image: 'quay.io/cilium/cilium:v1.17.4' }],
    volumes: [{ name: 'bpf', hostPath: { path: '/sys/fs/bpf' } }],
    tolerations: [{ operator: 'Exists' }],
    affinity: { nodeAffinity: {} },
  },
  status: {
    phase: 'Running',
    podIP: '10.0.1.11',
    podIPs: [{ ip: '10.0.1.11' }],
    hostIP: '10.0.1.11',
    startTime: '2025-06-02T09:14:03Z',
    qosClass: 'Burstable',
    conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2025-06-02T09:14:41Z', lastProbeTime: null }],
    initContainerStatuses: [
      {
        name: 'config',
        ready: true,
        restartCount: 0,
        image: 'quay.io/cilium/cilium:v1.17.4',
        state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: '2025-06-02T09:14:05Z', finishedAt: '2025-06-02T09:14:06Z' } },
      },
    ],
    containerStatuses: [
      {
        name: 'cilium-agent',
        ready: true,
        restartCount: 2,
        image: 'quay.io/cilium/cilium:v1.17.4',
        imageID: 'x',
        containerID: 'containerd://1',
        state: { running: { startedAt: '2025-06-02T09:30:00Z' } },
        lastState: { terminated: { exitCode: 1, startedAt: '2025-06-02T09:14:10Z' } },
      },
    ],
  },
};

describe('trimPod', () => {
  it('keeps exactly the listed fields', () => {
    expect(trimPod(fullPod)).toEqual({
      metadata: {
        name: 'cilium-7xk2p',
        namespace: 'kube-system',
        uid: 'e31c6c6a-4d28-49bf-85bf-083d7e1a0f5b',
        resourceVersion: '4180405',
        creationTimestamp: '2025-06-02T09:14:02Z',
        deletionTimestamp: '2025-06-02T10:00:00Z',
        labels: { 'k8s-app': 'cilium' },
        annotations: { 'cilium-migration-guard.io/skip-affinity': 'true' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'cilium', uid: 'e824931a', controller: true }],
      },
      spec: { nodeName: 'node-a', hostNetwork: true, schedulerName: 'default-scheduler', priorityClassName: 'system-node-critical' },
      status: {
        phase: 'Running',
        podIP: '10.0.1.11',
        podIPs: [{ ip: '10.0.1.11' }],
        startTime: '2025-06-02T09:14:03Z',
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2025-06-02T09:14:41Z' }],
        initContainerStatuses: [{ name: 'config', startedAt: '2025-06-02T09:14:05Z' }],
        containerStatuses: [{ name: 'cilium-agent', startedAt: '2025-06-02T09:30:00Z', running: true }],
      },
    });
  });

  it('drops managedFields, containers and the rest of spec/status', () => {
    const pod = trimPod(fullPod) as unknown as Record<string, Record<string, unknown>>;
    expect(pod.metadata).not.toHaveProperty('managedFields');
    expect(pod.metadata).not.toHaveProperty('finalizers');
    expect(pod.spec).not.toHaveProperty('containers');
    expect(pod.spec).not.toHaveProperty('volumes');
    expect(JSON.stringify(pod.status)).not.toContain('restartCount');
    expect(JSON.stringify(pod.status)).not.toContain('lastState');
    expect(JSON.stringify(pod)).not.toContain('quay.io');
  });

  it('does not share or alter the input', () => {
    const input = structuredClone(fullPod);
    const pod = trimPod(input);
    expect(input).toEqual(fullPod);
    expect(pod.metadata.labels).not.toBe(input.metadata.labels);
  });

  it('turns Date timestamps (client-node typed models) into the RFC 3339 strings a watch carries', () => {
    const typed = {
      metadata: { name: 'p', namespace: 'ns', creationTimestamp: new Date('2025-06-02T09:14:02Z') },
      spec: {},
      status: {
        startTime: new Date('2025-06-02T09:14:03.250Z'),
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date('2025-06-02T09:14:41Z') }],
      },
    };
    const pod = trimPod(typed);
    expect(pod.metadata.creationTimestamp).toBe('2025-06-02T09:14:02Z');
    expect(pod.status?.startTime).toBe('2025-06-02T09:14:03.250Z');
    expect(pod.status?.conditions?.[0]?.lastTransitionTime).toBe('2025-06-02T09:14:41Z');
  });

  it('treats an empty nodeName as unscheduled and leaves out fields of the wrong type', () => {
    const pod = trimPod({ metadata: { name: 'p', namespace: 'ns', labels: { a: 'b', n: 3 } }, spec: { nodeName: '', hostNetwork: 'yes' } });
    expect(pod).toEqual({ metadata: { name: 'p', namespace: 'ns', labels: { a: 'b' } }, spec: {} });
  });

  it('gives a pod without spec an empty spec', () => {
    expect(trimPod({ metadata: { name: 'p', namespace: 'ns' } }).spec).toEqual({});
  });
});

describe('trimNode', () => {
  it('keeps metadata, taints, pod CIDRs and the boot ID only', () => {
    const node = trimNode({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'node-a', labels: { cni: 'cilium' }, managedFields, uid: 'u1' },
      spec: {
        podCIDR: '10.244.0.0/24',
        podCIDRs: ['10.244.0.0/24'],
        providerID: 'kwok://node-a',
        taints: [
          { key: 'k', effect: 'NoSchedule' },
          { key: 'node.cilium.io/agent-not-ready', value: 'true', effect: 'NoExecute', timeAdded: '2025-06-02T09:14:41Z' },
          { effect: 'NoSchedule' },
        ],
      },
      status: {
        conditions: [{ type: 'Ready', status: 'True' }],
        images: [{ names: ['x'], sizeBytes: 1 }],
        nodeInfo: { bootID: 'b1', kernelVersion: '6.1', machineID: 'm' },
      },
    });
    expect(node).toEqual({
      metadata: { name: 'node-a', labels: { cni: 'cilium' }, uid: 'u1' },
      spec: {
        taints: [
          { key: 'k', effect: 'NoSchedule' },
          { key: 'node.cilium.io/agent-not-ready', value: 'true', effect: 'NoExecute', timeAdded: '2025-06-02T09:14:41Z' },
        ],
        podCIDRs: ['10.244.0.0/24'],
      },
      status: { nodeInfo: { bootID: 'b1' } },
    });
  });

  it('leaves spec and status out when they hold nothing of interest', () => {
    expect(trimNode({ metadata: { name: 'n' }, spec: { providerID: 'x' }, status: { nodeInfo: {} } })).toEqual({ metadata: { name: 'n' } });
  });

  it("keeps only the NetworkUnavailable condition (cilium-operator's CiliumIsUp), not the kubelet's", () => {
    const node = trimNode({
      metadata: { name: 'n' },
      status: {
        conditions: [
          { type: 'Ready', status: 'True', lastHeartbeatTime: '2025-06-02T10:00:00Z', lastTransitionTime: '2025-06-01T00:00:00Z' },
          {
            type: 'NetworkUnavailable',
            status: 'False',
            reason: 'CiliumIsUp',
            message: 'Cilium is running on this node',
            lastHeartbeatTime: '2025-06-02T09:14:41Z',
            lastTransitionTime: '2025-06-02T09:14:41Z',
          },
        ],
      },
    });
    expect(node.status).toEqual({
      conditions: [{ type: 'NetworkUnavailable', status: 'False', reason: 'CiliumIsUp', lastTransitionTime: '2025-06-02T09:14:41Z' }],
    });
  });

  it('derives when the migration label was set from managedFields, and keeps nothing else of them', () => {
    const fields = [
      {
        manager: 'kubelet',
        operation: 'Update',
        time: '2025-06-01T08:00:00Z',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:kubernetes.io/hostname': {} } } },
      },
      {
        manager: 'kubectl-label',
        operation: 'Update',
        time: '2025-06-02T09:00:00Z',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:metadata': { 'f:labels': { 'f:cni': {} } } },
      },
      {
        manager: 'kubelet',
        operation: 'Update',
        subresource: 'status',
        time: '2025-06-02T11:00:00Z',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:status': { 'f:nodeInfo': { 'f:bootID': {} } } },
      },
    ];
    const node = trimNode({ metadata: { name: 'n', labels: { cni: 'cilium' }, managedFields: fields } }, { labelKeys: ['cni'] });
    expect(node).toEqual({ metadata: { name: 'n', labels: { cni: 'cilium' } }, labelSetAt: { cni: '2025-06-02T09:00:00Z' } });
    expect(JSON.stringify(node)).not.toContain('kubectl-label');
    // Without the key asked for, nothing is derived.
    expect(trimNode({ metadata: { name: 'n', managedFields: fields } })).toEqual({ metadata: { name: 'n' } });
  });

  it('takes the earliest of several owners of the label (shared ownership), and ignores bad entries', () => {
    const owns = (time: unknown) => ({ time, fieldsV1: { 'f:metadata': { 'f:labels': { 'f:io.cilium.migration/cilium-default': {} } } } });
    expect(
      labelTimesFromManagedFields(
        [owns('2025-06-02T10:00:00Z'), owns('2025-06-02T09:30:00Z'), owns('garbage'), owns(undefined), 'x', { fieldsV1: 3 }],
        ['io.cilium.migration/cilium-default'],
      ),
    ).toEqual({
      'io.cilium.migration/cilium-default': '2025-06-02T09:30:00Z',
    });
    expect(labelTimesFromManagedFields([owns(new Date('2025-06-02T09:30:00Z'))], ['io.cilium.migration/cilium-default'])).toEqual({
      'io.cilium.migration/cilium-default': '2025-06-02T09:30:00Z',
    });
    expect(labelTimesFromManagedFields(undefined, ['cni'])).toBeUndefined();
    expect(labelTimesFromManagedFields([owns('2025-06-02T10:00:00Z')], ['cni'])).toBeUndefined();
  });
});

describe('trimCiliumConfig', () => {
  it.each([
    ['true', true],
    ['True', true],
    ['1', true],
    [' true ', true],
    ['false', false],
    ['', false],
    [undefined, false],
  ])('disable-endpoint-crd: %j → %s', (value, expected) => {
    const data = value === undefined ? { 'cluster-name': 'x' } : { 'disable-endpoint-crd': value };
    expect(trimCiliumConfig({ metadata: { name: 'cilium-config', namespace: 'kube-system' }, data })).toEqual({ endpointCRDDisabled: expected });
  });

  it('rejects a ConfigMap without a name', () => {
    expect(() => trimCiliumConfig({ data: {} })).toThrow(/ConfigMap: metadata is missing/);
  });
});

describe('trimCiliumNode', () => {
  it('keeps spec.ipam.podCIDRs and status.ipam.used only', () => {
    const cn = trimCiliumNode({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNode',
      metadata: { name: 'node-a', managedFields },
      spec: {
        addresses: [{ type: 'InternalIP', ip: '10.0.1.11' }],
        ipam: { podCIDRs: ['10.245.1.0/24'], pool: { '10.245.1.5': { owner: 'x' } }, pools: {} },
        eni: {},
      },
      status: { ipam: { used: { '10.245.1.7': { owner: 'default/api', resource: 'default/api' } }, 'operator-status': {} }, eni: {} },
    });
    expect(cn).toEqual({
      metadata: { name: 'node-a' },
      spec: { ipam: { podCIDRs: ['10.245.1.0/24'] } },
      status: { ipam: { used: { '10.245.1.7': { owner: 'default/api', resource: 'default/api' } } } },
    });
  });

  it('omits spec and status when they hold nothing of interest', () => {
    expect(trimCiliumNode({ metadata: { name: 'n' }, spec: { eni: {} }, status: {} })).toEqual({ metadata: { name: 'n' } });
  });
});

describe('trimCiliumEndpoint', () => {
  it('keeps status.state and status.networking', () => {
    const cep = trimCiliumEndpoint({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumEndpoint',
      metadata: { name: 'api-1', namespace: 'default', managedFields },
      status: {
        id: 1234,
        identity: { id: 5678, labels: ['k8s:app=api'] },
        state: 'ready',
        networking: { node: '10.0.1.11', addressing: [{ ipv4: '10.245.1.23' }] },
        policy: { ingress: {} },
      },
    });
    expect(cep).toEqual({
      metadata: { name: 'api-1', namespace: 'default' },
      status: { state: 'ready', networking: { node: '10.0.1.11', addressing: [{ ipv4: '10.245.1.23' }] } },
    });
  });
});

describe('malformed objects', () => {
  it.each([
    ['null', null, /Pod: expected an object, got null/],
    ['a string', 'pod', /Pod: expected an object, got string/],
    ['no metadata', { spec: {} }, /Pod: metadata is missing/],
    ['no name', { metadata: { namespace: 'default' } }, /Pod in namespace "default": metadata\.name is missing or empty/],
    ['empty name', { metadata: { name: '' } }, /metadata\.name is missing or empty/],
    ['a numeric name', { metadata: { name: 7 } }, /metadata\.name is missing or empty/],
  ])('rejects %s with a TrimError', (_label, raw, message) => {
    expect(() => trimPod(raw)).toThrow(TrimError);
    expect(() => trimPod(raw)).toThrow(message);
  });

  it('names the kind in the error', () => {
    expect(() => trimCiliumNode({ metadata: {} })).toThrow(/^CiliumNode: metadata\.name/);
    expect(() => trimNode({})).toThrow(/^Node: metadata is missing/);
  });
});

describe('trimPodForReaper', () => {
  it('keeps the annotations the exemptions read (the static-pod mirror annotation)', () => {
    expect([...REAPER_POD_ANNOTATIONS]).toEqual([MIRROR_POD_ANNOTATION]);
    const pod = trimPodForReaper({
      metadata: { name: 'etcd-n1', namespace: 'kube-system', annotations: { [MIRROR_POD_ANNOTATION]: 'abc', other: 'x' } },
      spec: { nodeName: 'n1' },
    });
    expect(exemptionFor(pod, defaultConfig)).toBe('mirror-pod');
    expect(pod.metadata.annotations).toEqual({ [MIRROR_POD_ANNOTATION]: 'abc' });
  });
});
