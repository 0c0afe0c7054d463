// What the cluster view remembers about each node beyond what the API shows now: the one piece of
// readiness state kept at the edge (everything else is read from the objects themselves).
//
// Two facts cannot be read back from the API server later:
//   - a reboot: the kubelet reports a new status.nodeInfo.bootID at start-up, but until it has
//     synced the agent pod again (Ready=False, then True with a new lastTransitionTime) the API
//     still shows the agent's pre-reboot Ready=True. Nothing in the Node records when the bootID
//     changed (the kubelet's managedFields entry moves on every status heartbeat). So when the view
//     sees the bootID change, it notes which agent Ready states were showing then: those are
//     pre-reboot, and the node is not ready until an agent shows a Ready state not in that list.
//     The comparison is by identity (pod uid + Ready lastTransitionTime), not by clocks.
//   - when Cilium FIRST became ready since the current boot: an agent restart or upgrade gives a new
//     pod with a new Ready time. The view keeps the Ready states it has seen since the boot
//     (earliest first, bounded), so the first one survives agent restarts.
//
// Also remembered: agent configurations that passed the per-node-switch check (readiness.ts), because
// the label's managedFields time can move later for an unrelated field of the same manager.
//
// The memory is per process. After a restart of the webhook or the reaper it starts empty: a reboot
// that happened before is not known (its pre-reboot window, until the kubelet's first pod sync, is
// not detected), and "first Ready seen" starts at the agent's current Ready. The reaper prefers
// cilium-operator's CiliumIsUp condition, which survives both (readiness.ts). Documented in the
// README ("Cilium is ready on node N").
//
// Pure data in, data out: the view calls observeNode/observeAgent on every informer change; the
// decisions read snapshot() only.

import type { NodeInfo, PodInfo } from './view.js';

/** One Ready state of an agent pod, and what says when its configuration was built. */
export interface ReadySighting {
  /** `<pod uid or namespace/name>@<Ready lastTransitionTime>`. */
  key: string;
  readySince: string;
  /** metadata.creationTimestamp (API server clock). */
  created?: string;
  /** When the pod's config was built: its first init container's start, else its earliest container start (node clock). */
  configuredAt?: string;
}

export interface NodeMemory {
  nodeUid?: string;
  bootID?: string;
  /** Set when the view saw the bootID change to the current one (view's clock, RFC 3339). */
  rebootSeenAt?: string;
  /** Agent Ready states showing when the reboot was seen: pre-reboot, they do not count. */
  preRebootReady: readonly string[];
  /** Agent Ready states seen under the current boot (since the view started if no reboot was seen), earliest first. */
  readySeen: readonly ReadySighting[];
  /**
   * Agent configurations (`<uid>@<configuredAt>=<label value>`) the view has seen pass the
   * per-node-switch check. The label's time from managedFields is an upper bound that moves when
   * the same field manager later changes another label; a configuration that passed once was built
   * while the label had that value, so it keeps passing (see labelCheckKey).
   */
  configuredUnderLabel: readonly string[];
}

/** Bound on sightings kept per node: the earliest ones are kept, the newest replaces the last. */
export const MAX_SIGHTINGS = 8;

/**
 * A Ready state first seen less than this before the boot ID change is taken as post-reboot.
 * The kubelet posts the new boot ID before it re-syncs the agent pod, but two watches (or a relist
 * after a broken watch) can deliver the two updates in either order; a genuinely pre-reboot Ready
 * cannot be this fresh (it would have to turn Ready, the machine reboot and the kubelet start again
 * within it). Without this, a misordered pair would leave the node "rebooted" until the agent's
 * next transition. Measured on the view's own clock only.
 */
export const MISORDER_WINDOW_MS = 5_000;

export function isServingAgent(pod: PodInfo): boolean {
  return !pod.metadata.deletionTimestamp && readyTransition(pod) !== undefined;
}

/** lastTransitionTime of a Ready=True condition ('' when Ready without a time), else undefined. */
export function readyTransition(pod: PodInfo): string | undefined {
  const ready = pod.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready?.status !== 'True') return undefined;
  return ready.lastTransitionTime ?? '';
}

function earliest(times: Array<string | undefined>): string | undefined {
  let best: string | undefined;
  let bestMs = Infinity;
  for (const t of times) {
    const ms = Date.parse(t ?? '');
    if (!Number.isNaN(ms) && ms < bestMs) {
      bestMs = ms;
      best = t;
    }
  }
  return best;
}

/**
 * When the agent pod's configuration was built. Cilium's chart builds it in the `config` init
 * container (cilium-dbg build-config, into an emptyDir the agent reads), which runs again only
 * when the kubelet recreates the pod sandbox (new pod, reboot), not when the agent container alone
 * restarts. So: the first init container's start when the pod has init containers, else the
 * earliest start of its containers (an agent that reads its config itself at start).
 */
export function agentConfiguredAt(pod: PodInfo): string | undefined {
  const init = pod.status?.initContainerStatuses ?? [];
  if (init.length > 0) return init[0]!.startedAt;
  return earliest((pod.status?.containerStatuses ?? []).map((c) => c.startedAt));
}

/** Built at or after the label was set: by pod creation (API server clock) or by config start (node clock). */
export function configuredAfter(s: { created?: string; configuredAt?: string }, labelSetAt: string): boolean {
  const label = Date.parse(labelSetAt);
  return Date.parse(s.created ?? '') >= label || Date.parse(s.configuredAt ?? '') >= label;
}

/** The identity of one agent configuration under one label value. */
export function labelCheckKey(pod: PodInfo, labelValue: string): string {
  return `${pod.metadata.uid ?? podKey(pod)}@${agentConfiguredAt(pod) ?? pod.metadata.creationTimestamp ?? ''}=${labelValue}`;
}

export function sightingOf(pod: PodInfo): ReadySighting | undefined {
  if (!isServingAgent(pod)) return undefined;
  const readySince = readyTransition(pod)!;
  const configuredAt = agentConfiguredAt(pod);
  return {
    key: `${pod.metadata.uid ?? podKey(pod)}@${readySince}`,
    readySince,
    ...(pod.metadata.creationTimestamp ? { created: pod.metadata.creationTimestamp } : {}),
    ...(configuredAt ? { configuredAt } : {}),
  };
}

function podKey(pod: PodInfo): string {
  return `${pod.metadata.namespace ?? ''}/${pod.metadata.name}`;
}

function addSighting(list: readonly ReadySighting[], s: ReadySighting): readonly ReadySighting[] {
  if (list.some((x) => x.key === s.key)) return list;
  if (list.length < MAX_SIGHTINGS) return [...list, s];
  return [...list.slice(0, MAX_SIGHTINGS - 1), s];
}

export class NodeHistory {
  private readonly byNode = new Map<string, NodeMemory>();
  /** Per agent pod (namespace/name): its current Ready state's key and when the view first saw it (ms). */
  private readonly current = new Map<string, { key: string; seenAt: number }>();

  /** `label`: the migration label, for remembering agent configurations that passed the per-node-switch check. */
  constructor(
    private readonly now: () => Date = () => new Date(),
    private readonly label?: { key: string; value: string },
  ) {}

  /** Records the agents on the node whose configuration provably came after the migration label. */
  private noteLabelChecks(node: NodeInfo | undefined, agents: readonly PodInfo[]): void {
    const label = this.label;
    if (!label || !node || node.metadata.labels?.[label.key] !== label.value) return;
    const setAt = node.labelSetAt?.[label.key];
    if (setAt === undefined) return;
    const mem = this.byNode.get(node.metadata.name);
    if (!mem) return;
    let list = mem.configuredUnderLabel;
    for (const pod of agents) {
      const created = pod.metadata.creationTimestamp;
      const configuredAt = agentConfiguredAt(pod);
      if (!configuredAfter({ ...(created ? { created } : {}), ...(configuredAt ? { configuredAt } : {}) }, setAt)) continue;
      const key = labelCheckKey(pod, label.value);
      if (!list.includes(key)) list = [...list.slice(-(MAX_SIGHTINGS - 1)), key];
    }
    if (list !== mem.configuredUnderLabel) this.byNode.set(node.metadata.name, { ...mem, configuredUnderLabel: list });
  }

  /** A Node add/update. `agentsNow`: the agent pods the view holds for it at this moment. */
  observeNode(node: NodeInfo, agentsNow: readonly PodInfo[]): void {
    const name = node.metadata.name;
    const uid = node.metadata.uid;
    const bootID = node.status?.nodeInfo?.bootID;
    const old = this.byNode.get(name);
    if (!old || (old.nodeUid && uid && old.nodeUid !== uid)) {
      // First sight, or a new Node object under the same name: nothing to compare with.
      this.byNode.set(name, { ...(uid ? { nodeUid: uid } : {}), ...(bootID ? { bootID } : {}), preRebootReady: [], readySeen: [], configuredUnderLabel: [] });
      this.noteLabelChecks(node, agentsNow);
      return;
    }
    if (bootID && old.bootID && bootID !== old.bootID) {
      // A reboot. Every Ready state showing now predates it, unless it appeared just now (see MISORDER_WINDOW_MS).
      const nowMs = this.now().getTime();
      const preRebootReady: string[] = [];
      let readySeen: readonly ReadySighting[] = [];
      for (const pod of agentsNow) {
        const s = sightingOf(pod);
        if (!s) continue;
        const cur = this.current.get(podKey(pod));
        if (cur && cur.key === s.key && nowMs - cur.seenAt < MISORDER_WINDOW_MS) readySeen = addSighting(readySeen, s);
        else preRebootReady.push(s.key);
      }
      const seenAt = new Date(nowMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
      this.byNode.set(name, { ...old, bootID, rebootSeenAt: seenAt, preRebootReady, readySeen });
      this.noteLabelChecks(node, agentsNow);
      return;
    }
    // Fill in what was not known yet (an agent seen before its Node; a Node without bootID yet).
    if ((bootID && !old.bootID) || (uid && !old.nodeUid)) {
      this.byNode.set(name, { ...old, ...(uid ? { nodeUid: uid } : {}), ...(bootID ? { bootID } : {}) });
    }
    this.noteLabelChecks(node, agentsNow);
  }

  /** An agent pod add/update (bound to a node); `node`: its Node as the view holds it. */
  observeAgent(pod: PodInfo, node?: NodeInfo): void {
    const name = pod.spec.nodeName;
    const sighting = sightingOf(pod);
    const k = podKey(pod);
    if (!sighting) this.current.delete(k);
    else if (this.current.get(k)?.key !== sighting.key) this.current.set(k, { key: sighting.key, seenAt: this.now().getTime() });
    if (!name || !sighting) return;
    const mem = this.byNode.get(name) ?? { preRebootReady: [], readySeen: [], configuredUnderLabel: [] };
    if (!mem.preRebootReady.includes(sighting.key)) {
      const readySeen = addSighting(mem.readySeen, sighting);
      if (readySeen !== mem.readySeen || !this.byNode.has(name)) this.byNode.set(name, { ...mem, readySeen });
    }
    this.noteLabelChecks(node, [pod]);
  }

  forget(name: string): void {
    this.byNode.delete(name);
  }

  /** An agent pod is gone (or no longer an agent pod). */
  forgetAgent(namespace: string | undefined, name: string): void {
    this.current.delete(`${namespace ?? ''}/${name}`);
  }

  snapshot(name: string): NodeMemory | undefined {
    return this.byNode.get(name);
  }
}
