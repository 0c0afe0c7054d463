// An in-memory ClusterView over trimmed objects, indexed for O(1) lookups. The snapshot loader
// fills it once; the live informers feed it add/update/delete events.
//
// Pods are held in three independent indexes, because in live mode each is fed by its own
// informer and a delete from one informer must not remove the pod from another:
//   - 'agent'       Cilium agent pods (config.cilium.namespace + all of config.cilium.agentLabels), by node;
//   - 'unscheduled' pods without spec.nodeName, by namespace/name (the scheduler's view);
//   - 'all'         every pod fed to it, by node (the reaper's view; live mode fills it only with
//                   { withReaperCaches: true }).
// An agent pod is briefly unscheduled (DaemonSet pods are bound by the scheduler): when it is
// bound, the unscheduled informer reports a delete while the agent informer reports an update.
// upsertPod(pod) without a feed offers the pod to every index, each applying its own filter
// (the snapshot's case: the file is the whole truth).
//
// Stored objects are frozen: a decision that mutated a cached pod would corrupt the cache.

import type { Config } from '../config.js';
import { deepFreeze } from '../objects.js';
import { hasLabels } from '../policy/labels.js';
import { NodeHistory, type NodeMemory } from './history.js';
import type { AnyCacheName, CiliumConfigInfo, CiliumEndpointInfo, CiliumNodeInfo, FullClusterView, NodeInfo, PodInfo, SyncState } from './view.js';

export type PodFeed = 'agent' | 'unscheduled' | 'all';

export function isAgentPod(pod: PodInfo, cilium: Config['cilium']): boolean {
  if (pod.metadata.namespace !== cilium.namespace) return false;
  return hasLabels(pod.metadata.labels, cilium.agentLabels);
}

function key(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

const podNamespace = (pod: PodInfo): string | undefined => pod.metadata.namespace;

/** Pods by namespace/name with a secondary index by spec.nodeName. */
class PodsByNode {
  private readonly byKey = new Map<string, PodInfo>();
  private readonly byNode = new Map<string, Map<string, PodInfo>>();

  upsert(pod: PodInfo): void {
    const k = key(pod.metadata.namespace, pod.metadata.name);
    this.delete(k);
    this.byKey.set(k, pod);
    const node = pod.spec.nodeName;
    if (node) {
      let onNode = this.byNode.get(node);
      if (!onNode) this.byNode.set(node, (onNode = new Map()));
      onNode.set(k, pod);
    }
  }

  delete(k: string): void {
    const old = this.byKey.get(k);
    if (!old) return;
    this.byKey.delete(k);
    const node = old.spec.nodeName;
    const onNode = node ? this.byNode.get(node) : undefined;
    if (node && onNode) {
      onNode.delete(k);
      if (onNode.size === 0) this.byNode.delete(node);
    }
  }

  get(k: string): PodInfo | undefined {
    return this.byKey.get(k);
  }

  on(node: string): PodInfo[] {
    const onNode = this.byNode.get(node);
    return onNode ? [...onNode.values()] : [];
  }

  all(): PodInfo[] {
    return [...this.byKey.values()];
  }

  get size(): number {
    return this.byKey.size;
  }
}

export interface MemoryClusterViewOptions {
  /** Initial sync state of every cache: true for a snapshot (complete by definition), false for informers. */
  synced?: boolean;
  /** Clock of the node memory (when a reboot was seen); injectable for tests. */
  now?: () => Date;
}

export class MemoryClusterView implements FullClusterView {
  private readonly cilium: Config['cilium'];
  private readonly nodeMap = new Map<string, NodeInfo>();
  private readonly ciliumNodeMap = new Map<string, CiliumNodeInfo>();
  private readonly cepMap = new Map<string, CiliumEndpointInfo>();
  private readonly agents = new PodsByNode();
  private readonly unscheduled = new Map<string, PodInfo>();
  private readonly allPods = new PodsByNode();
  private readonly history: NodeHistory;
  private ciliumConfigInfo: CiliumConfigInfo | undefined;
  private readonly synced: SyncState;

  constructor(config: Pick<Config, 'cilium'> & Partial<Pick<Config, 'nodeLabel'>>, options: MemoryClusterViewOptions = {}) {
    this.cilium = config.cilium;
    const initial = options.synced ?? true;
    this.synced = {
      nodes: initial,
      ciliumnodes: initial,
      agentPods: initial,
      unscheduledPods: initial,
      pods: initial,
      ciliumEndpoints: initial,
      ciliumConfig: initial,
    };
    this.history = new NodeHistory(options.now, config.nodeLabel);
  }

  // --- feeding -------------------------------------------------------------------------------

  upsertNode(node: NodeInfo): void {
    this.nodeMap.set(node.metadata.name, deepFreeze(node));
    this.history.observeNode(node, this.agents.on(node.metadata.name));
  }

  deleteNode(name: string): void {
    this.nodeMap.delete(name);
    this.history.forget(name);
  }

  setCiliumConfig(info: CiliumConfigInfo | undefined): void {
    this.ciliumConfigInfo = info ? Object.freeze({ ...info }) : undefined;
  }

  upsertCiliumNode(cn: CiliumNodeInfo): void {
    this.ciliumNodeMap.set(cn.metadata.name, deepFreeze(cn));
  }

  deleteCiliumNode(name: string): void {
    this.ciliumNodeMap.delete(name);
  }

  upsertCiliumEndpoint(cep: CiliumEndpointInfo): void {
    this.cepMap.set(key(cep.metadata.namespace, cep.metadata.name), deepFreeze(cep));
  }

  deleteCiliumEndpoint(namespace: string | undefined, name: string): void {
    this.cepMap.delete(key(namespace, name));
  }

  /**
   * Offers the pod to one index (`feed`), or to every index when no feed is given. Each index
   * applies its own filter, so an update that makes a pod stop matching (bound, relabelled)
   * removes it from that index.
   */
  upsertPod(pod: PodInfo, feed?: PodFeed): void {
    deepFreeze(pod);
    const k = key(pod.metadata.namespace, pod.metadata.name);
    if (!feed || feed === 'agent') {
      if (isAgentPod(pod, this.cilium)) {
        this.agents.upsert(pod);
        this.history.observeAgent(pod, pod.spec.nodeName ? this.nodeMap.get(pod.spec.nodeName) : undefined);
      } else {
        this.agents.delete(k);
        this.history.forgetAgent(podNamespace(pod), pod.metadata.name);
      }
    }
    if (!feed || feed === 'unscheduled') {
      if (!pod.spec.nodeName) this.unscheduled.set(k, pod);
      else this.unscheduled.delete(k);
    }
    if (!feed || feed === 'all') this.allPods.upsert(pod);
  }

  /** Removes the pod from one index (`feed`), or from every index when no feed is given. */
  deletePod(namespace: string | undefined, name: string, feed?: PodFeed): void {
    const k = key(namespace, name);
    if (!feed || feed === 'agent') {
      this.agents.delete(k);
      this.history.forgetAgent(namespace, name);
    }
    if (!feed || feed === 'unscheduled') this.unscheduled.delete(k);
    if (!feed || feed === 'all') this.allPods.delete(k);
  }

  setSynced(cache: AnyCacheName, value: boolean): void {
    this.synced[cache] = value;
  }

  // --- ClusterView ---------------------------------------------------------------------------

  node(name: string): NodeInfo | undefined {
    return this.nodeMap.get(name);
  }

  ciliumNode(name: string): CiliumNodeInfo | undefined {
    return this.ciliumNodeMap.get(name);
  }

  agentPodsOn(nodeName: string): PodInfo[] {
    return this.agents.on(nodeName);
  }

  agentPods(): PodInfo[] {
    return this.agents.all();
  }

  unscheduledPod(namespace: string, name: string): PodInfo | undefined {
    return this.unscheduled.get(key(namespace, name));
  }

  syncState(): SyncState {
    return { ...this.synced };
  }

  nodeMemory(name: string): NodeMemory | undefined {
    return this.history.snapshot(name);
  }

  // --- extras --------------------------------------------------------------------------------

  podsOn(nodeName: string): PodInfo[] {
    return this.allPods.on(nodeName);
  }

  pods(): PodInfo[] {
    return this.allPods.all();
  }

  ciliumEndpoint(namespace: string, name: string): CiliumEndpointInfo | undefined {
    return this.cepMap.get(key(namespace, name));
  }

  nodes(): NodeInfo[] {
    return [...this.nodeMap.values()];
  }

  ciliumConfig(): CiliumConfigInfo | undefined {
    return this.ciliumConfigInfo;
  }

  /** Object counts per index, for logs and metrics. */
  sizes(): { nodes: number; ciliumNodes: number; agentPods: number; unscheduledPods: number; pods: number; ciliumEndpoints: number } {
    return {
      nodes: this.nodeMap.size,
      ciliumNodes: this.ciliumNodeMap.size,
      agentPods: this.agents.size,
      unscheduledPods: this.unscheduled.size,
      pods: this.allPods.size,
      ciliumEndpoints: this.cepMap.size,
    };
  }
}
