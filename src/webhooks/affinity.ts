// Planning the one node-affinity requirement a role needs, as JSON-patch "add" operations
// against a pod template spec. Pure: reads the spec, never changes it.
//
// Scheduling semantics this relies on (k8s.io/component-helpers/scheduling/corev1):
// - required nodeSelectorTerms are ORed; expressions inside one term are ANDed;
// - nodeSelector is ANDed with the affinity;
// - an empty term (no expressions, no fields) matches no node at all.
// So the requirement goes into every non-empty term, and a term that already implies it is left alone.

import type { JsonPatchOp } from '../admission/types.js';

export interface Requirement {
  key: string;
  operator: 'In' | 'NotIn';
  values: [string];
}

interface Expression {
  key?: unknown;
  operator?: unknown;
  values?: unknown;
}

interface Term {
  matchExpressions?: unknown;
  matchFields?: unknown;
}

export type AffinityPlan =
  | { outcome: 'present' }
  | { outcome: 'patch'; patch: JsonPatchOp[] }
  | { outcome: 'conflict'; conflicts: string[] }
  | { outcome: 'invalid'; problem: string };

export function describeRequirement(req: Requirement): string {
  return `${req.key} ${req.operator} [${req.values[0]}]`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringValues(expr: Expression): string[] {
  return Array.isArray(expr.values) ? expr.values.filter((v): v is string => typeof v === 'string') : [];
}

/** Does this expression on the requirement's key already force "label == value"? */
function forcesValue(expr: Expression, value: string): boolean {
  const values = stringValues(expr);
  return expr.operator === 'In' && values.length > 0 && values.every((v) => v === value);
}

/** Does this expression on the requirement's key already rule out "label == value"? */
function excludesValue(expr: Expression, value: string): boolean {
  const values = stringValues(expr);
  switch (expr.operator) {
    case 'NotIn':
      return values.includes(value);
    case 'DoesNotExist':
      return true;
    case 'In':
      return !values.includes(value);
    default:
      // Exists, Gt, Lt: Gt/Lt need an integer label, which a non-numeric value never is.
      return (expr.operator === 'Gt' || expr.operator === 'Lt') && !/^-?\d+$/.test(value);
  }
}

type TermVerdict = 'satisfied' | 'conflict' | 'needs';

function judgeExpressions(expressions: Expression[], req: Requirement): TermVerdict {
  const value = req.values[0];
  const onKey = expressions.filter((e) => e.key === req.key);
  const [implies, contradicts] =
    req.operator === 'NotIn' ? [excludesValue, forcesValue] : [forcesValue, excludesValue];
  if (onKey.some((e) => implies(e, value))) return 'satisfied';
  if (onKey.some((e) => contradicts(e, value))) return 'conflict';
  return 'needs';
}

function judgeNodeSelector(nodeSelector: unknown, req: Requirement): TermVerdict {
  if (!isObject(nodeSelector) || typeof nodeSelector[req.key] !== 'string') return 'needs';
  const equal = nodeSelector[req.key] === req.values[0];
  const wantsEqual = req.operator === 'In';
  return equal === wantsEqual ? 'satisfied' : 'conflict';
}

function isEmptyTerm(term: Term): boolean {
  const exprs = Array.isArray(term.matchExpressions) ? term.matchExpressions : [];
  const fields = Array.isArray(term.matchFields) ? term.matchFields : [];
  return exprs.length === 0 && fields.length === 0;
}

/**
 * Plans the patch that makes every placement allowed by `podSpec` satisfy `req`.
 * `base` is the JSON pointer of podSpec inside the patched object.
 */
export function planAffinity(podSpec: unknown, req: Requirement, base: string): AffinityPlan {
  if (!isObject(podSpec)) return { outcome: 'invalid', problem: 'the pod template has no spec' };
  const expression = { key: req.key, operator: req.operator, values: [...req.values] };
  const freshTerms = { nodeSelectorTerms: [{ matchExpressions: [expression] }] };

  const bySelector = judgeNodeSelector(podSpec.nodeSelector, req);
  if (bySelector === 'satisfied') return { outcome: 'present' };
  if (bySelector === 'conflict') {
    return { outcome: 'conflict', conflicts: [`nodeSelector ${req.key}=${String((podSpec.nodeSelector as Record<string, unknown>)[req.key])}`] };
  }

  const affinity = podSpec.affinity;
  if (affinity === undefined || affinity === null) {
    return { outcome: 'patch', patch: [{ op: 'add', path: `${base}/affinity`, value: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: freshTerms } } }] };
  }
  if (!isObject(affinity)) return { outcome: 'invalid', problem: 'spec.affinity is not an object' };

  const nodeAffinity = affinity.nodeAffinity;
  if (nodeAffinity === undefined || nodeAffinity === null) {
    return { outcome: 'patch', patch: [{ op: 'add', path: `${base}/affinity/nodeAffinity`, value: { requiredDuringSchedulingIgnoredDuringExecution: freshTerms } }] };
  }
  if (!isObject(nodeAffinity)) return { outcome: 'invalid', problem: 'spec.affinity.nodeAffinity is not an object' };

  const requiredPath = `${base}/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution`;
  const required = nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution;
  if (required === undefined || required === null) {
    return { outcome: 'patch', patch: [{ op: 'add', path: requiredPath, value: freshTerms }] };
  }
  if (!isObject(required)) return { outcome: 'invalid', problem: 'requiredDuringSchedulingIgnoredDuringExecution is not an object' };

  const terms = required.nodeSelectorTerms;
  if (terms === undefined || terms === null || (Array.isArray(terms) && terms.length === 0)) {
    return { outcome: 'patch', patch: [{ op: 'add', path: `${requiredPath}/nodeSelectorTerms`, value: freshTerms.nodeSelectorTerms }] };
  }
  if (!Array.isArray(terms)) return { outcome: 'invalid', problem: 'nodeSelectorTerms is not a list' };

  const patch: JsonPatchOp[] = [];
  const conflicts: string[] = [];
  terms.forEach((raw: unknown, index) => {
    if (!isObject(raw)) return;
    const term = raw as Term;
    // An empty term places no pod anywhere, so it already keeps to any requirement;
    // adding an expression would make it match nodes it never matched.
    if (isEmptyTerm(term)) return;
    const expressions = Array.isArray(term.matchExpressions) ? (term.matchExpressions as Expression[]).filter(isObject) : [];
    const verdict = judgeExpressions(expressions, req);
    if (verdict === 'satisfied') return;
    if (verdict === 'conflict') {
      const clash = expressions.find((e) => e.key === req.key)!;
      conflicts.push(`nodeSelectorTerms[${index}] has ${req.key} ${String(clash.operator)} [${stringValues(clash).join(', ')}]`);
      return;
    }
    const termPath = `${requiredPath}/nodeSelectorTerms/${index}`;
    patch.push(
      Array.isArray(term.matchExpressions)
        ? { op: 'add', path: `${termPath}/matchExpressions/-`, value: expression }
        : { op: 'add', path: `${termPath}/matchExpressions`, value: [expression] },
    );
  });

  if (conflicts.length > 0) return { outcome: 'conflict', conflicts };
  if (patch.length === 0) return { outcome: 'present' };
  return { outcome: 'patch', patch };
}
