// The reaper's one decision, pure: (cluster view, config, now) → for every migrated node, is
// Cilium ready, and which pods hold an IP Cilium does not manage, with a verdict and its evidence.
// The acting path, dry-run and the `report` command all read this; the actuator re-runs
// assessPod() on objects it has just re-read from the API server before it acts.
//
// "Managed by Cilium" is decided from Cilium's own records, never from a name alone:
//   - a CiliumEndpoint with the pod's namespace/name whose status.networking.addressing[] holds
//     one of the pod's IPs (cilium-operator's own restarter only checks that the CEP exists);
//   - or, in IPAM modes that fill it (crd, eni, azure, alibabacloud), the node's CiliumNode
//     status.ipam.used[<pod IP>].owner is "<namespace>/<name>" (what cilium-cni passes as owner),
//     or "<namespace>/<name> [restored]" (what the agent writes when it re-allocates the IP of an
//     endpoint it restored after a restart: daemon/cmd/state.go allocateIPsLocked; some releases
//     wrote the IPv4 one without the space, "<namespace>/<name>[restored]": both count).
// When Cilium writes no CiliumEndpoints at all (disable-endpoint-crd: "true" in cilium-config),
// every pod would look unmanaged: detect() then assesses no pod and says why (Detection.inactive).
// The pod CIDRs of the CiliumNode (spec.ipam.podCIDRs) are evidence only: with kubernetes/
// cluster-pool IPAM the old CNI may hand out IPs from the very same range.

import { isMigratedNode, type Config } from '../config.js';
import { ciliumReadiness, describeCiliumSince, describeGaps, type CiliumReadiness } from '../cluster/readiness.js';
import type { FullClusterView } from '../cluster/view.js';
import type { CiliumEndpointInfo, CiliumNodeInfo, PodInfo } from '../cluster/view.js';
import { exemptionFor } from '../policy/exemptions.js';
import { canonicalIP, cidrMatcher, cidrsContain } from './cidr.js';

export type FindingReason = 'DuplicatePodIP' | 'UnmanagedByCilium';

/**
 * remove: the reaper removes it. report-only: a victim nothing would recreate (no controller
 * owner). wait: may become a victim (Cilium not ready, grace period). keep: unmanaged, but not a victim.
 */
export type Verdict = 'remove' | 'report-only' | 'wait' | 'keep';

export interface PodRef {
  namespace: string;
  name: string;
  node: string;
  uid?: string;
  resourceVersion?: string;
}

export interface SharingPod {
  namespace: string;
  name: string;
  node?: string;
  managedByCilium: boolean;
}

export interface Evidence {
  /** The pod IP in question (the first shared one, else the primary). */
  ip: string;
  podStartTime?: string;
  /** When Cilium first became ready on the node since its boot (readiness.ciliumSince), and what says so. */
  ciliumReadySince?: string;
  ciliumReadySource?: string;
  agentPod?: string;
  /** The pod's CiliumEndpoint: missing, or present with addresses that do not include the pod's IP. */
  ciliumEndpoint: { found: false } | { found: true; state?: string; ips: string[] };
  /** CiliumNode status.ipam.used[ip].owner; null: the map exists but has no such IP; absent: the IPAM mode does not fill it. */
  ipamUsedBy?: string | null;
  /** Whether the IP lies in the CiliumNode's spec.ipam.podCIDRs; absent when it lists none. */
  inCiliumPodCIDRs?: boolean;
  /** Other live pods holding the same IP. */
  sharedWith: SharingPod[];
  controller?: { kind: string; name: string };
}

export interface Assessment {
  pod: PodRef;
  verdict: Verdict;
  /** Set for remove and report-only. */
  reason?: FindingReason;
  /** Why this verdict, in words. */
  why: string;
  evidence: Evidence;
  /** For a wait on the grace period: when it ends, so the reaper looks again then. */
  recheckAt?: string;
}

export interface NodeReport {
  node: string;
  readiness: CiliumReadiness;
  /** Pods on the node that Cilium does not manage (exempt pods and pods without an IP are left out). */
  unmanaged: Assessment[];
}

/** Why the reaper acts on nothing at all (the configuration of Cilium makes its proof impossible). */
export interface Inactive {
  reason: 'ciliumendpoints-disabled';
  message: string;
}

/** Which reaper.target fits the cluster seen (report): see adviseTarget(). */
export interface TargetAdvice {
  fits?: Config['reaper']['target'];
  configured: Config['reaper']['target'];
  why: string;
  /** Pod IPs on migrated nodes inside / outside their CiliumNode's spec.ipam.podCIDRs. */
  inside: number;
  outside: number;
  /** A few pods outside, as evidence ("namespace/name ip node"). */
  outsideExamples: string[];
}

export interface Detection {
  at: string;
  nodes: NodeReport[];
  /** Every remove and report-only assessment, in node/namespace/name order. */
  findings: Assessment[];
  /** Set when the reaper must not act on anything; nodes then list readiness only. */
  inactive?: Inactive;
  advice: TargetAdvice;
}

/** What assessing one pod needs beyond the pod itself; built once per evaluation. */
export interface AssessContext {
  config: Config;
  now: Date;
  view: FullClusterView;
  /** Live pods by IP, cluster-wide (duplicates cross nodes when pod CIDRs overlap). */
  podsByIP: Map<string, PodInfo[]>;
}

/** The pod's IPs (status.podIP and every status.podIPs[] entry: both families on dual-stack), canonical. */
export function podIPs(pod: PodInfo): string[] {
  const ips = new Set<string>();
  if (pod.status?.podIP) ips.add(canonicalIP(pod.status.podIP));
  for (const entry of pod.status?.podIPs ?? []) if (entry.ip) ips.add(canonicalIP(entry.ip));
  return [...ips];
}

function isTerminal(pod: PodInfo): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

/** Pods that hold their IP now: Succeeded/Failed pods keep status.podIP after the IP is released (cilium/cilium#43353). */
function holdsIP(pod: PodInfo): boolean {
  return !pod.spec.hostNetwork && !isTerminal(pod) && !pod.metadata.deletionTimestamp;
}

/** Every address of the CEP (ipv4 and ipv6 of each addressing[] entry), canonical. */
function cepIPs(cep: CiliumEndpointInfo | undefined): string[] {
  return (cep?.status?.networking?.addressing ?? []).flatMap((a) => [a.ipv4, a.ipv6].filter((ip): ip is string => Boolean(ip)).map(canonicalIP));
}

/** Suffix of the IPAM owner the agent records for endpoints it restored after a restart (after a space, or not). */
export const RESTORED_SUFFIX = '[restored]';

function ipamOwner(cn: CiliumNodeInfo | undefined, ip: string): string | null | undefined {
  const used = cn?.status?.ipam?.used;
  if (!used) return undefined;
  const exact = used[ip];
  if (exact) return exact.owner ?? null;
  // Keys are written by Cilium in its own spelling: compare canonically.
  for (const [key, entry] of Object.entries(used)) if (canonicalIP(key) === ip) return entry?.owner ?? null;
  return null;
}

/** The Cilium-managed test, on the pod's own CEP (passed in so the actuator can give a fresh one). */
export function isManagedByCilium(pod: PodInfo, cep: CiliumEndpointInfo | undefined, cn: CiliumNodeInfo | undefined): boolean {
  const ips = podIPs(pod);
  const held = cepIPs(cep);
  if (ips.some((ip) => held.includes(ip))) return true;
  const owner = `${pod.metadata.namespace ?? ''}/${pod.metadata.name}`;
  return ips.some((ip) => {
    const recorded = ipamOwner(cn, ip);
    return recorded === owner || recorded === `${owner} ${RESTORED_SUFFIX}` || recorded === `${owner}${RESTORED_SUFFIX}`;
  });
}

function indexPodsByIP(view: FullClusterView): Map<string, PodInfo[]> {
  const index = new Map<string, PodInfo[]>();
  for (const node of view.nodes()) {
    for (const pod of view.podsOn(node.metadata.name)) {
      if (!holdsIP(pod)) continue;
      for (const ip of podIPs(pod)) {
        const list = index.get(ip);
        if (list) list.push(pod);
        else index.set(ip, [pod]);
      }
    }
  }
  return index;
}

export function assessContext(view: FullClusterView, config: Config, now: Date): AssessContext {
  return { config, now, view, podsByIP: indexPodsByIP(view) };
}

function controllerOf(pod: PodInfo): { kind: string; name: string } | undefined {
  const ref = pod.metadata.ownerReferences?.find((r) => r.controller === true);
  return ref ? { kind: ref.kind, name: ref.name } : undefined;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)}s`;
}

/**
 * One pod on a migrated node, with its own CiliumEndpoint (or undefined) and the node's Cilium
 * readiness. Undefined when the pod is out of scope: exempt, no IP, terminal, terminating, or
 * managed by Cilium. A managed pod is never assessed, so it can never be a victim.
 */
export function assessPod(ctx: AssessContext, pod: PodInfo, cep: CiliumEndpointInfo | undefined, readiness: CiliumReadiness): Assessment | undefined {
  const { config, now, view } = ctx;
  const node = pod.spec.nodeName;
  const ips = podIPs(pod);
  if (!node || ips.length === 0) return undefined;
  if (exemptionFor(pod, config) !== undefined) return undefined;
  if (!holdsIP(pod)) return undefined;
  const cn = view.ciliumNode(node);
  if (isManagedByCilium(pod, cep, cn)) return undefined;

  const namespace = pod.metadata.namespace ?? '';
  const name = pod.metadata.name;
  const others = (ip: string): PodInfo[] =>
    (ctx.podsByIP.get(ip) ?? []).filter((p) => !(p.metadata.namespace === pod.metadata.namespace && p.metadata.name === name));
  const sharedIP = ips.find((ip) => others(ip).length > 0);
  const ip = sharedIP ?? ips[0]!;
  const sharedWith = (sharedIP ? others(sharedIP) : []).map((p) => ({
    namespace: p.metadata.namespace ?? '',
    name: p.metadata.name,
    ...(p.spec.nodeName ? { node: p.spec.nodeName } : {}),
    managedByCilium: isManagedByCilium(
      p,
      view.ciliumEndpoint(p.metadata.namespace ?? '', p.metadata.name),
      p.spec.nodeName ? view.ciliumNode(p.spec.nodeName) : undefined,
    ),
  }));

  const podCIDRs = cn?.spec?.ipam?.podCIDRs ?? [];
  const owner = ipamOwner(cn, ip);
  const controller = controllerOf(pod);
  const evidence: Evidence = {
    ip,
    ...(pod.status?.startTime ? { podStartTime: pod.status.startTime } : {}),
    ...(readiness.ciliumSince ? { ciliumReadySince: readiness.ciliumSince } : {}),
    ...(readiness.ciliumSinceFrom ? { ciliumReadySource: describeCiliumSince(readiness.ciliumSinceFrom) } : {}),
    ...(readiness.agentPod ? { agentPod: readiness.agentPod } : {}),
    ciliumEndpoint: cep ? { found: true, ...(cep.status?.state ? { state: cep.status.state } : {}), ips: cepIPs(cep) } : { found: false },
    ...(owner !== undefined ? { ipamUsedBy: owner } : {}),
    ...(podCIDRs.length > 0 ? { inCiliumPodCIDRs: cidrsContain(podCIDRs, ip) } : {}),
    sharedWith,
    ...(controller ? { controller } : {}),
  };
  const ref: PodRef = {
    namespace,
    name,
    node,
    ...(pod.metadata.uid ? { uid: pod.metadata.uid } : {}),
    ...(pod.metadata.resourceVersion ? { resourceVersion: pod.metadata.resourceVersion } : {}),
  };
  const out = (verdict: Verdict, why: string, reason?: FindingReason): Assessment => ({ pod: ref, verdict, why, evidence, ...(reason ? { reason } : {}) });

  if (!readiness.ready) {
    const gaps = describeGaps(readiness, node).join('; ');
    return out('wait', `Cilium is not ready on ${node} (${gaps}): nothing is removed there until it is`);
  }
  const started = Date.parse(pod.status?.startTime ?? '');
  // When Cilium FIRST became ready on the node since its boot: an agent restart does not move it.
  const since = readiness.ciliumSince;
  const ready = Date.parse(since ?? '');
  if (Number.isNaN(started)) return out('keep', 'the pod has no start time');
  if (Number.isNaN(ready)) return out('keep', `the Ready transition time of Cilium agent ${readiness.agentPod ?? ''} is unknown`);
  // Same second counts as "not before": timestamps have second precision, so it cannot be told apart.
  if (started >= ready) return out('keep', `started at ${pod.status!.startTime}, after Cilium became ready at ${since}: not an early pod`);

  const graceMs = config.reaper.gracePeriodSeconds * 1000;
  const podAge = now.getTime() - started;
  const readyFor = now.getTime() - ready;
  if (podAge < graceMs || readyFor < graceMs) {
    const waiting = out(
      'wait',
      `within the grace period of ${config.reaper.gracePeriodSeconds}s (pod age ${seconds(podAge)}, Cilium ready for ${seconds(readyFor)})`,
    );
    return { ...waiting, recheckAt: new Date(Math.max(started, ready) + graceMs).toISOString() };
  }

  const reason: FindingReason = sharedWith.length > 0 ? 'DuplicatePodIP' : 'UnmanagedByCilium';
  if (reason === 'UnmanagedByCilium' && config.reaper.target === 'duplicate-ip') {
    return out('keep', `no other pod holds ${ip} (reaper.target is duplicate-ip)`);
  }
  const what =
    reason === 'DuplicatePodIP'
      ? `IP ${ip} is also held by ${sharedWith.map((p) => `${p.namespace}/${p.name}`).join(', ')}`
      : `IP ${ip} is not managed by Cilium`;
  const early = `started ${pod.status!.startTime}, before Cilium became ready at ${since}`;
  if (!controller && !config.reaper.removeUnowned) {
    return out('report-only', `${what}; ${early}; no controller owner would recreate it (reaper.removeUnowned is false)`, reason);
  }
  return out('remove', `${what}; ${early}`, reason);
}

/** Why the reaper must act on nothing, from Cilium's own configuration; undefined when it may act. */
export function inactiveReason(view: FullClusterView, config: Config): Inactive | undefined {
  if (view.ciliumConfig()?.endpointCRDDisabled) {
    return {
      reason: 'ciliumendpoints-disabled',
      message:
        `Cilium is configured not to create CiliumEndpoints (disable-endpoint-crd: "true" in ConfigMap ${config.cilium.namespace}/cilium-config): ` +
        'every pod would look unmanaged, so the reaper removes nothing',
    };
  }
  return undefined;
}

/**
 * Which reaper.target fits. Cilium's migration guide gives Cilium its own pod CIDR: the old CNI's
 * pods then hold IPs outside Cilium's ranges, so no duplicate IP can ever appear and the default
 * duplicate-ip never fires, while an old-CNI pod on a migrated node is still outside Cilium's
 * policy: any-unmanaged fits. Pods inside the ranges only (kubernetes IPAM, the old CNI using the
 * node's podCIDR): the ranges are shared and duplicate-ip fits. Judged on every pod holding an IP
 * on a migrated node whose CiliumNode lists spec.ipam.podCIDRs.
 */
export function adviseTarget(view: FullClusterView, config: Config, migrated: readonly string[]): TargetAdvice {
  let inside = 0;
  let outside = 0;
  const outsideExamples: string[] = [];
  for (const node of migrated) {
    const cidrs = view.ciliumNode(node)?.spec?.ipam?.podCIDRs ?? [];
    if (cidrs.length === 0) continue;
    const contains = cidrMatcher(cidrs);
    for (const pod of view.podsOn(node)) {
      if (!holdsIP(pod)) continue;
      for (const ip of podIPs(pod)) {
        if (contains(ip)) inside += 1;
        else {
          outside += 1;
          if (outsideExamples.length < 3) outsideExamples.push(`${pod.metadata.namespace ?? ''}/${pod.metadata.name} ${ip} on ${node}`);
        }
      }
    }
  }
  const configured = config.reaper.target;
  const base = { configured, inside, outside, outsideExamples };
  if (outside > 0) {
    return {
      ...base,
      fits: 'any-unmanaged',
      why:
        `${outside} pod IP(s) on migrated nodes lie outside Cilium's pod CIDRs (separate ranges, as in Cilium's migration guide): ` +
        'duplicate IPs cannot happen there, so duplicate-ip never fires; any-unmanaged removes the early old-CNI pods',
    };
  }
  if (inside > 0) {
    return {
      ...base,
      fits: 'duplicate-ip',
      why: `every pod IP on migrated nodes (${inside}) lies inside Cilium's pod CIDRs: the old CNI shares the range, and duplicate-ip removes only pods whose IP another pod also holds`,
    };
  }
  return { ...base, why: 'no pod IPs on migrated nodes whose CiliumNode lists pod CIDRs: nothing to judge by yet (keep the default duplicate-ip)' };
}

/** Every migrated node (or only `nodes`, when given) and its unmanaged pods. */
export function detect(view: FullClusterView, config: Config, now: Date, options: { nodes?: ReadonlySet<string> } = {}): Detection {
  const ctx = assessContext(view, config, now);
  const nodes: NodeReport[] = [];
  const migrated = view
    .nodes()
    .filter((n) => isMigratedNode(n.metadata.labels, config) && (!options.nodes || options.nodes.has(n.metadata.name)))
    .map((n) => n.metadata.name)
    .sort();
  const inactive = inactiveReason(view, config);
  for (const node of migrated) {
    const readiness = ciliumReadiness(view, node, config);
    const unmanaged = inactive
      ? []
      : view
          .podsOn(node)
          .flatMap((pod) => assessPod(ctx, pod, view.ciliumEndpoint(pod.metadata.namespace ?? '', pod.metadata.name), readiness) ?? [])
          .sort((a, b) => a.pod.namespace.localeCompare(b.pod.namespace) || a.pod.name.localeCompare(b.pod.name));
    nodes.push({ node, readiness, unmanaged });
  }
  const findings = nodes.flatMap((n) => n.unmanaged.filter((a) => a.verdict === 'remove' || a.verdict === 'report-only'));
  return { at: now.toISOString(), nodes, findings, advice: adviseTarget(view, config, migrated), ...(inactive ? { inactive } : {}) };
}
