// Reading Cilium's options the way the agent does: a node's effective configuration is
// cilium-config's data with every CiliumNodeConfig that selects the node merged over it
// (Documentation/configuration/per-node-config.rst), and each key is read with the agent's
// default when unset (daemon/cmd/daemon_main.go flag defaults). Pure.

import type { CiliumOptions, LabelSelector, LintInput, LintNode, LintNodeConfig } from './types.js';

/** Does a label selector select these labels? A nil selector selects nothing, an empty one everything. */
export function selects(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return false;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const expr of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, expr.key);
    const value = labels[expr.key];
    const values = expr.values ?? [];
    switch (expr.operator) {
      case 'In':
        if (!has || !values.includes(value!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(value!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false; // an operator Kubernetes would reject: select nothing rather than guess
    }
  }
  return true;
}

/** The CiliumNodeConfigs that select a node, in the order they are merged (by namespace/name). */
export function nodeConfigsFor(node: LintNode, configs: readonly LintNodeConfig[]): LintNodeConfig[] {
  return configs.filter((c) => selects(c.nodeSelector, node.labels)).sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
}

/**
 * The effective options on a node: cilium-config, then each selecting CiliumNodeConfig's
 * `spec.defaults` over it. With no node (file mode without Nodes), cilium-config alone.
 * [uncertain] Which of two CiliumNodeConfigs wins a conflicting key is not documented; later by name wins here.
 */
export function effectiveOptions(input: LintInput, node?: LintNode): CiliumOptions {
  const merged: Record<string, string> = { ...(input.ciliumConfig?.data ?? {}) };
  if (node) for (const config of nodeConfigsFor(node, input.nodeConfigs)) Object.assign(merged, config.defaults);
  return merged;
}

const TRUE = new Set(['true', '1', 't', 'yes', 'y', 'on']);
const FALSE = new Set(['false', '0', 'f', 'no', 'n', 'off']);

/** A boolean option as viper/pflag reads it (strconv.ParseBool, plus yes/no); `fallback` when unset or unreadable. */
export function bool(options: CiliumOptions, key: string, fallback: boolean): boolean {
  const text = options[key]?.trim().toLowerCase();
  if (text === undefined || text === '') return fallback;
  if (TRUE.has(text)) return true;
  if (FALSE.has(text)) return false;
  return fallback;
}

export const str = (options: CiliumOptions, key: string): string => (options[key] ?? '').trim();

/** Whitespace- or comma-separated list (cilium-config renders lists both ways). */
export const list = (options: CiliumOptions, key: string): string[] =>
  str(options, key)
    .split(/[\s,]+/)
    .filter((item) => item !== '');

/**
 * native or tunnel. `routing-mode` (1.14+) wins; the legacy `tunnel: disabled` (≤1.13) means
 * native. The chart's default is tunnel, native for ENI and GKE
 * (install/kubernetes/cilium/templates/cilium-configmap.yaml).
 */
export function routingMode(options: CiliumOptions): 'native' | 'tunnel' {
  const mode = str(options, 'routing-mode').toLowerCase();
  if (mode === 'native' || mode === 'tunnel') return mode;
  const tunnel = str(options, 'tunnel').toLowerCase();
  if (tunnel === 'disabled') return 'native';
  if (tunnel !== '') return 'tunnel';
  return ipam(options) === 'eni' ? 'native' : 'tunnel';
}

/** The IPAM mode; the agent's default is cluster-pool (daemon_main.go `flags.String(option.IPAM, ipamOption.IPAMClusterPool, …)`). */
export const ipam = (options: CiliumOptions): string => str(options, 'ipam').toLowerCase() || 'cluster-pool';

/** enable-ipv4-masquerade, default true (daemon_main.go); the legacy `masquerade` key counts too. */
export const ipv4Masquerade = (options: CiliumOptions): boolean => bool(options, 'enable-ipv4-masquerade', bool(options, 'masquerade', true));

export const wireguard = (options: CiliumOptions): boolean => bool(options, 'enable-wireguard', false);
export const ipsec = (options: CiliumOptions): boolean => bool(options, 'enable-ipsec', false);
export const nodeEncryption = (options: CiliumOptions): boolean => bool(options, 'encrypt-node', false);

/** The enabled transparent encryption, for messages. */
export function encryptionName(options: CiliumOptions): string | undefined {
  if (wireguard(options)) return 'WireGuard';
  if (ipsec(options)) return 'IPsec';
  return undefined;
}

/**
 * Strict egress encryption and its CIDR. 1.19 renamed the keys (enable-encryption-strict-mode-egress,
 * encryption-strict-egress-cidr; the old enable-encryption-strict-mode / encryption-strict-mode-cidr
 * are deprecated until 1.20: daemon_main.go MarkDeprecated). Either spelling is read; the new one wins.
 */
export function strictEgress(options: CiliumOptions): { enabled: boolean; cidr: string; keys: string } | undefined {
  const modern = bool(options, 'enable-encryption-strict-mode-egress', false);
  const legacy = bool(options, 'enable-encryption-strict-mode', false);
  if (!modern && !legacy) return undefined;
  const cidr = modern
    ? str(options, 'encryption-strict-egress-cidr') || str(options, 'encryption-strict-mode-cidr')
    : str(options, 'encryption-strict-mode-cidr');
  return { enabled: true, cidr, keys: modern ? 'encryption-strict-egress-cidr' : 'encryption-strict-mode-cidr' };
}

/** kube-proxy-replacement: "true" (1.14+) or the legacy strict/partial (true only for strict). */
export function kubeProxyReplacement(options: CiliumOptions): boolean {
  const text = str(options, 'kube-proxy-replacement').toLowerCase();
  return text === 'true' || text === 'strict';
}

/** The L7 proxy: enable-l7-proxy defaults to true (daemon_main.go; Helm `l7Proxy: true`). */
export const l7Proxy = (options: CiliumOptions): boolean => bool(options, 'enable-l7-proxy', true);
