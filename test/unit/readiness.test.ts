import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config.js';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import { ciliumReadiness, type CiliumReadiness } from '../../src/cluster/readiness.js';
import type { PodInfo } from '../../src/cluster/view.js';

const NODE = 'node-a';

function agent(name: string, opts: { node?: string; ready?: boolean; terminating?: boolean; readySince?: string } = {}): PodInfo {
  const ready = opts.ready ?? true;
  return {
    metadata: {
      name,
      namespace: 'kube-system',
      labels: { 'k8s-app': 'cilium' },
      ...(opts.terminating ? { deletionTimestamp: '2025-06-02T10:00:00Z' } : {}),
    },
    spec: { nodeName: opts.node ?? NODE, hostNetwork: true },
    status: {
      phase: 'Running',
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: opts.readySince ?? '2025-06-02T09:14:41Z' }],
    },
  };
}

function viewWith(opts: { ciliumNode?: boolean; pods?: PodInfo[] }): MemoryClusterView {
  const view = new MemoryClusterView(defaultConfig);
  view.upsertNode({ metadata: { name: NODE, labels: { cni: 'cilium' } } });
  if (opts.ciliumNode ?? true) view.upsertCiliumNode({ metadata: { name: NODE }, spec: { ipam: { podCIDRs: ['10.245.1.0/24'] } } });
  for (const pod of opts.pods ?? []) view.upsertPod(pod);
  return view;
}

describe('ciliumReadiness', () => {
  it.each<[string, { ciliumNode?: boolean; pods?: PodInfo[] }, CiliumReadiness]>([
    [
      'a Ready agent and a CiliumNode: ready',
      { pods: [agent('cilium-1')] },
      {
        ready: true,
        gaps: [],
        agentPod: 'kube-system/cilium-1',
        readySince: '2025-06-02T09:14:41Z',
        ciliumSince: '2025-06-02T09:14:41Z',
        ciliumSinceFrom: 'first-ready-seen',
      },
    ],
    [
      'no CiliumNode',
      { ciliumNode: false, pods: [agent('cilium-1')] },
      {
        ready: false,
        gaps: ['no-cilium-node'],
        agentPod: 'kube-system/cilium-1',
        readySince: '2025-06-02T09:14:41Z',
        ciliumSince: '2025-06-02T09:14:41Z',
        ciliumSinceFrom: 'first-ready-seen',
      },
    ],
    ['no agent pod', { pods: [] }, { ready: false, gaps: ['no-agent-pod'] }],
    ['no CiliumNode and no agent pod', { ciliumNode: false }, { ready: false, gaps: ['no-cilium-node', 'no-agent-pod'] }],
    ['agent not Ready', { pods: [agent('cilium-1', { ready: false })] }, { ready: false, gaps: ['agent-not-ready'], agentPod: 'kube-system/cilium-1' }],
    [
      'agent Ready but terminating (deletionTimestamp)',
      { pods: [agent('cilium-1', { terminating: true })] },
      { ready: false, gaps: ['agent-terminating'], agentPod: 'kube-system/cilium-1' },
    ],
    [
      'two agents, one terminating, one Ready: ready',
      { pods: [agent('cilium-old', { terminating: true, readySince: '2025-06-01T00:00:00Z' }), agent('cilium-new', { readySince: '2025-06-02T09:50:00Z' })] },
      {
        ready: true,
        gaps: [],
        agentPod: 'kube-system/cilium-new',
        readySince: '2025-06-02T09:50:00Z',
        ciliumSince: '2025-06-02T09:50:00Z',
        ciliumSinceFrom: 'first-ready-seen',
      },
    ],
    [
      'two agents, one terminating, one not Ready yet: the live one is reported',
      { pods: [agent('cilium-old', { terminating: true }), agent('cilium-new', { ready: false })] },
      { ready: false, gaps: ['agent-not-ready'], agentPod: 'kube-system/cilium-new' },
    ],
    ['a Ready agent on ANOTHER node does not count', { pods: [agent('cilium-b', { node: 'node-b' })] }, { ready: false, gaps: ['no-agent-pod'] }],
    [
      'a Ready pod with the agent labels in another namespace does not count',
      { pods: [{ ...agent('cilium-x'), metadata: { name: 'cilium-x', namespace: 'default', labels: { 'k8s-app': 'cilium' } } }] },
      { ready: false, gaps: ['no-agent-pod'] },
    ],
    [
      'a Ready pod in the Cilium namespace without the agent labels does not count',
      { pods: [{ ...agent('operator'), metadata: { name: 'operator', namespace: 'kube-system', labels: { 'io.cilium/app': 'operator' } } }] },
      { ready: false, gaps: ['no-agent-pod'] },
    ],
  ])('%s', (_label, setup, expected) => {
    expect(ciliumReadiness(viewWith(setup), NODE, defaultConfig)).toEqual(expected);
  });
});
