// Builders for the reaper's unit tests: small, explicit cluster views.

import { MemoryClusterView } from '../../src/cluster/memory.js';
import type { CiliumEndpointInfo, CiliumNodeInfo, PodInfo } from '../../src/cluster/view.js';
import { defaultConfig, parseConfig, type Config } from '../../src/config.js';

export const T0 = Date.parse('2025-06-03T10:00:00Z');
/** RFC 3339 at T0 + seconds. */
export const at = (seconds: number): string => new Date(T0 + seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');

export interface PodSpec {
  namespace?: string;
  name: string;
  node?: string;
  ip?: string;
  start?: number;
  owner?: boolean;
  phase?: string;
  hostNetwork?: boolean;
  terminating?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  uid?: string;
}

export function pod(spec: PodSpec): PodInfo {
  const namespace = spec.namespace ?? 'default';
  return {
    metadata: {
      name: spec.name,
      namespace,
      uid: spec.uid ?? `uid-${namespace}-${spec.name}`,
      resourceVersion: '100',
      ...(spec.labels ? { labels: spec.labels } : {}),
      ...(spec.annotations ? { annotations: spec.annotations } : {}),
      ...(spec.terminating ? { deletionTimestamp: at(500) } : {}),
      ...(spec.owner === false
        ? {}
        : { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${spec.name}-rs`, uid: 'rs-uid', controller: true }] }),
    },
    spec: { nodeName: spec.node ?? 'node-a', ...(spec.hostNetwork ? { hostNetwork: true } : {}) },
    status: {
      phase: spec.phase ?? 'Running',
      ...(spec.ip ? { podIP: spec.ip, podIPs: [{ ip: spec.ip }] } : {}),
      ...(spec.start !== undefined ? { startTime: at(spec.start) } : {}),
    },
  };
}

export function agent(node: string, readyAt: number | undefined, name = `cilium-${node}`): PodInfo {
  return {
    metadata: { name, namespace: 'kube-system', uid: `uid-${name}`, labels: { 'k8s-app': 'cilium' } },
    spec: { nodeName: node, hostNetwork: true },
    status: {
      phase: 'Running',
      startTime: at(0),
      conditions: [readyAt === undefined ? { type: 'Ready', status: 'False' } : { type: 'Ready', status: 'True', lastTransitionTime: at(readyAt) }],
    },
  };
}

export function cep(namespace: string, name: string, ips: string[], state = 'ready'): CiliumEndpointInfo {
  return { metadata: { name, namespace }, status: { state, networking: { addressing: ips.map((ipv4) => ({ ipv4 })) } } };
}

export function ciliumNode(name: string, extra: Partial<CiliumNodeInfo> = {}): CiliumNodeInfo {
  return { metadata: { name }, ...extra };
}

export interface World {
  nodes?: Array<{ name: string; migrated?: boolean; ciliumNode?: CiliumNodeInfo | false; agentReadyAt?: number | undefined | null }>;
  pods?: PodInfo[];
  ceps?: CiliumEndpointInfo[];
}

/** A synced view. Each node defaults to migrated, with a CiliumNode and an agent Ready at T0+30s. */
export function world(w: World, config: Config = defaultConfig): MemoryClusterView {
  const view = new MemoryClusterView(config, { synced: true });
  for (const n of w.nodes ?? [{ name: 'node-a' }]) {
    view.upsertNode({ metadata: { name: n.name, uid: `uid-${n.name}`, labels: n.migrated === false ? {} : { cni: 'cilium' } } });
    if (n.ciliumNode !== false) view.upsertCiliumNode(n.ciliumNode ?? ciliumNode(n.name));
    // null: no agent pod at all; undefined: an agent that is not Ready.
    if (n.agentReadyAt !== null) view.upsertPod(agent(n.name, 'agentReadyAt' in n ? n.agentReadyAt : 30));
  }
  for (const p of w.pods ?? []) view.upsertPod(p);
  for (const c of w.ceps ?? []) view.upsertCiliumEndpoint(c);
  return view;
}

export function configWith(reaper: Record<string, unknown>): Config {
  return parseConfig({ reaper });
}

/** "now" well past every grace period in these tests. */
export const LATER = new Date(T0 + 3_600_000);
