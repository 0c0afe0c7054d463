// The read-only cluster view that every decision reads: the whole contract lives here. One
// implementation (MemoryClusterView in memory.ts), fed either by live informers
// (cluster/informers.ts) or once from a snapshot file (cluster/snapshot.ts). Objects are trimmed
// to the fields decisions need (see trim.ts), so the same shapes come out of both feeds.

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
    /**
     * The containers' ports' hostPort values, only when the pod is not on the host network and
     * declares one (the lint's aks-fqdn-kube-proxy check reads them; report builds that input from
     * the cache instead of listing every pod again). Absent on almost every pod.
     */
    hostPorts?: number[];
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

/** Caches the webhooks read; they gate the webhook's readiness. */
export type CacheName = 'nodes' | 'ciliumnodes' | 'agentPods' | 'unscheduledPods';
/** Caches only the reaper needs; they do not gate the webhook's readiness. */
export type ReaperCacheName = 'pods' | 'ciliumEndpoints' | 'ciliumConfig';
export type AnyCacheName = CacheName | ReaperCacheName;

export const CACHE_NAMES: readonly CacheName[] = ['nodes', 'ciliumnodes', 'agentPods', 'unscheduledPods'];
export const REAPER_CACHE_NAMES: readonly ReaperCacheName[] = ['pods', 'ciliumEndpoints', 'ciliumConfig'];

/** Whether each cache has completed its initial list (webhook caches first, then the reaper's). */
export type SyncState = Record<AnyCacheName, boolean>;

/** What the reaper reads from Cilium's own ConfigMap (cilium-config in Cilium's namespace). */
export interface CiliumConfigInfo {
  /** disable-endpoint-crd: "true": the agent writes no CiliumEndpoints, so every pod would look unmanaged. */
  endpointCRDDisabled: boolean;
}

/** What the webhooks read. */
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
  syncState(): SyncState;
  /** What the view remembers about the node (reboots seen, agent Ready states seen): see history.ts. */
  nodeMemory?(name: string): NodeMemory | undefined;
}

/** The extras beyond ClusterView that the reaper (and status pages) read. */
export interface ClusterViewExtras {
  /** Every known pod bound to this node (needs the reaper caches in live mode). */
  podsOn(nodeName: string): PodInfo[];
  /** Every known pod, bound or not (needs the reaper caches in live mode). */
  pods(): PodInfo[];
  ciliumEndpoint(namespace: string, name: string): CiliumEndpointInfo | undefined;
  nodes(): NodeInfo[];
  /** Cilium's ConfigMap as far as the reaper reads it; undefined when there is none (or it is not watched). */
  ciliumConfig(): CiliumConfigInfo | undefined;
}

export type FullClusterView = ClusterView & ClusterViewExtras;

/** The webhook caches' part of the sync state (what the webhook's readiness reports). */
export function webhookSyncState(view: ClusterView): Record<CacheName, boolean> {
  const state = view.syncState();
  return Object.fromEntries(CACHE_NAMES.map((name) => [name, state[name]])) as Record<CacheName, boolean>;
}

/** Every cache the webhooks read has synced. */
export function isSynced(view: ClusterView): boolean {
  const state = view.syncState();
  return CACHE_NAMES.every((name) => state[name]);
}

/** Every cache the reaper reads (the webhooks' and its own) has synced. */
export function isReaperSynced(view: ClusterView): boolean {
  return Object.values(view.syncState()).every(Boolean);
}
