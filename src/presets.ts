// Built-in role rules: Cilium's own node agents, and the old CNIs' node agents per cloud.
// Sources and caveats for every entry are in README "Presets" and test/fixtures/SOURCES.md; the fixtures under
// test/fixtures/daemonsets are the upstream manifests these rules are tested against.

export const PRESET_NAMES = ['aws', 'azure', 'gke', 'calico', 'flannel', 'weave', 'kube-router'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export type Role = 'cilium' | 'legacy';

export interface PresetRule {
  name: string;
  role: Role;
  match: { namespace?: string; names?: string[]; labels?: Record<string, string> };
  note?: string;
}

/**
 * Cilium's node agents: they must run only on migrated nodes. Always on (unless confineCilium is
 * false), and only in Cilium's namespace (config cilium.namespace): a workload elsewhere that
 * carries k8s-app=cilium is not Cilium's, and a cloud's own Cilium is never matched (see
 * src/cluster/managed-dataplane.ts).
 */
export function ciliumRules(namespace: string): readonly PresetRule[] {
  return [
    { name: 'cilium-agent', role: 'cilium', match: { namespace, names: ['cilium'] } },
    { name: 'cilium-agent-labels', role: 'cilium', match: { namespace, labels: { 'k8s-app': 'cilium' } } },
    { name: 'cilium-envoy', role: 'cilium', match: { namespace, names: ['cilium-envoy'] } },
    { name: 'cilium-envoy-labels', role: 'cilium', match: { namespace, labels: { 'k8s-app': 'cilium-envoy' } } },
    { name: 'cilium-node-init', role: 'cilium', match: { namespace, names: ['cilium-node-init'] } },
    { name: 'cilium-node-init-labels', role: 'cilium', match: { namespace, labels: { app: 'cilium-node-init' } } },
  ];
}

/** The old CNIs' node agents, per preset: they must stay off migrated nodes. */
export const LEGACY_PRESETS: Readonly<Record<PresetName, readonly PresetRule[]>> = {
  aws: [
    {
      name: 'aws-node',
      role: 'legacy',
      match: { namespace: 'kube-system', names: ['aws-node'] },
      note: 'AWS VPC CNI: assigns ENI IPs to pods; two IPAMs on one node hand out clashing IPs.',
    },
    { name: 'aws-node-labels', role: 'legacy', match: { labels: { 'k8s-app': 'aws-node' } } },
  ],
  azure: [
    {
      name: 'azure-cns',
      role: 'legacy',
      match: { namespace: 'kube-system', names: ['azure-cns'] },
      note: 'Azure Container Networking Service: IPAM for Azure CNI (overlay/dynamic).',
    },
    { name: 'azure-cns-labels', role: 'legacy', match: { labels: { 'k8s-app': 'azure-cns' } } },
    {
      name: 'azure-ip-masq-agent',
      role: 'legacy',
      match: { namespace: 'kube-system', names: ['azure-ip-masq-agent'] },
      note: 'Programs masquerade rules for Azure CNI; Cilium masquerades itself on its nodes.',
    },
    {
      name: 'azure-npm',
      role: 'legacy',
      match: { namespace: 'kube-system', names: ['azure-npm'] },
      note: 'Azure Network Policy Manager: iptables policy for Azure CNI; Cilium enforces policy on its nodes.',
    },
  ],
  gke: [
    {
      name: 'gke-calico-node',
      role: 'legacy',
      match: { namespace: 'kube-system', names: ['calico-node'] },
      note: 'GKE network policy (Calico); Cilium enforces policy on its nodes.',
    },
  ],
  calico: [
    { name: 'calico-node', role: 'legacy', match: { names: ['calico-node'] } },
    { name: 'calico-node-labels', role: 'legacy', match: { labels: { 'k8s-app': 'calico-node' } } },
  ],
  flannel: [
    { name: 'kube-flannel', role: 'legacy', match: { names: ['kube-flannel-ds'] } },
    { name: 'kube-flannel-labels', role: 'legacy', match: { labels: { app: 'flannel' } } },
  ],
  weave: [
    { name: 'weave-net', role: 'legacy', match: { namespace: 'kube-system', names: ['weave-net'] } },
    { name: 'weave-net-labels', role: 'legacy', match: { labels: { name: 'weave-net' } } },
  ],
  'kube-router': [
    { name: 'kube-router', role: 'legacy', match: { namespace: 'kube-system', names: ['kube-router'] } },
    { name: 'kube-router-labels', role: 'legacy', match: { labels: { 'k8s-app': 'kube-router' } } },
  ],
};

/** kube-proxy, kept off migrated nodes only when Cilium replaces it (kubeProxyReplacement=true). */
export const KUBE_PROXY_RULES: readonly PresetRule[] = [
  { name: 'kube-proxy', role: 'legacy', match: { namespace: 'kube-system', names: ['kube-proxy'] } },
  { name: 'kube-proxy-labels', role: 'legacy', match: { labels: { 'k8s-app': 'kube-proxy' } } },
];
