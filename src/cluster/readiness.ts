// "Is Cilium ready on node N?" — the same test cilium-operator applies before it removes the
// node.cilium.io/agent-not-ready taint (a Ready agent pod on the node with no deletionTimestamp),
// plus the node's CiliumNode object, which the agent creates early in its start-up.

import type { ClusterView, PodInfo } from './view.js';

export type ReadinessGap = 'no-cilium-node' | 'no-agent-pod' | 'agent-not-ready' | 'agent-terminating';

export interface CiliumReadiness {
  ready: boolean;
  /** Every condition that failed, in a stable order; empty when ready. */
  gaps: ReadinessGap[];
  /** The agent pod the verdict is about ("namespace/name"), when there is one. */
  agentPod?: string;
  /** When the Ready agent pod last turned Ready (for the reaper's "started before Cilium"). */
  readySince?: string;
}

export function isPodReady(pod: PodInfo): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function readyTransition(pod: PodInfo): string | undefined {
  return pod.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True')?.lastTransitionTime;
}

function podRef(pod: PodInfo): string {
  return `${pod.metadata.namespace ?? ''}/${pod.metadata.name}`;
}

export function ciliumReadiness(view: ClusterView, nodeName: string): CiliumReadiness {
  const gaps: ReadinessGap[] = [];
  if (!view.ciliumNode(nodeName)) gaps.push('no-cilium-node');

  const agents = view.agentPodsOn(nodeName);
  const serving = agents.find((pod) => isPodReady(pod) && !pod.metadata.deletionTimestamp);
  if (serving) {
    const since = readyTransition(serving);
    return { ready: gaps.length === 0, gaps, agentPod: podRef(serving), ...(since ? { readySince: since } : {}) };
  }
  if (agents.length === 0) {
    gaps.push('no-agent-pod');
    return { ready: false, gaps };
  }
  // Prefer reporting a live-but-unready agent over one that is going away.
  const live = agents.find((pod) => !pod.metadata.deletionTimestamp);
  gaps.push(live ? 'agent-not-ready' : 'agent-terminating');
  const shown = live ?? agents[0]!;
  return { ready: false, gaps, agentPod: podRef(shown) };
}

/** Human wording of each gap, used in denial messages and the report command. */
export function describeGap(gap: ReadinessGap, nodeName: string, agentPod?: string): string {
  switch (gap) {
    case 'no-cilium-node':
      return `no CiliumNode "${nodeName}" exists yet`;
    case 'no-agent-pod':
      return `no Cilium agent pod runs on the node`;
    case 'agent-not-ready':
      return `Cilium agent pod${agentPod ? ` ${agentPod}` : ''} is not Ready`;
    case 'agent-terminating':
      return `Cilium agent pod${agentPod ? ` ${agentPod}` : ''} is terminating`;
  }
}
