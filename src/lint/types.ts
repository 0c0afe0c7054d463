// What the lint checks read and what they say. A LintInput is a read-only bundle of the objects
// a check needs (from files, or listed once from a live cluster); each check is a pure function
// of one node's effective Cilium configuration plus this bundle. No IO here.

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  /** Stable check id, e.g. `native-routing-cidr`. */
  id: string;
  severity: Severity;
  /** What breaks and how to fix it (the Helm value to change). */
  message: string;
  /** What the finding is about: `node kind-worker`, `ConfigMap kube-system/cilium-config`, … */
  subject: string;
}

/** The agent options, as cilium-config `data` keys (strings, as the ConfigMap holds them). */
export type CiliumOptions = Readonly<Record<string, string>>;

export interface LintNode {
  name: string;
  labels: Readonly<Record<string, string>>;
  /** spec.podCIDRs (or spec.podCIDR when that is all there is). */
  podCIDRs: readonly string[];
  /** status.nodeInfo.osImage, for guessing interface names (ENI check). */
  osImage?: string;
}

export interface LabelSelector {
  matchLabels?: Readonly<Record<string, string>>;
  matchExpressions?: readonly { key: string; operator: string; values?: readonly string[] }[];
}

export interface LintNodeConfig {
  namespace: string;
  name: string;
  /** spec.nodeSelector; a missing selector selects nothing (Cilium: "nil selector matches no nodes"). */
  nodeSelector?: LabelSelector;
  defaults: CiliumOptions;
}

export interface LintDaemonSet {
  namespace: string;
  name: string;
  /** Every container's env as name → value. */
  env: Readonly<Record<string, string>>;
  /** Env entries taken from a ConfigMap key (valueFrom.configMapKeyRef), name → {configMap, key}. */
  envFromConfigMap?: Readonly<Record<string, { configMap: string; key: string }>>;
  /** Every container's command and args, in order. */
  args: readonly string[];
  /** spec.template.metadata.annotations. */
  podAnnotations: Readonly<Record<string, string>>;
  /** Where its pods may run (pod template nodeSelector and required node affinity). */
  placement?: LintPlacement;
}

export interface LintNodeSelectorTerm {
  matchExpressions: readonly { key: string; operator: string; values?: readonly string[] }[];
  matchFields: readonly { key: string; operator: string; values?: readonly string[] }[];
}

export interface LintPlacement {
  nodeSelector: Readonly<Record<string, string>>;
  /** requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms; undefined when there is none. */
  requiredTerms?: readonly LintNodeSelectorTerm[];
}

export interface LintPod {
  namespace: string;
  name: string;
  node?: string;
  hostPorts: readonly number[];
}

export interface LintInput {
  /** cilium-config `data`, when known, and where it came from. */
  ciliumConfig?: { data: CiliumOptions; subject: string };
  nodeConfigs: readonly LintNodeConfig[];
  nodes: readonly LintNode[];
  /** CiliumNode name → spec.ipam.podCIDRs. */
  ciliumNodes: ReadonlyMap<string, readonly string[]>;
  /** The Cilium agent DaemonSet. */
  agent?: LintDaemonSet;
  /** GKE's netd DaemonSet and its ConfigMap (netd-config). */
  netd?: LintDaemonSet;
  netdConfig?: Readonly<Record<string, string>>;
  /** ip-masq-agent's nonMasqueradeCIDRs, when its ConfigMap is known. */
  ipMasqAgent?: { nonMasqueradeCIDRs: readonly string[]; subject: string };
  /** Pods that declare a hostPort. */
  hostPortPods: readonly LintPod[];
  /** How many pods the view holds (for the Hubble cardinality estimate); undefined when unknown. */
  podCount?: number;
}

export interface LintOptions {
  /** The migrated-node label, e.g. { key: 'cni', value: 'cilium' }. */
  nodeLabel: { key: string; value: string };
  /** Peered VPC CIDRs the pods must reach without masquerading (ENI check). */
  peeredCIDRs: readonly string[];
  /** Interface names the nodes have (ENI check); empty when unknown. */
  interfaces: readonly string[];
  /** Check ids whose error findings should deny a write at apply time (webhook only). */
  denyChecks?: readonly string[];
}

export const emptyInput = (): LintInput => ({ nodeConfigs: [], nodes: [], ciliumNodes: new Map(), hostPortPods: [] });
