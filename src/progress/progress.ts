// How far the migration has come, from the cluster view: nodes by state, the nodes waiting for
// Cilium and since when, the pods Cilium does not manage on migrated nodes, and old-CNI agents
// still running there. Pure: (view, config, now) → counts; the metrics and `status` read it.

import type { FullClusterView } from '../cluster/view.js';
import { ciliumReadiness, type ReadinessGap } from '../cluster/readiness.js';
import { isMigratedNode, type Config } from '../config.js';
import { agentPlacement } from '../reconciler/findings.js';
import { detect } from '../reaper/detect.js';

export const NODE_STATES = ['legacy', 'migrated-ready', 'migrated-not-ready'] as const;
export type NodeState = (typeof NODE_STATES)[number];

export interface WaitingNode {
  node: string;
  /** When it started waiting: the migration label's time (managedFields), else the node's creation. */
  since?: string;
  /** now − since, whole seconds; undefined when since is unknown. */
  seconds?: number;
  gaps: ReadinessGap[];
}

export interface Progress {
  at: string;
  nodes: Record<NodeState, number>;
  /** Migrated nodes where Cilium is not ready, longest waiting first (unknown since last). */
  waiting: WaitingNode[];
  /** Migrated nodes where Cilium is ready, with when the node started waiting and when Cilium became ready. */
  ready: Array<{ node: string; since?: string; readyAt?: string }>;
  /** Pods with an IP on migrated nodes that Cilium does not manage (exempt pods left out). */
  unmanagedPods: number;
  /** Pods of old-CNI DaemonSets running on migrated nodes. */
  legacyAgentsOnMigrated: number;
}

const ms = (t: string | undefined): number => (t ? Date.parse(t) : Number.NaN);

export function waitingSince(
  node: { metadata: { creationTimestamp?: string }; labelSetAt?: Record<string, string> },
  config: Pick<Config, 'nodeLabel'>,
): string | undefined {
  return node.labelSetAt?.[config.nodeLabel.key] ?? node.metadata.creationTimestamp;
}

export function migrationProgress(view: FullClusterView, config: Config, now: Date): Progress {
  const nodes: Record<NodeState, number> = { legacy: 0, 'migrated-ready': 0, 'migrated-not-ready': 0 };
  const waiting: WaitingNode[] = [];
  const ready: Progress['ready'] = [];
  for (const node of view.nodes()) {
    const name = node.metadata.name;
    if (!isMigratedNode(node.metadata.labels, config)) {
      nodes.legacy++;
      continue;
    }
    const readiness = ciliumReadiness(view, name, config);
    const since = waitingSince(node, config);
    if (readiness.ready) {
      nodes['migrated-ready']++;
      const readyAt = readiness.ciliumSince ?? readiness.readySince;
      ready.push({ node: name, ...(since ? { since } : {}), ...(readyAt ? { readyAt } : {}) });
      continue;
    }
    nodes['migrated-not-ready']++;
    const seconds = Number.isNaN(ms(since)) ? undefined : Math.max(0, Math.floor((now.getTime() - ms(since)) / 1000));
    waiting.push({ node: name, ...(since ? { since } : {}), ...(seconds !== undefined ? { seconds } : {}), gaps: readiness.gaps });
  }
  waiting.sort((a, b) => (b.seconds ?? -1) - (a.seconds ?? -1) || a.node.localeCompare(b.node));
  const detection = detect(view, config, now);
  return {
    at: now.toISOString(),
    nodes,
    waiting,
    ready,
    unmanagedPods: detection.nodes.reduce((sum, n) => sum + n.unmanaged.length, 0),
    legacyAgentsOnMigrated: agentPlacement(view, [], config).legacyOnMigrated.length,
  };
}
