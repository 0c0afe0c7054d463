// Pods that are never blocked, whatever state Cilium is in: an ordered list of small named
// predicates (the first that applies names the reason). These keep the cluster from locking up:
// Cilium's own rollout, this webhook's own pods, host-network agents and static pods always pass.

import type { Config } from '../config.js';
import type { PodInfo } from '../cluster/view.js';
import { hasLabels } from './labels.js';

/** kubelet sets this annotation on the API copy of a static pod. */
export const MIRROR_POD_ANNOTATION = 'kubernetes.io/config.mirror';

export type ExemptionReason = 'host-network' | 'mirror-pod' | 'own-pod' | 'cilium-pod' | 'exempt-label' | 'exempt-namespace';

interface Exemption {
  reason: ExemptionReason;
  applies(pod: PodInfo, config: Config): boolean;
}

/** An empty selector exempts nothing here: a misconfigured `{}` must not exempt every pod. */
function labelled(pod: PodInfo, want: Record<string, string>): boolean {
  return Object.keys(want).length > 0 && hasLabels(pod.metadata.labels, want);
}

const EXEMPTIONS: readonly Exemption[] = [
  // Host-network pods do not get a pod IP from any CNI, so they cannot hold a duplicate.
  { reason: 'host-network', applies: (pod) => pod.spec.hostNetwork === true },
  // kubelet runs static pods whatever the API server says; refusing the mirror only hides them.
  { reason: 'mirror-pod', applies: (pod) => pod.metadata.annotations?.[MIRROR_POD_ANNOTATION] !== undefined },
  {
    reason: 'own-pod',
    applies: (pod, config) => pod.metadata.namespace === config.self.namespace && labelled(pod, config.self.labels),
  },
  // Only in Cilium's namespace: a workload elsewhere cannot pass itself off as Cilium by its labels.
  {
    reason: 'cilium-pod',
    applies: (pod, config) => pod.metadata.namespace === config.cilium.namespace && config.cilium.ownPodLabels.some((labels) => labelled(pod, labels)),
  },
  { reason: 'exempt-label', applies: (pod, config) => pod.metadata.labels?.[config.exemptions.label] === 'true' },
  {
    reason: 'exempt-namespace',
    applies: (pod, config) => config.exemptions.namespaces.includes(pod.metadata.namespace ?? ''),
  },
];

export function exemptionFor(pod: PodInfo, config: Config): ExemptionReason | undefined {
  return EXEMPTIONS.find((exemption) => exemption.applies(pod, config))?.reason;
}
