// Builds a LintInput from Kubernetes objects (as files hold them, or as a live list returns them):
// the cilium-config ConfigMap, CiliumNodeConfigs, the agent DaemonSet, Nodes, CiliumNodes, Pods,
// GKE's netd DaemonSet and ConfigMap, ip-masq-agent's ConfigMap, or a Helm values file. Multi-
// document YAML and v1 Lists are understood; other kinds are skipped and counted. A document that is
// not YAML, or an object that cannot be read, fails with an error naming the file and document.

import { readFileSync } from 'node:fs';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { hostPortsOf } from '../cluster/trim.js';
import { helmToConfig } from './helm.js';
import {
  emptyInput,
  type LabelSelector,
  type LintDaemonSet,
  type LintInput,
  type LintNode,
  type LintNodeConfig,
  type LintPlacement,
  type LintPod,
} from './types.js';

export class LintInputError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LintInputError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const strings = (v: unknown): string[] => arr(v).filter((x): x is string => typeof x === 'string');

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(obj(v))) if (val !== null && val !== undefined) out[k] = typeof val === 'string' ? val : String(val);
  return out;
}

/** A LintInput being filled, document by document. */
export interface Collector {
  input: {
    -readonly [K in keyof LintInput]: LintInput[K];
  };
  nodeConfigs: LintNodeConfig[];
  nodes: LintNode[];
  ciliumNodes: Map<string, readonly string[]>;
  hostPortPods: LintPod[];
  pods: number;
  skipped: Record<string, number>;
}

export function newCollector(): Collector {
  const base = emptyInput();
  const c: Collector = { input: { ...base }, nodeConfigs: [], nodes: [], ciliumNodes: new Map(), hostPortPods: [], pods: 0, skipped: {} };
  return c;
}

export function finish(c: Collector, podsKnown: boolean): LintInput {
  return {
    ...c.input,
    nodeConfigs: c.nodeConfigs,
    nodes: c.nodes,
    ciliumNodes: c.ciliumNodes,
    hostPortPods: c.hostPortPods,
    ...(podsKnown ? { podCount: c.pods } : {}),
  };
}

function daemonSetOf(meta: Obj, spec: Obj): LintDaemonSet {
  const template = obj(spec.template);
  const podSpec = obj(template.spec);
  const env: Record<string, string> = {};
  const envFromConfigMap: Record<string, { configMap: string; key: string }> = {};
  const args: string[] = [];
  for (const container of [...arr(podSpec.initContainers), ...arr(podSpec.containers)].map(obj)) {
    for (const e of arr(container.env).map(obj)) {
      if (typeof e.name !== 'string') continue;
      if (typeof e.value === 'string') env[e.name] = e.value;
      const ref = obj(obj(e.valueFrom).configMapKeyRef);
      if (typeof ref.name === 'string' && typeof ref.key === 'string') envFromConfigMap[e.name] = { configMap: ref.name, key: ref.key };
    }
    args.push(...strings(container.command), ...strings(container.args));
  }
  return {
    namespace: String(meta.namespace ?? 'default'),
    name: String(meta.name),
    env,
    envFromConfigMap,
    args,
    podAnnotations: stringMap(obj(template.metadata).annotations),
    placement: placementOf(podSpec),
  };
}

function requirements(v: unknown): { key: string; operator: string; values: string[] }[] {
  return arr(v)
    .map(obj)
    .map((e) => ({ key: String(e.key ?? ''), operator: String(e.operator ?? ''), values: strings(e.values) }));
}

/** The pod spec's nodeSelector and required node affinity (lint/placement.ts judges them). */
export function placementOf(podSpec: Obj): LintPlacement {
  const required = obj(obj(obj(podSpec.affinity).nodeAffinity).requiredDuringSchedulingIgnoredDuringExecution);
  const terms = Array.isArray(required.nodeSelectorTerms)
    ? required.nodeSelectorTerms.map(obj).map((t) => ({ matchExpressions: requirements(t.matchExpressions), matchFields: requirements(t.matchFields) }))
    : undefined;
  return { nodeSelector: stringMap(podSpec.nodeSelector), ...(terms ? { requiredTerms: terms } : {}) };
}

/** ip-masq-agent's config: YAML or JSON under data.config (the agent's and Cilium's chart's key). */
function nonMasqueradeCIDRs(data: Record<string, string>, where: string): string[] {
  const raw = data.config ?? data['ip-masq-agent'] ?? '';
  if (raw === '') return [];
  let parsed: unknown;
  try {
    parsed = parseYaml(raw);
  } catch (err) {
    throw new LintInputError(`${where}: ip-masq-agent config is not YAML: ${(err as Error).message}`, { cause: err });
  }
  return strings(obj(parsed).nonMasqueradeCIDRs);
}

function selectorOf(v: unknown): LabelSelector | undefined {
  if (!isObj(v)) return undefined;
  return {
    matchLabels: stringMap(v.matchLabels),
    matchExpressions: arr(v.matchExpressions)
      .map(obj)
      .map((e) => ({ key: String(e.key ?? ''), operator: String(e.operator ?? ''), values: strings(e.values) })),
  };
}

const CILIUM_GROUP = /^cilium\.io\/v2(alpha1)?$/;

/** Adds one Kubernetes object (not a List) to the collector. `where` names it in errors. */
export function addObject(c: Collector, item: Obj, where: string, ciliumNamespace?: string): void {
  const apiVersion = String(item.apiVersion ?? '');
  const kind = String(item.kind ?? '');
  const meta = obj(item.metadata);
  if (typeof meta.name !== 'string' || meta.name === '') throw new LintInputError(`${where}: ${kind || 'object'} has no metadata.name`);
  const name = meta.name;
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : undefined;
  const spec = obj(item.spec);
  const skip = () => (c.skipped[`${kind} ${apiVersion}`] = (c.skipped[`${kind} ${apiVersion}`] ?? 0) + 1);

  if (apiVersion === 'v1' && kind === 'ConfigMap') {
    const data = stringMap(item.data);
    if (name === 'cilium-config' && (!ciliumNamespace || namespace === ciliumNamespace)) {
      if (c.input.ciliumConfig) throw new LintInputError(`${where}: a second cilium-config (${namespace ?? 'no namespace'}); give one`);
      c.input.ciliumConfig = { data, subject: `ConfigMap ${namespace ?? '?'}/cilium-config` };
    } else if (name === 'netd-config') c.input.netdConfig = data;
    else if (name === 'ip-masq-agent' || name === 'ip-masq-agent-config') {
      c.input.ipMasqAgent = { nonMasqueradeCIDRs: nonMasqueradeCIDRs(data, where), subject: `ConfigMap ${namespace ?? '?'}/${name}` };
    } else skip();
    return;
  }
  if (CILIUM_GROUP.test(apiVersion) && kind === 'CiliumNodeConfig') {
    const selector = selectorOf(spec.nodeSelector);
    c.nodeConfigs.push({ namespace: namespace ?? 'default', name, ...(selector ? { nodeSelector: selector } : {}), defaults: stringMap(spec.defaults) });
    return;
  }
  if (apiVersion === 'apps/v1' && kind === 'DaemonSet') {
    const labels = stringMap(meta.labels);
    if (name === 'cilium' || labels['k8s-app'] === 'cilium') c.input.agent = daemonSetOf(meta, spec);
    else if (name === 'netd') c.input.netd = daemonSetOf(meta, spec);
    else skip();
    return;
  }
  if (apiVersion === 'v1' && kind === 'Node') {
    const podCIDRs = strings(spec.podCIDRs);
    if (podCIDRs.length === 0 && typeof spec.podCIDR === 'string') podCIDRs.push(spec.podCIDR);
    const osImage = obj(obj(item.status).nodeInfo).osImage;
    c.nodes.push({ name, labels: stringMap(meta.labels), podCIDRs, ...(typeof osImage === 'string' ? { osImage } : {}) });
    return;
  }
  if (apiVersion === 'cilium.io/v2' && kind === 'CiliumNode') {
    c.ciliumNodes.set(name, strings(obj(spec.ipam).podCIDRs));
    return;
  }
  if (apiVersion === 'v1' && kind === 'Pod') {
    c.pods += 1;
    const hostPorts = hostPortsOf(spec);
    if (hostPorts)
      c.hostPortPods.push({ namespace: namespace ?? 'default', name, ...(typeof spec.nodeName === 'string' ? { node: spec.nodeName } : {}), hostPorts });
    return;
  }
  skip();
}

/** Reads one file's text: Kubernetes objects and Lists, or one Helm values document. */
export function addText(c: Collector, text: string, file: string, ciliumNamespace?: string): { pods: boolean } {
  let sawPods = false;
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [];
  list.forEach((doc, index) => {
    const where = list.length > 1 ? `${file}: document ${index}` : file;
    if (doc.errors.length > 0) throw new LintInputError(`${where} is not valid YAML: ${doc.errors[0]!.message}`, { cause: doc.errors[0] });
    const data: unknown = doc.toJS();
    if (data === null || data === undefined) return;
    if (!isObj(data))
      throw new LintInputError(`${where}: expected a Kubernetes object, a List or Helm values, got ${Array.isArray(data) ? 'an array' : typeof data}`);
    if (data.apiVersion === undefined && data.kind === undefined) {
      // Helm values: no apiVersion/kind. They stand for the chart's cilium-config (and the agent's env).
      if (c.input.ciliumConfig) throw new LintInputError(`${where}: Helm values given together with another cilium-config; give one`);
      const rendered = helmToConfig(data);
      c.input.ciliumConfig = { data: rendered.data, subject: `Helm values ${file}` };
      if (rendered.serviceHost && !c.input.agent) {
        c.input.agent = { namespace: 'kube-system', name: 'cilium', env: { KUBERNETES_SERVICE_HOST: rendered.serviceHost }, args: [], podAnnotations: {} };
      }
      return;
    }
    if (typeof data.kind === 'string' && data.kind.endsWith('List') && Array.isArray(data.items)) {
      const listKind = data.kind.slice(0, -'List'.length);
      data.items.forEach((raw, i) => {
        if (!isObj(raw)) throw new LintInputError(`${where}: item ${i} is not an object`);
        // Typed lists (PodList from the API) leave apiVersion/kind off their items.
        const item = raw.kind ? raw : { ...raw, kind: listKind, apiVersion: data.apiVersion };
        if (item.kind === 'Pod') sawPods = true;
        addObject(c, item, `${where}: item ${i}`, ciliumNamespace);
      });
      return;
    }
    if (data.kind === 'Pod') sawPods = true;
    addObject(c, data, where, ciliumNamespace);
  });
  return { pods: sawPods };
}

/**
 * Reads files into one LintInput. Pod counts are known only when some file held Pods. With
 * `ciliumNamespace`, only the cilium-config in that namespace is read (others are skipped).
 */
export function loadFiles(
  files: readonly string[],
  read: (file: string) => string = (f) => readFileSync(f, 'utf8'),
  ciliumNamespace?: string,
): { input: LintInput; skipped: Record<string, number> } {
  const c = newCollector();
  let pods = false;
  for (const file of files) {
    let text: string;
    try {
      text = read(file);
    } catch (err) {
      throw new LintInputError(`${file}: cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    pods = addText(c, text, file, ciliumNamespace).pods || pods;
  }
  return { input: finish(c, pods), skipped: c.skipped };
}
