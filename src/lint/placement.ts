// Where a DaemonSet's pods may run: its pod template's nodeSelector and required node affinity,
// judged against a Node's name and labels the way the DaemonSet controller and the scheduler do
// (kubernetes staging/src/k8s.io/component-helpers/scheduling/corev1/nodeaffinity/nodeaffinity.go:
// nodeSelector pairs must all match, nodeSelectorTerms are ORed, a term's requirements ANDed, and
// a null or empty term matches no node; matchFields select only metadata.name), for specs the API
// server accepts (its validation fixes operators and value counts; a malformed requirement here
// matches nothing, as a term that fails to parse does there). Taints and tolerations are not
// judged: a DaemonSet that tolerates nothing may still be counted as placed. Pure.

import type { LintPlacement } from './types.js';

export interface Requirement {
  key: string;
  operator: string;
  values?: readonly string[];
}

function matches(req: Requirement, fields: Readonly<Record<string, string>>): boolean {
  const has = Object.hasOwn(fields, req.key);
  const value = fields[req.key];
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return has && values.includes(value!);
    case 'NotIn':
      return !has || !values.includes(value!);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    case 'Gt':
    case 'Lt': {
      // One integer value each side (the API server validates the requirement's; the label may be anything).
      if (!has || values.length !== 1 || !/^-?\d+$/.test(value!) || !/^-?\d+$/.test(values[0]!)) return false;
      const [a, b] = [BigInt(value!), BigInt(values[0]!)];
      return req.operator === 'Gt' ? a > b : a < b;
    }
    default:
      return false; // an operator Kubernetes would reject: place nothing rather than guess
  }
}

/** May the DaemonSet's pods run on this node (name and labels)? No placement given: anywhere. */
export function mayRunOn(placement: LintPlacement | undefined, node: { name: string; labels: Readonly<Record<string, string>> }): boolean {
  if (!placement) return true;
  for (const [key, value] of Object.entries(placement.nodeSelector)) if (node.labels[key] !== value) return false;
  const terms = placement.requiredTerms;
  if (terms === undefined) return true;
  return terms.some(
    (term) =>
      term.matchExpressions.length + term.matchFields.length > 0 &&
      term.matchExpressions.every((req) => matches(req, node.labels)) &&
      term.matchFields.every((req) => req.key === 'metadata.name' && matches(req, { 'metadata.name': node.name })),
  );
}

/** Does one requirement rule out every node whose label `key` is `value`, whatever its other labels? */
function excludes(req: Requirement, key: string, value: string): boolean {
  if (req.key !== key) return false;
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return !values.includes(value);
    case 'NotIn':
      return values.includes(value);
    case 'DoesNotExist':
      return true;
    default:
      return false;
  }
}

/**
 * Is the DaemonSet kept off every node labelled `key=value`, whatever else those nodes carry? For
 * when no Nodes are known (files): the migration label is all that is known of a migrated node.
 */
export function keptOffLabel(placement: LintPlacement | undefined, key: string, value: string): boolean {
  if (!placement) return false;
  if (Object.hasOwn(placement.nodeSelector, key) && placement.nodeSelector[key] !== value) return true;
  const terms = placement.requiredTerms;
  if (terms === undefined) return false;
  return terms.every((term) => term.matchExpressions.length + term.matchFields.length === 0 || term.matchExpressions.some((req) => excludes(req, key, value)));
}
