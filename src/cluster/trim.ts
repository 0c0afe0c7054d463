// Full Kubernetes objects (as JSON, or as client-node's typed models) → the trimmed shapes of
// view.ts. Pure functions: keep the fields decisions read, drop everything else (managedFields,
// containers, volumes, the rest of status...). A decision can only read what is listed here, so
// the snapshot file and the live informers produce exactly the same objects.
//
// Tolerant of types: client-node's typed list calls deserialize timestamps into Date objects
// while watch events carry RFC 3339 strings; both come out as the same string. A field of the
// wrong type is left out. The one thing that is rejected is an object without metadata.name:
// every index is keyed on it.

import type { CiliumConfigInfo } from './view.js';
import type { CiliumEndpointInfo, CiliumNodeInfo, ContainerStart, NodeCondition, NodeInfo, ObjectMeta, PodCondition, PodInfo, Taint } from './view.js';

export class TrimError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrimError';
  }
}

/** kubectl's client-side apply record: a full copy of the object, never read by a decision. */
const DROPPED_ANNOTATIONS = new Set(['kubectl.kubernetes.io/last-applied-configuration']);

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** RFC 3339 string, whichever form the timestamp came in (string, Date). */
function timestamp(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString().replace(/\.000Z$/, 'Z');
  return undefined;
}

function stringMap(value: unknown, drop?: Set<string>): Record<string, string> | undefined {
  if (!isObj(value)) return undefined;
  const out: Record<string, string> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (typeof inner === 'string' && !drop?.has(key)) out[key] = inner;
  }
  return out;
}

/** Assigns only defined values, so trimmed objects have no `key: undefined` noise. */
function put<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

function describe(raw: unknown, kind: string): string {
  if (!isObj(raw)) return `${kind} (not an object)`;
  const meta = isObj(raw.metadata) ? raw.metadata : undefined;
  const ns = str(meta?.namespace);
  return ns ? `${kind} in namespace "${ns}"` : kind;
}

export function trimMeta(raw: unknown, kind: string): ObjectMeta {
  if (!isObj(raw)) throw new TrimError(`${kind}: expected an object, got ${raw === null ? 'null' : typeof raw}`);
  if (!isObj(raw.metadata)) throw new TrimError(`${describe(raw, kind)}: metadata is missing`);
  const m = raw.metadata;
  const name = str(m.name);
  if (!name) throw new TrimError(`${describe(raw, kind)}: metadata.name is missing or empty`);

  const meta: ObjectMeta = { name };
  put(meta, 'namespace', str(m.namespace) || undefined);
  put(meta, 'uid', str(m.uid));
  put(meta, 'resourceVersion', str(m.resourceVersion));
  put(meta, 'labels', stringMap(m.labels));
  put(meta, 'annotations', stringMap(m.annotations, DROPPED_ANNOTATIONS));
  put(meta, 'creationTimestamp', timestamp(m.creationTimestamp));
  put(meta, 'deletionTimestamp', timestamp(m.deletionTimestamp));
  if (Array.isArray(m.ownerReferences)) {
    const refs: NonNullable<ObjectMeta['ownerReferences']> = [];
    for (const ref of m.ownerReferences) {
      if (!isObj(ref)) continue;
      const apiVersion = str(ref.apiVersion);
      const refKind = str(ref.kind);
      const refName = str(ref.name);
      const uid = str(ref.uid);
      if (apiVersion === undefined || refKind === undefined || refName === undefined || uid === undefined) continue;
      const out: (typeof refs)[number] = { apiVersion, kind: refKind, name: refName, uid };
      if (typeof ref.controller === 'boolean') out.controller = ref.controller;
      refs.push(out);
    }
    meta.ownerReferences = refs;
  }
  return meta;
}

/**
 * For each label key, the earliest `time` of a managedFields entry whose fieldsV1 owns
 * f:metadata.f:labels.f:<key> (NodeInfo.labelSetAt). Only these times are kept, never managedFields.
 */
export function labelTimesFromManagedFields(managedFields: unknown, keys: readonly string[]): Record<string, string> | undefined {
  if (!Array.isArray(managedFields) || keys.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const entry of managedFields) {
    if (!isObj(entry) || !isObj(entry.fieldsV1)) continue;
    const meta = entry.fieldsV1['f:metadata'];
    const labels = isObj(meta) ? meta['f:labels'] : undefined;
    const time = timestamp(entry.time);
    if (!isObj(labels) || time === undefined || Number.isNaN(Date.parse(time))) continue;
    for (const key of keys) {
      if (!(`f:${key}` in labels)) continue;
      const known = out[key];
      if (known === undefined || Date.parse(time) < Date.parse(known)) out[key] = time;
    }
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

export interface TrimNodeOptions {
  /** Label keys whose set time to derive from managedFields (the migration label). */
  labelKeys?: readonly string[];
}

/** Nodes: metadata, spec.taints, spec.podCIDRs, status.nodeInfo.bootID, the NetworkUnavailable condition, label times. */
export function trimNode(raw: unknown, options: TrimNodeOptions = {}): NodeInfo {
  const node: NodeInfo = { metadata: trimMeta(raw, 'Node') };
  const obj = raw as Obj;
  if (isObj(obj.spec)) {
    const spec: NonNullable<NodeInfo['spec']> = {};
    if (Array.isArray(obj.spec.taints)) {
      spec.taints = obj.spec.taints.flatMap((t): Taint[] => {
        if (!isObj(t) || typeof t.key !== 'string' || typeof t.effect !== 'string') return [];
        const out: Taint = { key: t.key, effect: t.effect };
        put(out, 'value', str(t.value));
        put(out, 'timeAdded', timestamp(t.timeAdded));
        return [out];
      });
    }
    if (Array.isArray(obj.spec.podCIDRs)) spec.podCIDRs = obj.spec.podCIDRs.filter((c): c is string => typeof c === 'string');
    if (Object.keys(spec).length > 0) node.spec = spec;
  }
  const bootID = isObj(obj.status) && isObj(obj.status.nodeInfo) ? str(obj.status.nodeInfo.bootID) : undefined;
  const status: NonNullable<NodeInfo['status']> = {};
  if (bootID) status.nodeInfo = { bootID };
  if (isObj(obj.status) && Array.isArray(obj.status.conditions)) {
    const conditions = obj.status.conditions.flatMap((c): NodeCondition[] => {
      // Only NetworkUnavailable is read (cilium-operator's CiliumIsUp); the kubelet's conditions change every heartbeat.
      if (!isObj(c) || c.type !== 'NetworkUnavailable' || typeof c.status !== 'string') return [];
      const out: NodeCondition = { type: c.type, status: c.status };
      put(out, 'reason', str(c.reason));
      put(out, 'lastTransitionTime', timestamp(c.lastTransitionTime));
      return [out];
    });
    if (conditions.length > 0) status.conditions = conditions;
  }
  if (Object.keys(status).length > 0) node.status = status;
  const meta = isObj(obj.metadata) ? obj.metadata : {};
  const labelSetAt = labelTimesFromManagedFields(meta.managedFields, options.labelKeys ?? []);
  if (labelSetAt) node.labelSetAt = labelSetAt;
  return node;
}

/** Container statuses → name and when the current state started (running, else terminated). */
function containerStarts(value: unknown): ContainerStart[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.flatMap((c): ContainerStart[] => {
    if (!isObj(c) || typeof c.name !== 'string') return [];
    const state = isObj(c.state) ? c.state : {};
    const running = isObj(state.running) ? state.running : undefined;
    const terminated = isObj(state.terminated) ? state.terminated : undefined;
    const out: ContainerStart = { name: c.name };
    put(out, 'startedAt', timestamp(running?.startedAt) ?? timestamp(terminated?.startedAt));
    if (running) out.running = true;
    return [out];
  });
}

/**
 * The hostPort values a pod's containers declare (ports[].hostPort > 0), or undefined when there
 * are none or the pod is on the host network (no port mapping then). The lint reads the same
 * through this function (lint/load.ts), so a list and the caches give the same host-port pods.
 */
export function hostPortsOf(spec: unknown): number[] | undefined {
  if (!isObj(spec) || spec.hostNetwork === true || !Array.isArray(spec.containers)) return undefined;
  const out: number[] = [];
  for (const container of spec.containers) {
    if (!isObj(container) || !Array.isArray(container.ports)) continue;
    for (const port of container.ports) if (isObj(port) && typeof port.hostPort === 'number' && port.hostPort > 0) out.push(port.hostPort);
  }
  return out.length > 0 ? out : undefined;
}

export interface TrimPodOptions {
  /** Keep status.(init)containerStatuses' start times (read for Cilium agent pods only). Default true. */
  containerStarts?: boolean;
}

export function trimPod(raw: unknown, options: TrimPodOptions = {}): PodInfo {
  const metadata = trimMeta(raw, 'Pod');
  const obj = raw as Obj;
  const spec: PodInfo['spec'] = {};
  if (isObj(obj.spec)) {
    const s = obj.spec;
    put(spec, 'nodeName', str(s.nodeName) || undefined);
    if (typeof s.hostNetwork === 'boolean') spec.hostNetwork = s.hostNetwork;
    put(spec, 'schedulerName', str(s.schedulerName));
    put(spec, 'priorityClassName', str(s.priorityClassName));
    put(spec, 'hostPorts', hostPortsOf(s));
  }
  const pod: PodInfo = { metadata, spec };
  if (isObj(obj.status)) {
    const s = obj.status;
    const status = podStatusCore(s);
    if (options.containerStarts !== false) {
      put(status, 'initContainerStatuses', containerStarts(s.initContainerStatuses));
      put(status, 'containerStatuses', containerStarts(s.containerStatuses));
    }
    if (Array.isArray(s.conditions)) {
      status.conditions = s.conditions.flatMap((c): PodCondition[] => {
        if (!isObj(c) || typeof c.type !== 'string' || typeof c.status !== 'string') return [];
        const out: PodCondition = { type: c.type, status: c.status };
        put(out, 'lastTransitionTime', timestamp(c.lastTransitionTime));
        return [out];
      });
    }
    pod.status = status;
  }
  return pod;
}

/**
 * Annotations the reaper reads on any pod: the static-pod mirror annotation (an exemption,
 * policy/exemptions.ts MIRROR_POD_ANNOTATION; test/unit/trim.test.ts checks they agree).
 */
export const REAPER_POD_ANNOTATIONS: ReadonlySet<string> = new Set(['kubernetes.io/config.mirror']);

function podIPsOf(value: unknown): Array<{ ip: string }> | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.flatMap((entry) => (isObj(entry) && typeof entry.ip === 'string' ? [{ ip: entry.ip }] : []));
}

/** What both pod trims keep of a pod's status: phase, IPs and start time. */
function podStatusCore(s: Obj): NonNullable<PodInfo['status']> {
  const status: NonNullable<PodInfo['status']> = {};
  put(status, 'phase', str(s.phase));
  put(status, 'podIP', str(s.podIP));
  put(status, 'podIPs', podIPsOf(s.podIPs));
  put(status, 'startTime', timestamp(s.startTime));
  return status;
}

/**
 * Every pod, for the reaper's all-pods index (podsOn): what its decisions and the agent-placement
 * report read, and no more, because the reaper holds one per pod in the cluster. Kept: name,
 * namespace, uid, resourceVersion (the removal's preconditions), labels (exemptions, agent roles),
 * the mirror annotation, deletionTimestamp, ownerReferences (the controller); spec.nodeName,
 * hostNetwork, hostPorts (hostPortsOf: for report's lint section, absent on most pods);
 * status.phase, podIP(s), startTime. Left out (kept by trimPod): other annotations, creationTimestamp,
 * schedulerName, priorityClassName, conditions, container statuses.
 */
export function trimPodForReaper(raw: unknown): PodInfo {
  const full = trimMeta(raw, 'Pod');
  const metadata: ObjectMeta = { name: full.name };
  put(metadata, 'namespace', full.namespace);
  put(metadata, 'uid', full.uid);
  put(metadata, 'resourceVersion', full.resourceVersion);
  put(metadata, 'labels', full.labels);
  if (full.annotations) {
    const kept = Object.entries(full.annotations).filter(([key]) => REAPER_POD_ANNOTATIONS.has(key));
    if (kept.length > 0) metadata.annotations = Object.fromEntries(kept);
  }
  put(metadata, 'deletionTimestamp', full.deletionTimestamp);
  put(metadata, 'ownerReferences', full.ownerReferences);
  const obj = raw as Obj;
  const spec: PodInfo['spec'] = {};
  if (isObj(obj.spec)) {
    put(spec, 'nodeName', str(obj.spec.nodeName) || undefined);
    if (typeof obj.spec.hostNetwork === 'boolean') spec.hostNetwork = obj.spec.hostNetwork;
    put(spec, 'hostPorts', hostPortsOf(obj.spec));
  }
  const pod: PodInfo = { metadata, spec };
  if (isObj(obj.status)) {
    pod.status = podStatusCore(obj.status);
  }
  return pod;
}

/** CiliumNode: spec.ipam.podCIDRs and status.ipam.used (IP → owner), nothing else. */
export function trimCiliumNode(raw: unknown): CiliumNodeInfo {
  const metadata = trimMeta(raw, 'CiliumNode');
  const obj = raw as Obj;
  const cn: CiliumNodeInfo = { metadata };
  const specIpam = isObj(obj.spec) && isObj(obj.spec.ipam) ? obj.spec.ipam : undefined;
  if (specIpam && Array.isArray(specIpam.podCIDRs)) {
    cn.spec = { ipam: { podCIDRs: specIpam.podCIDRs.filter((c): c is string => typeof c === 'string') } };
  }
  const statusIpam = isObj(obj.status) && isObj(obj.status.ipam) ? obj.status.ipam : undefined;
  if (statusIpam && isObj(statusIpam.used)) {
    const used: Record<string, { owner?: string; resource?: string }> = {};
    for (const [ip, alloc] of Object.entries(statusIpam.used)) {
      if (!isObj(alloc)) continue;
      const entry: { owner?: string; resource?: string } = {};
      put(entry, 'owner', str(alloc.owner));
      put(entry, 'resource', str(alloc.resource));
      used[ip] = entry;
    }
    cn.status = { ipam: { used } };
  }
  return cn;
}

/** CiliumEndpoint: status.state and status.networking (node IP, addressing). */
export function trimCiliumEndpoint(raw: unknown): CiliumEndpointInfo {
  const metadata = trimMeta(raw, 'CiliumEndpoint');
  const obj = raw as Obj;
  const cep: CiliumEndpointInfo = { metadata };
  if (isObj(obj.status)) {
    const s = obj.status;
    const status: NonNullable<CiliumEndpointInfo['status']> = {};
    put(status, 'state', str(s.state));
    if (isObj(s.networking)) {
      const n = s.networking;
      const networking: NonNullable<NonNullable<CiliumEndpointInfo['status']>['networking']> = {};
      put(networking, 'node', str(n.node));
      if (Array.isArray(n.addressing)) {
        networking.addressing = n.addressing.flatMap((a) => {
          if (!isObj(a)) return [];
          const out: { ipv4?: string; ipv6?: string } = {};
          put(out, 'ipv4', str(a.ipv4));
          put(out, 'ipv6', str(a.ipv6));
          return [out];
        });
      }
      status.networking = networking;
    }
    cep.status = status;
  }
  return cep;
}

/**
 * A CiliumEndpoint for the reaper's cache (one per pod in the cluster): its key (name, namespace)
 * and status (state, networking), which is all isManagedByCilium and the evidence read; not its
 * labels (a copy of the pod's), annotations, owner references or uid.
 */
export function trimCiliumEndpointForReaper(raw: unknown): CiliumEndpointInfo {
  const cep = trimCiliumEndpoint(raw);
  const metadata: ObjectMeta = { name: cep.metadata.name };
  put(metadata, 'namespace', cep.metadata.namespace);
  return { ...cep, metadata };
}

/** Cilium's ConfigMap (cilium-config): only disable-endpoint-crd is read. */
export function trimCiliumConfig(raw: unknown): CiliumConfigInfo {
  trimMeta(raw, 'ConfigMap');
  const data = isObj((raw as Obj).data) ? ((raw as Obj).data as Obj) : {};
  // The agent parses it as a Go bool (strconv.ParseBool through viper): 1, t, true in any case.
  return { endpointCRDDisabled: ['1', 't', 'true'].includes(str(data['disable-endpoint-crd'])?.trim().toLowerCase() ?? '') };
}
