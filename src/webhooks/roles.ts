// Which role a DaemonSet plays in the migration: Cilium's agent, an old-CNI agent, or neither.
// Rules are tried in order (user rules, then Cilium's, then the enabled presets); first match wins.
// A cloud's own Cilium (GKE's anetd, AKS's managed cilium) never gets a role, whatever the rules.
// The registration's matchConditions (src/registration-conditions.ts) are generated from the same
// rules, so only DaemonSets some rule can match are ever sent to the webhook.

import type { Config } from '../config.js';
import { managedDataplaneDaemonSet } from '../cluster/managed-dataplane.js';
import { hasLabels } from '../policy/labels.js';
import { ciliumRules, KUBE_PROXY_RULES, LEGACY_PRESETS, type PresetRule, type Role } from '../presets.js';

export interface WorkloadIdentity {
  namespace: string;
  name: string;
  /** The DaemonSet's own labels. */
  labels: Record<string, string>;
  /** Labels of its pod template: Helm charts sometimes label only one of the two. */
  templateLabels: Record<string, string>;
}

export interface RoleMatch {
  role: Role;
  rule: string;
}

// Configs are frozen, so the ordered rule list is built once per config, not per request.
const rulesCache = new WeakMap<Config, readonly PresetRule[]>();

export function rulesFor(config: Config): readonly PresetRule[] {
  let rules = rulesCache.get(config);
  if (!rules) {
    rules = Object.freeze([
      ...config.rules,
      ...(config.confineCilium ? ciliumRules(config.cilium.namespace) : []),
      ...(config.kubeProxyReplacement ? KUBE_PROXY_RULES : []),
      ...config.presets.flatMap((preset) => LEGACY_PRESETS[preset]),
    ]);
    rulesCache.set(config, rules);
  }
  return rules;
}

export function ruleMatches(rule: PresetRule, workload: WorkloadIdentity): boolean {
  const { namespace, names, labels } = rule.match;
  if (namespace !== undefined && namespace !== workload.namespace) return false;
  if (names !== undefined && !names.includes(workload.name)) return false;
  if (labels !== undefined && !hasLabels(workload.labels, labels) && !hasLabels(workload.templateLabels, labels)) {
    return false;
  }
  return names !== undefined || labels !== undefined;
}

export function resolveRole(rules: readonly PresetRule[], workload: WorkloadIdentity): RoleMatch | undefined {
  if (managedDataplaneDaemonSet(workload)) return undefined;
  const rule = rules.find((candidate) => ruleMatches(candidate, workload));
  return rule ? { role: rule.role, rule: rule.name } : undefined;
}
