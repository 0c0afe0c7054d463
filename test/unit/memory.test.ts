import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config.js';
import { MemoryClusterView, isAgentPod } from '../../src/cluster/memory.js';
import { isReaperSynced, isSynced, type PodInfo } from '../../src/cluster/view.js';

function pod(namespace: string, name: string, nodeName?: string, labels: Record<string, string> = {}): PodInfo {
  return { metadata: { name, namespace, labels }, spec: nodeName ? { nodeName } : {} };
}
const AGENT = { 'k8s-app': 'cilium' };

describe('isAgentPod', () => {
  it.each([
    ['in the Cilium namespace with all agent labels', pod('kube-system', 'a', 'n', { 'k8s-app': 'cilium', extra: 'x' }), true],
    ['in another namespace', pod('default', 'a', 'n', AGENT), false],
    ['missing a label', pod('kube-system', 'a', 'n', { 'k8s-app': 'cilium-envoy' }), false],
  ])('%s → %s', (_label, p, expected) => {
    expect(isAgentPod(p, defaultConfig.cilium)).toBe(expected);
  });
});

describe('MemoryClusterView', () => {
  it('starts synced unless told otherwise', () => {
    expect(Object.values(new MemoryClusterView(defaultConfig).syncState()).every(Boolean)).toBe(true);
    const live = new MemoryClusterView(defaultConfig, { synced: false });
    const none = { nodes: false, ciliumnodes: false, agentPods: false, unscheduledPods: false };
    expect(live.syncState()).toEqual({ ...none, pods: false, ciliumEndpoints: false, ciliumConfig: false });
    live.setSynced('nodes', true);
    live.setSynced('pods', true);
    expect(live.syncState()).toEqual({ ...none, nodes: true, pods: true, ciliumEndpoints: false, ciliumConfig: false });
    expect(isSynced(live)).toBe(false);
    expect(isReaperSynced(live)).toBe(false);
  });

  it('upserts and deletes nodes, CiliumNodes and CiliumEndpoints', () => {
    const view = new MemoryClusterView(defaultConfig);
    view.upsertNode({ metadata: { name: 'n1', labels: { cni: 'cilium' } } });
    view.upsertNode({ metadata: { name: 'n1', labels: {} } });
    view.upsertCiliumNode({ metadata: { name: 'n1' } });
    view.upsertCiliumEndpoint({ metadata: { name: 'p', namespace: 'default' }, status: { state: 'ready' } });
    expect(view.node('n1')?.metadata.labels).toEqual({});
    expect(view.nodes()).toHaveLength(1);
    expect(view.ciliumNode('n1')).toBeDefined();
    expect(view.ciliumEndpoint('default', 'p')?.status?.state).toBe('ready');
    expect(view.ciliumEndpoint('other', 'p')).toBeUndefined();
    view.deleteNode('n1');
    view.deleteCiliumNode('n1');
    view.deleteCiliumEndpoint('default', 'p');
    expect(view.node('n1')).toBeUndefined();
    expect(view.ciliumNode('n1')).toBeUndefined();
    expect(view.ciliumEndpoint('default', 'p')).toBeUndefined();
    expect(view.sizes()).toEqual({ nodes: 0, ciliumNodes: 0, agentPods: 0, unscheduledPods: 0, pods: 0, ciliumEndpoints: 0 });
  });

  it('moves a pod between indexes as it is bound and re-labelled (no feed: every index)', () => {
    const view = new MemoryClusterView(defaultConfig);
    view.upsertPod(pod('kube-system', 'cilium-x', undefined, AGENT));
    expect(view.unscheduledPod('kube-system', 'cilium-x')).toBeDefined();
    expect(view.podsOn('n1')).toEqual([]);

    view.upsertPod(pod('kube-system', 'cilium-x', 'n1', AGENT));
    expect(view.unscheduledPod('kube-system', 'cilium-x')).toBeUndefined();
    expect(view.agentPodsOn('n1').map((p) => p.metadata.name)).toEqual(['cilium-x']);
    expect(view.podsOn('n1').map((p) => p.metadata.name)).toEqual(['cilium-x']);

    view.upsertPod(pod('kube-system', 'cilium-x', 'n1', {}));
    expect(view.agentPodsOn('n1')).toEqual([]);
    expect(view.podsOn('n1')).toHaveLength(1);

    view.deletePod('kube-system', 'cilium-x');
    expect(view.podsOn('n1')).toEqual([]);
    expect(view.sizes().pods).toBe(0);
  });

  it('keeps the indexes of separate feeds apart (an unscheduled-informer delete keeps the agent)', () => {
    const view = new MemoryClusterView(defaultConfig, { synced: false });
    // A DaemonSet pod is created unscheduled: both the agent and the unscheduled informers see it.
    view.upsertPod(pod('kube-system', 'cilium-x', undefined, AGENT), 'agent');
    view.upsertPod(pod('kube-system', 'cilium-x', undefined, AGENT), 'unscheduled');
    // It gets bound: the agent informer sees an update, the unscheduled informer a delete.
    view.upsertPod(pod('kube-system', 'cilium-x', 'n1', AGENT), 'agent');
    view.deletePod('kube-system', 'cilium-x', 'unscheduled');
    expect(view.agentPodsOn('n1').map((p) => p.metadata.name)).toEqual(['cilium-x']);
    expect(view.unscheduledPod('kube-system', 'cilium-x')).toBeUndefined();
    // The 'all' index is fed only by its own informer.
    expect(view.podsOn('n1')).toEqual([]);
  });

  it('indexes several agent pods on one node and moves them when nodeName changes', () => {
    const view = new MemoryClusterView(defaultConfig);
    view.upsertPod(pod('kube-system', 'a', 'n1', AGENT), 'agent');
    view.upsertPod(pod('kube-system', 'b', 'n1', AGENT), 'agent');
    expect(
      view
        .agentPodsOn('n1')
        .map((p) => p.metadata.name)
        .sort(),
    ).toEqual(['a', 'b']);
    view.upsertPod(pod('kube-system', 'b', 'n2', AGENT), 'agent');
    expect(view.agentPodsOn('n1').map((p) => p.metadata.name)).toEqual(['a']);
    expect(view.agentPodsOn('n2').map((p) => p.metadata.name)).toEqual(['b']);
    view.deletePod('kube-system', 'a', 'agent');
    expect(view.agentPodsOn('n1')).toEqual([]);
  });

  it('freezes what it stores', () => {
    const view = new MemoryClusterView(defaultConfig);
    view.upsertPod(pod('default', 'p', 'n1', { app: 'web' }));
    const stored = view.podsOn('n1')[0]!;
    expect(Object.isFrozen(stored)).toBe(true);
    expect(() => {
      (stored.metadata.labels as Record<string, string>).app = 'changed';
    }).toThrow(TypeError);
  });
});
