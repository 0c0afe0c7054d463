// The DaemonSet webhook's matchConditions, generated from the configured rules: the API server
// sends a DaemonSet write to the webhook only when some rule could give it a role. Every other
// DaemonSet write — kube-system add-ons, cloud agents, monitoring — never reaches the webhook, so
// it never waits on it and never fails because the webhook is down (the DaemonSet entry is
// failurePolicy: Fail).
//
// The expressions mirror src/webhooks/roles.ts exactly (test/unit/registration-conditions.test.ts
// checks them against it on generated DaemonSets with a CEL evaluator). What the API server does
// with them (kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/admission/plugin/cel/compile.go,
// filter.go and plugin/webhook/matchconditions/matcher.go; validation in
// pkg/apis/admissionregistration/validation/validation.go):
// - `object` is declared dyn and holds the typed object converted to unstructured: a field that is
//   absent (labels of an object without labels) is an error to read, so every read is guarded
//   with has(), and a label is looked up with `'key' in map` (has() takes no dotted keys).
// - Conditions are ANDed; one that is false skips the webhook. An evaluation error with
//   failurePolicy Fail refuses the request: no expression here may error on any DaemonSet.
// - At most 64 conditions per webhook; each expression is compiled, and its cost estimated,
//   when the configuration is written. These use no comprehensions, so their cost is a small
//   constant far below the 2.5M runtime budget for matchConditions.
// - DELETE is not registered (its object is null); on UPDATE `object` is the new object, which is
//   what the patch is about.

import type { Config } from './config.js';
import type { PresetRule } from './presets.js';
import { AKS_EBPF_DATAPLANE, AKS_MANAGED_BY, GKE_ANETD, MANAGED_DATAPLANE_NAMESPACE } from './cluster/managed-dataplane.js';
import { rulesFor } from './webhooks/roles.js';

export interface MatchCondition {
  name: string;
  expression: string;
}

/** The API server's limit on matchConditions per webhook. */
export const MAX_MATCH_CONDITIONS = 64;

/** A CEL string literal (single-quoted; backslash, quote and control characters escaped). */
export function celString(text: string): string {
  const body = [...text]
    .map((ch) => {
      if (ch === '\\') return '\\\\';
      if (ch === "'") return "\\'";
      const code = ch.codePointAt(0)!;
      if (code < 0x20 || code === 0x7f) return `\\u${code.toString(16).padStart(4, '0')}`;
      return ch;
    })
    .join('');
  return `'${body}'`;
}

const META = 'object.metadata';
const TEMPLATE_META = 'object.spec.template.metadata';
// Guards for the two label maps; template metadata is guarded level by level, since a malformed
// object (no spec yet) must make the condition false, not an error.
const HAS_LABELS = `has(${META}.labels)`;
const HAS_TEMPLATE_LABELS = `has(object.spec) && has(object.spec.template) && has(${TEMPLATE_META}) && has(${TEMPLATE_META}.labels)`;

function namespaceIs(namespace: string): string {
  return `has(${META}.namespace) && ${META}.namespace == ${celString(namespace)}`;
}

function nameIn(names: readonly string[]): string {
  return names.length === 1
    ? `has(${META}.name) && ${META}.name == ${celString(names[0]!)}`
    : `has(${META}.name) && ${META}.name in [${names.map(celString).join(', ')}]`;
}

function labelsHave(map: string, labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([key, value]) => `${celString(key)} in ${map} && ${map}[${celString(key)}] == ${celString(value)}`)
    .join(' && ');
}

/** The DaemonSet's own labels or its pod template's labels hold every one of these (roles.ts hasLabels). */
function eitherLabelsHave(labels: Record<string, string>): string {
  return `(${HAS_LABELS} && ${labelsHave(`${META}.labels`, labels)}) || (${HAS_TEMPLATE_LABELS} && ${labelsHave(`${TEMPLATE_META}.labels`, labels)})`;
}

/** One rule, as roles.ts ruleMatches reads it: namespace, names and labels all hold. */
export function ruleExpression(rule: PresetRule): string {
  const { namespace, names, labels } = rule.match;
  const parts: string[] = [];
  if (namespace !== undefined) parts.push(namespaceIs(namespace));
  if (names !== undefined) parts.push(nameIn(names));
  if (labels !== undefined && Object.keys(labels).length > 0) parts.push(`(${eitherLabelsHave(labels)})`);
  // roles.ts: a rule with neither names nor labels matches nothing (the config schema forbids it).
  if (names === undefined && labels === undefined) return 'false';
  return parts.join(' && ');
}

/**
 * True when some rule of this config could give the DaemonSet a role: the OR of every rule, with
 * rules that match on names only merged per namespace (`name in [...]`), which is the same OR.
 */
export function anyRuleExpression(config: Config): string {
  const rules = rulesFor(config);
  const byNamespace = new Map<string | undefined, string[]>();
  const clauses: string[] = [];
  for (const rule of rules) {
    const { namespace, names, labels } = rule.match;
    if (names !== undefined && labels === undefined) {
      const list = byNamespace.get(namespace) ?? [];
      if (!byNamespace.has(namespace)) {
        byNamespace.set(namespace, list);
        clauses.push(''); // placeholder, filled below in first-seen order
      }
      list.push(...names.filter((n) => !list.includes(n)));
    } else {
      clauses.push(ruleExpression(rule));
    }
  }
  const grouped = [...byNamespace.entries()].map(([namespace, names]) =>
    ruleExpression({ name: 'names', role: 'legacy', match: { ...(namespace !== undefined ? { namespace } : {}), names } }),
  );
  const ordered = clauses.map((clause) => (clause === '' ? grouped.shift()! : clause));
  if (ordered.length === 0) return 'false';
  return ordered.map((clause) => `(${clause})`).join(' || ');
}

/** src/cluster/managed-dataplane.ts managedDataplaneDaemonSet, as CEL. */
export function managedDataplaneExpression(): string {
  const isAgent = `(has(${META}.name) && ${META}.name == 'cilium') || (${eitherLabelsHave({ 'k8s-app': 'cilium' })})`;
  return (
    `${namespaceIs(MANAGED_DATAPLANE_NAMESPACE)} && (` +
    `(has(${META}.name) && ${META}.name == ${celString(GKE_ANETD)}) || ` +
    `(${eitherLabelsHave({ [AKS_EBPF_DATAPLANE.key]: AKS_EBPF_DATAPLANE.value })}) || ` +
    `(${HAS_LABELS} && ${labelsHave(`${META}.labels`, { [AKS_MANAGED_BY.key]: AKS_MANAGED_BY.value })} && (${isAgent})))`
  );
}

const NOT_MANAGED: (expr: string) => MatchCondition = (expr) => ({ name: 'not-a-cloud-managed-cilium', expression: `!(${expr})` });

/**
 * Conditions of the two role entries (the fail-closed one and Cilium's own fail-open one): not a
 * cloud's own Cilium, and some configured rule can match.
 */
export function daemonSetMatchConditions(config: Config): MatchCondition[] {
  return [NOT_MANAGED(managedDataplaneExpression()), { name: 'a-rule-can-match', expression: anyRuleExpression(config) }];
}

/**
 * Which registered DaemonSet entries carry other matchConditions than this config generates (a
 * registration made for another config: a new rule would silently never be sent the DaemonSets it
 * matches). Pure; `registered` is the MutatingWebhookConfiguration as read from the API.
 */
export function matchConditionDrift(registered: unknown, expected: { webhooks: Array<{ name: string; matchConditions: MatchCondition[] }> }): string[] {
  const webhooks = (registered as { webhooks?: Array<{ name?: unknown; matchConditions?: unknown }> } | undefined)?.webhooks;
  const byName = new Map((Array.isArray(webhooks) ? webhooks : []).map((w) => [w?.name, w?.matchConditions]));
  const same = (a: unknown, b: MatchCondition[]) =>
    Array.isArray(a) &&
    a.length === b.length &&
    a.every((c: { name?: unknown; expression?: unknown }, i) => c?.name === b[i]!.name && c?.expression === b[i]!.expression);
  return expected.webhooks.filter((w) => byName.has(w.name) && !same(byName.get(w.name), w.matchConditions)).map((w) => w.name);
}

/**
 * Registered entries this version no longer generates, by name: left by an older registration
 * that was not replaced (such as `advisory-daemonsets…`, retired with the DaemonSet-time netd
 * warning: docs/install.md "Upgrading"). Harmless while their path is one this server answers.
 */
export function staleEntries(registered: unknown, expected: { webhooks: Array<{ name: string }> }): string[] {
  const webhooks = (registered as { webhooks?: Array<{ name?: unknown }> } | undefined)?.webhooks;
  const wanted = new Set(expected.webhooks.map((w) => w.name));
  return (Array.isArray(webhooks) ? webhooks : []).map((w) => w?.name).filter((n): n is string => typeof n === 'string' && !wanted.has(n));
}
