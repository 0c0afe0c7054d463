// Cilium that a cloud runs: AKS "Azure CNI powered by Cilium" and GKE Dataplane V2. This tool guards
// a migration *to* a Cilium you install; a cloud-run Cilium is not that (Dataplane V2 cannot be
// migrated to in place, AKS-managed Cilium is not bring-your-own), so such a Cilium is never given a
// role, and a cluster where one runs gets no affinity patches at all. Facts and sources:
// test/fixtures/SOURCES.md, section "Cloud-managed dataplanes".
//
// Pure: a DaemonSet's identity → which managed dataplane it is; a cluster view → which managed
// dataplane runs there (from the Cilium agent-pod cache, which lists pods labelled k8s-app=cilium in
// Cilium's namespace with their ownerReferences).

import type { ClusterView, PodInfo } from './view.js';

export type ManagedDataplaneKind = 'gke-dataplane-v2' | 'aks-managed-cilium';

/** Where clouds run their own Cilium: not configurable, the clouds decide it. */
export const MANAGED_DATAPLANE_NAMESPACE = 'kube-system';
/** GKE Dataplane V2's Cilium agent DaemonSet (its pods are labelled k8s-app=cilium). */
export const GKE_ANETD = 'anetd';
/** AKS labels the objects it manages with this (value "aks"); not Cilium-specific on its own. */
export const AKS_MANAGED_BY = { key: 'kubernetes.azure.com/managedby', value: 'aks' } as const;
/** AKS puts this on the pod template of its Cilium agent (and operator). */
export const AKS_EBPF_DATAPLANE = { key: 'kubernetes.azure.com/ebpf-dataplane', value: 'cilium' } as const;

export const MANAGED_DATAPLANE_NAMES: Record<ManagedDataplaneKind, string> = {
  'gke-dataplane-v2': 'GKE Dataplane V2',
  'aks-managed-cilium': 'AKS Azure CNI powered by Cilium',
};

export interface DaemonSetIdentity {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  templateLabels: Record<string, string>;
}

const has = (labels: Record<string, string>, label: { key: string; value: string }) => labels[label.key] === label.value;

/**
 * Is this DaemonSet a cloud's own Cilium? GKE: kube-system/anetd. AKS: in kube-system, its pod
 * template (or itself) labelled kubernetes.azure.com/ebpf-dataplane=cilium, or labelled
 * kubernetes.azure.com/managedby=aks while being Cilium's agent (named cilium, or k8s-app=cilium).
 * Other AKS-managed DaemonSets (azure-cns, ...) are not Cilium and keep their preset role.
 */
export function managedDataplaneDaemonSet(ds: DaemonSetIdentity): ManagedDataplaneKind | undefined {
  if (ds.namespace !== MANAGED_DATAPLANE_NAMESPACE) return undefined;
  if (ds.name === GKE_ANETD) return 'gke-dataplane-v2';
  if (has(ds.templateLabels, AKS_EBPF_DATAPLANE) || has(ds.labels, AKS_EBPF_DATAPLANE)) return 'aks-managed-cilium';
  const ciliumAgent = ds.name === 'cilium' || ds.labels['k8s-app'] === 'cilium' || ds.templateLabels['k8s-app'] === 'cilium';
  if (ciliumAgent && has(ds.labels, AKS_MANAGED_BY)) return 'aks-managed-cilium';
  return undefined;
}

export interface ManagedDataplane {
  kind: ManagedDataplaneKind;
  /** What was seen, for logs and messages: "kube-system/anetd-x7k2p (DaemonSet anetd)". */
  evidence: string;
}

function podManagedDataplane(pod: PodInfo): ManagedDataplaneKind | undefined {
  if (pod.metadata.namespace !== MANAGED_DATAPLANE_NAMESPACE) return undefined;
  const owner = pod.metadata.ownerReferences?.find((ref) => ref.kind === 'DaemonSet');
  if (owner?.name === GKE_ANETD) return 'gke-dataplane-v2';
  const labels = pod.metadata.labels ?? {};
  if (has(labels, AKS_EBPF_DATAPLANE) || (has(labels, AKS_MANAGED_BY) && labels['k8s-app'] === 'cilium')) return 'aks-managed-cilium';
  return undefined;
}

/**
 * The managed dataplane the view shows, if any: the first agent pod (in a stable order) that is
 * GKE's anetd or AKS's Cilium. Reads only the agent-pod cache, so it sees them only when
 * cilium.namespace is kube-system (the default) and their pods carry cilium.agentLabels.
 */
export function managedDataplaneIn(view: Pick<ClusterView, 'agentPods'>): ManagedDataplane | undefined {
  // One pass, no sort: /readyz and every DaemonSet request ask, and there is one agent pod per node.
  let first: { pod: PodInfo; kind: ManagedDataplaneKind } | undefined;
  for (const pod of view.agentPods()) {
    const kind = podManagedDataplane(pod);
    if (kind && (!first || pod.metadata.name < first.pod.metadata.name)) first = { pod, kind };
  }
  if (!first) return undefined;
  const { pod, kind } = first;
  const owner = pod.metadata.ownerReferences?.find((ref) => ref.kind === 'DaemonSet');
  return { kind, evidence: `pod ${pod.metadata.namespace}/${pod.metadata.name}${owner ? ` of DaemonSet ${owner.name}` : ''}` };
}

/** One sentence for logs, /readyz, report and warnings. */
export function describeManagedDataplane(found: ManagedDataplane): string {
  return (
    `${MANAGED_DATAPLANE_NAMES[found.kind]} runs this cluster's Cilium (${found.evidence}): ` +
    'the cloud manages it, so the migration this tool guards does not apply and no DaemonSet affinity is changed'
  );
}
