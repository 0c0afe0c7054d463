// The read-only cluster view that every decision reads. Two implementations:
// live informers (cluster/informers.ts) and a snapshot file (cluster/snapshot.ts).
// Objects are trimmed to the fields decisions need (see trim.ts), so the same shapes
// come out of both implementations.

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
  };
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
}

export function isSynced(view: ClusterView): boolean {
  return Object.values(view.syncState()).every(Boolean);
}
