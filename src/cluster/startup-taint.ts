// Nodes that carry Cilium's startup taint, and whether it is stuck: pure judgement over the view.
//
// cilium-operator removes the taint (any value, any effect) once a Cilium agent pod on the node is
// Ready (operator/watchers/node_taint.go). So a taint is
//   - waiting: no Ready agent pod on the node yet — the normal start of a node's life;
//   - agent-ready: the agent is Ready, the operator should remove the taint any moment;
//   - stuck: the agent has been Ready for nodeTaint.stuckAfterSeconds and the taint is still there
//     (cilium-operator not running, removing another key, or run with --remove-cilium-node-taints=false).
// The taint's age is its timeAdded, or the node's creationTimestamp when the taint has none: the
// API server does not default timeAdded (pkg/registry/core/node/strategy.go), so a taint added at
// registration — by the kubelet's --register-with-taints, a node pool, or this project's
// webhook — has none, and was added when the node was created.

import type { Config } from '../config.js';
import { isPodReady } from './readiness.js';
import type { ClusterView, NodeInfo, PodInfo, Taint } from './view.js';

export type StartupTaintState = 'waiting' | 'agent-ready' | 'stuck';

export interface StartupTaintStatus {
  node: string;
  /** Whether the node carries the migration label. */
  migrated: boolean;
  taint: Taint;
  state: StartupTaintState;
  /** When the taint was added, and where that came from. */
  since?: string;
  sinceSource: 'timeAdded' | 'creationTimestamp' | 'unknown';
  /** Seconds since `since` (undefined when unknown). */
  taintedSeconds?: number;
  /** The Ready agent pod ("namespace/name") once there is one. */
  agentPod?: string;
  /** When that pod turned Ready (its Ready condition's lastTransitionTime). */
  agentReadySince?: string;
  /** How long the taint has outlived the Ready agent, for agent-ready and stuck. */
  overdueSeconds?: number;
}

function seconds(fromIso: string | undefined, now: Date): number | undefined {
  if (!fromIso) return undefined;
  const at = Date.parse(fromIso);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.floor((now.getTime() - at) / 1000));
}

function readyTransition(pod: PodInfo): string | undefined {
  return pod.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True')?.lastTransitionTime;
}

/** The node's taint with the configured key, if any. */
export function startupTaintOn(node: NodeInfo, config: Pick<Config, 'cilium'>): Taint | undefined {
  return node.spec?.taints?.find((t) => t.key === config.cilium.agentNotReadyTaintKey);
}

export function startupTaintStatus(
  node: NodeInfo,
  view: Pick<ClusterView, 'agentPodsOn'>,
  config: Pick<Config, 'cilium' | 'nodeTaint' | 'nodeLabel'>,
  now: Date,
): StartupTaintStatus | undefined {
  const taint = startupTaintOn(node, config);
  if (!taint) return undefined;
  const name = node.metadata.name;
  const since = taint.timeAdded ?? node.metadata.creationTimestamp;
  const sinceSource = taint.timeAdded ? 'timeAdded' : node.metadata.creationTimestamp ? 'creationTimestamp' : 'unknown';
  const taintedSeconds = seconds(since, now);
  const base = {
    node: name,
    migrated: node.metadata.labels?.[config.nodeLabel.key] === config.nodeLabel.value,
    taint,
    sinceSource,
    ...(since ? { since } : {}),
    ...(taintedSeconds !== undefined ? { taintedSeconds } : {}),
  } as const;

  // The operator's own test: any agent pod on the node with Ready=True.
  const ready = view.agentPodsOn(name).filter(isPodReady);
  if (ready.length === 0) return { ...base, state: 'waiting' };

  // The earliest Ready agent: the operator could have acted since then. A pod without a
  // transition time counts from when the taint was added.
  const at = (t: string | undefined): number => (t ? Date.parse(t) : Number.NaN);
  const timed = ready.filter((pod) => !Number.isNaN(at(readyTransition(pod)))).sort((a, b) => at(readyTransition(a)) - at(readyTransition(b)));
  const agent = timed[0] ?? ready[0]!;
  const readySince = timed[0] ? readyTransition(timed[0]) : undefined;
  // The taint cannot be overdue from before it existed (re-added after the agent turned Ready).
  const starts = [at(readySince), at(since)].filter((ms) => !Number.isNaN(ms));
  const overdueSeconds = starts.length > 0 ? Math.max(0, Math.floor((now.getTime() - Math.max(...starts)) / 1000)) : 0;
  return {
    ...base,
    state: overdueSeconds >= config.nodeTaint.stuckAfterSeconds ? 'stuck' : 'agent-ready',
    agentPod: `${agent.metadata.namespace ?? ''}/${agent.metadata.name}`,
    ...(readySince ? { agentReadySince: readySince } : {}),
    overdueSeconds,
  };
}

/** Every node carrying the taint (migrated or not: the taint is Cilium's either way), by name. */
export function startupTaintStatuses(
  nodes: readonly NodeInfo[],
  view: Pick<ClusterView, 'agentPodsOn'>,
  config: Pick<Config, 'cilium' | 'nodeTaint' | 'nodeLabel'>,
  now: Date,
): StartupTaintStatus[] {
  return nodes.flatMap((node) => startupTaintStatus(node, view, config, now) ?? []).sort((a, b) => a.node.localeCompare(b.node));
}

/** "3d04h", "3h12m", "4m05s", "42s": durations in report lines and logs. */
export function formatDuration(totalSeconds: number): string {
  const d = Math.floor(totalSeconds / 86_400);
  if (d >= 2) return `${d}d${String(Math.floor((totalSeconds % 86_400) / 3600)).padStart(2, '0')}h`;
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

/** What to do about a stuck taint, in words (warning log, report, docs). */
export function stuckTaintFix(status: StartupTaintStatus): string {
  const key = status.taint.key;
  return (
    `cilium-operator removes this taint once the agent is Ready: check that cilium-operator is running, that its ` +
    `--agent-not-ready-taint-key (Helm agentNotReadyTaintKey) is ${key} and that --remove-cilium-node-taints (Helm operator.removeNodeTaints) is not false; ` +
    `to release the node now: kubectl taint node ${status.node} ${key}-`
  );
}

/** One sentence about a tainted node, for the report and the warning log. */
export function describeStartupTaint(status: StartupTaintStatus): string {
  const age = status.taintedSeconds !== undefined ? ` for ${formatDuration(status.taintedSeconds)}` : '';
  switch (status.state) {
    case 'waiting':
      return `tainted${age}, waiting for a Ready Cilium agent pod on the node`;
    case 'agent-ready':
      return `tainted${age}; agent ${status.agentPod} is Ready (${formatDuration(status.overdueSeconds ?? 0)}), cilium-operator should remove the taint shortly`;
    case 'stuck':
      return (
        `taint still there ${formatDuration(status.overdueSeconds ?? 0)} after agent ${status.agentPod} turned Ready` +
        ` (tainted${age}). ${stuckTaintFix(status)}`
      );
  }
}
