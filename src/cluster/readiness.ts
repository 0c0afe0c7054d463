// "Is Cilium ready on node N?" — one definition, read by the pod webhook, the reaper's detect() and
// `report`. A pure function of (view, config): the view's per-node memory (history.ts) is the only
// state, and it is part of the view. The README documents it as one table.
//
// Ready when ALL hold:
//   1. the node does not carry Cilium's startup taint (config.cilium.agentNotReadyTaintKey):
//      cilium-operator removes it once an agent pod on the node is Ready (operator/watchers/node_taint.go);
//   2. a CiliumNode named N exists (the agent creates it early: necessary, not sufficient);
//   3. a Cilium agent pod on N is Ready and has no deletionTimestamp;
//   4. that Ready is not a pre-reboot one: when the view saw status.nodeInfo.bootID change, the
//      agent Ready states showing then are stale until an agent turns Ready again (history.ts);
//   5. that agent's configuration was built after the node got the migration label: Cilium applies
//      a CiliumNodeConfig (the migration guide's per-node CNI switch) only when its pod restarts.
//      The label's time comes from the Node's managedFields (NodeInfo.labelSetAt, API server clock);
//      the agent counts as configured after it when its pod was created at or after it (same clock),
//      or its config init container started at or after it (node clock; covers a reboot, where the
//      kubelet re-runs init containers in the new sandbox). Skipped when no managedFields entry
//      owns the label (nothing to compare with).
//
// For the reaper, `ciliumSince` is when Cilium FIRST became ready on the node since its current
// boot (and since the per-node switch), so that an agent restart or upgrade does not make pods
// Cilium started look early — see firstReady() below.

import type { Config } from '../config.js';
import { configuredAfter, isServingAgent, labelCheckKey, readyTransition, sightingOf, type NodeMemory, type ReadySighting } from './history.js';
import type { ClusterView, NodeInfo, PodInfo } from './view.js';

export type ReadinessGap =
  'agent-not-ready-taint' | 'no-cilium-node' | 'no-agent-pod' | 'agent-not-ready' | 'agent-terminating' | 'rebooted' | 'agent-predates-label';

/** Where ciliumSince comes from (evidence wording in describeCiliumSince). */
export type CiliumSinceSource = 'cilium-is-up' | 'first-ready-seen' | 'first-ready-after-reboot' | 'first-ready-after-label';

export interface CiliumReadiness {
  ready: boolean;
  /** Every condition that failed, in a stable order; empty when ready. */
  gaps: ReadinessGap[];
  /** The agent pod the verdict is about ("namespace/name"), when there is one. */
  agentPod?: string;
  /** When the serving agent pod last turned Ready. */
  readySince?: string;
  /** When Cilium first became ready on the node since its current boot (the reaper's "started before Cilium"). */
  ciliumSince?: string;
  ciliumSinceFrom?: CiliumSinceSource;
  /** Facts behind the gaps, for the messages. */
  detail?: {
    taint?: string;
    bootID?: string;
    rebootSeenAt?: string;
    label?: string;
    labelSetAt?: string;
    agentCreated?: string;
    agentConfiguredAt?: string;
  };
}

export function isPodReady(pod: PodInfo): boolean {
  return readyTransition(pod) !== undefined;
}

function podRef(pod: PodInfo): string {
  return `${pod.metadata.namespace ?? ''}/${pod.metadata.name}`;
}

const ms = (t: string | undefined): number => Date.parse(t ?? '');

/** cilium-operator's NetworkUnavailable=False/CiliumIsUp condition: written once, never refreshed while it holds. */
export function ciliumIsUpSince(node: NodeInfo | undefined): string | undefined {
  const c = node?.status?.conditions?.find((x) => x.type === 'NetworkUnavailable' && x.status === 'False' && x.reason === 'CiliumIsUp');
  return c?.lastTransitionTime || undefined;
}

function earliestReady(list: ReadonlyArray<{ readySince: string }>): string | undefined {
  let best: string | undefined;
  for (const s of list) if (!Number.isNaN(ms(s.readySince)) && (best === undefined || ms(s.readySince) < ms(best))) best = s.readySince;
  return best;
}

/**
 * When Cilium first became ready on the node since its current boot, given the serving agent:
 *   - after a reboot the view saw: the earliest agent Ready seen since (a reboot moves it);
 *   - otherwise cilium-operator's CiliumIsUp condition time when present (persistent: survives
 *     agent restarts, upgrades and restarts of this process), else the earliest Ready this view has
 *     seen (after a restart of this process: the current agent's Ready);
 *   - and when that is before the migration label was set, the earliest Ready of an agent
 *     configured after the label (the per-node switch happens at that agent's start).
 */
function firstReady(
  node: NodeInfo | undefined,
  memory: NodeMemory | undefined,
  serving: ReadySighting,
  labelSetAt: string | undefined,
): { at: string; from: CiliumSinceSource } | undefined {
  const seen = [...(memory?.readySeen ?? []), serving];
  let at: string | undefined;
  let from: CiliumSinceSource;
  if (memory?.rebootSeenAt) {
    at = earliestReady(seen);
    from = 'first-ready-after-reboot';
  } else {
    const up = ciliumIsUpSince(node);
    at = up ?? earliestReady(seen);
    from = up ? 'cilium-is-up' : 'first-ready-seen';
  }
  if (at !== undefined && labelSetAt !== undefined && ms(at) < ms(labelSetAt)) {
    const afterLabel = earliestReady(seen.filter((s) => configuredAfter(s, labelSetAt)));
    if (afterLabel !== undefined) {
      at = afterLabel;
      from = 'first-ready-after-label';
    }
  }
  return at === undefined ? undefined : { at, from };
}

export function ciliumReadiness(view: ClusterView, nodeName: string, config: Pick<Config, 'cilium' | 'nodeLabel'>): CiliumReadiness {
  const gaps: ReadinessGap[] = [];
  const detail: NonNullable<CiliumReadiness['detail']> = {};
  const node = view.node(nodeName);
  const taintKey = config.cilium.agentNotReadyTaintKey;
  if (node?.spec?.taints?.some((t) => t.key === taintKey)) {
    gaps.push('agent-not-ready-taint');
    detail.taint = taintKey;
  }
  if (!view.ciliumNode(nodeName)) gaps.push('no-cilium-node');

  const agents = view.agentPodsOn(nodeName);
  const serving = agents.find(isServingAgent);
  const done = (extra: Partial<CiliumReadiness>): CiliumReadiness => ({
    ready: gaps.length === 0,
    gaps,
    ...extra,
    ...(Object.keys(detail).length > 0 ? { detail } : {}),
  });
  if (!serving) {
    if (agents.length === 0) {
      gaps.push('no-agent-pod');
      return done({});
    }
    // Prefer reporting a live-but-unready agent over one that is going away.
    const live = agents.find((pod) => !pod.metadata.deletionTimestamp);
    gaps.push(live ? 'agent-not-ready' : 'agent-terminating');
    return done({ agentPod: podRef(live ?? agents[0]!) });
  }

  const memory = view.nodeMemory?.(nodeName);
  const sighting = sightingOf(serving)!;
  const readySince = sighting.readySince;
  if (memory?.rebootSeenAt && memory.preRebootReady.includes(sighting.key)) {
    gaps.push('rebooted');
    if (memory.bootID) detail.bootID = memory.bootID;
    detail.rebootSeenAt = memory.rebootSeenAt;
  }
  const labelSetAt = node?.labelSetAt?.[config.nodeLabel.key];
  // A configuration this view saw pass once keeps passing under the same label value (history.ts).
  const passedBefore = memory?.configuredUnderLabel.includes(labelCheckKey(serving, config.nodeLabel.value)) ?? false;
  if (labelSetAt !== undefined && !configuredAfter(sighting, labelSetAt) && !passedBefore) {
    gaps.push('agent-predates-label');
    detail.label = `${config.nodeLabel.key}=${config.nodeLabel.value}`;
    detail.labelSetAt = labelSetAt;
    if (sighting.created) detail.agentCreated = sighting.created;
    if (sighting.configuredAt) detail.agentConfiguredAt = sighting.configuredAt;
  }
  const first = firstReady(node, memory, sighting, labelSetAt);
  return done({
    agentPod: podRef(serving),
    ...(readySince ? { readySince } : {}),
    ...(first ? { ciliumSince: first.at, ciliumSinceFrom: first.from } : {}),
  });
}

/** Human wording of each gap, used in denial messages, the reaper's reasons and `report`. */
export function describeGap(gap: ReadinessGap, nodeName: string, readiness: Pick<CiliumReadiness, 'agentPod' | 'detail'> = {}): string {
  const agent = `Cilium agent pod${readiness.agentPod ? ` ${readiness.agentPod}` : ''}`;
  const d = readiness.detail ?? {};
  switch (gap) {
    case 'agent-not-ready-taint':
      return `the node still has Cilium's startup taint ${d.taint ?? ''} (cilium-operator removes it once the agent is Ready)`;
    case 'no-cilium-node':
      return `no CiliumNode "${nodeName}" exists yet`;
    case 'no-agent-pod':
      return `no Cilium agent pod runs on the node`;
    case 'agent-not-ready':
      return `${agent} is not Ready`;
    case 'agent-terminating':
      return `${agent} is terminating`;
    case 'rebooted':
      return (
        `the node rebooted (boot ID now ${d.bootID ?? 'new'}) and ${agent} has not turned Ready since ` +
        `(its Ready is from before the reboot; the node's image may have restored the previous CNI's config)`
      );
    case 'agent-predates-label':
      return (
        `${agent} was configured before the node got the label ${d.label ?? ''} at ${d.labelSetAt ?? '?'} ` +
        `(pod created ${d.agentCreated ?? '?'}, config built ${d.agentConfiguredAt ?? '?'}); ` +
        `Cilium applies its per-node CNI config only when its agent pod restarts`
      );
  }
}

export function describeGaps(readiness: CiliumReadiness, nodeName: string): string[] {
  return readiness.gaps.map((gap) => describeGap(gap, nodeName, readiness));
}

const SINCE_WORDS: Record<CiliumSinceSource, string> = {
  'cilium-is-up': "cilium-operator's NetworkUnavailable=False/CiliumIsUp condition",
  'first-ready-seen': 'the first agent Ready seen',
  'first-ready-after-reboot': 'the first agent Ready seen after the reboot',
  'first-ready-after-label': 'the first Ready of an agent configured after the migration label',
};

export function describeCiliumSince(from: CiliumSinceSource): string {
  return SINCE_WORDS[from];
}
