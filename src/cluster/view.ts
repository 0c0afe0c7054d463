// The read-only cluster view that every decision reads. Two implementations:
// live informers (cluster/informers.ts) and a snapshot file (cluster/snapshot.ts).
// Objects are trimmed to the fields decisions need (see trim.ts), so the same shapes
// come out of both implementations.

import type { NodeMemory } from './history.js';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }>;
}

export interface Taint {
  key: string;
  value?: string;
  effect: string;
  timeAdded?: string;
}

export interface NodeCondition {
  type: string;
  status: string;
  reason?: string;
  lastTransitionTime?: string;
}

export interface NodeInfo {
  metadata: ObjectMeta;
  spec?: {
    /** Node taints: Cilium's agent-not-ready taint is one of the readiness signals. */
    taints?: Taint[];
    podCIDRs?: string[];
  };
  status?: {
    /** The kubelet reports a new bootID after every reboot (status.nodeInfo.bootID). */
    nodeInfo?: { bootID?: string };
    /** Only NetworkUnavailable (cilium-operator's CiliumIsUp record): see readiness.ts. */
    conditions?: NodeCondition[];
  };
  /**
   * Derived from metadata.managedFields (which is not kept): for each label key asked for when
   * trimming (the migration label), the earliest `time` of a managedFields entry whose fieldsV1
   * owns `f:metadata.f:labels.f:<key>`. API server clock, second precision; an upper bound on
   * when the label got its current value (an entry's time moves when its manager changes any of
   * its fields). Absent when no entry owns the label (e.g. `kubectl get -o yaml` hides managedFields).
   */
  labelSetAt?: Record<string, string>;
}

export interface CiliumNodeInfo {
  metadata: ObjectMeta;
  spec?: {
    ipam?: { podCIDRs?: string[]; pool?: Record<string, unknown> };
  };
  status?: {
    ipam?: { used?: Record<string, { owner?: string; resource?: string }> };
  };
}

export interface PodCondition {
  type: string;
  status: string;
  lastTransitionTime?: string;
}

/** A container's current state, trimmed to when it started (running or terminated). */
export interface ContainerStart {
  name: string;
  /** state.running.startedAt, else state.terminated.startedAt. */
  startedAt?: string;
  running?: boolean;
}

/** A pod trimmed to what placement and reaping decisions read. */
export interface PodInfo {
  metadata: ObjectMeta;
  spec: {
    nodeName?: string;
    hostNetwork?: boolean;
    schedulerName?: string;
    priorityClassName?: string;
  };
  status?: {
    phase?: string;
    podIP?: string;
    podIPs?: Array<{ ip: string }>;
    startTime?: string;
    conditions?: PodCondition[];
    /** status.initContainerStatuses / containerStatuses, trimmed (agent readiness reads when its config was built). */
    initContainerStatuses?: ContainerStart[];
    containerStatuses?: ContainerStart[];
  };
}

export interface CiliumEndpointInfo {
  metadata: ObjectMeta;
  status?: {
    state?: string;
    networking?: { node?: string; addressing?: Array<{ ipv4?: string; ipv6?: string }> };
  };
}

export type CacheName = 'nodes' | 'ciliumnodes' | 'agentPods' | 'unscheduledPods';

export interface ClusterView {
  node(name: string): NodeInfo | undefined;
  ciliumNode(name: string): CiliumNodeInfo | undefined;
  /** Cilium agent pods (per the configured selector) whose spec.nodeName is this node. */
  agentPodsOn(nodeName: string): PodInfo[];
  /** Every cached Cilium agent pod, bound or not (to recognise a cloud-managed Cilium). */
  agentPods(): PodInfo[];
  /** A pod not yet bound to a node (the scheduler's view), for pods/binding requests. */
  unscheduledPod(namespace: string, name: string): PodInfo | undefined;
  /** Whether each cache has completed its initial list. A snapshot is always synced. */
  syncState(): Record<CacheName, boolean>;
  /** What the view remembers about the node (reboots seen, agent Ready states seen): see history.ts. */
  nodeMemory?(name: string): NodeMemory | undefined;
}

export function isSynced(view: ClusterView): boolean {
  return Object.values(view.syncState()).every(Boolean);
}
