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

// ---- what a term allows on one label key -----------------------------------------------------
// A term's expressions on one key together constrain that label's value (or its absence). Judging
// them together, not one by one, is what catches "In [cilium, aws]" plus "NotIn [aws]".

/** Does a node whose label has `value` (undefined: no such label) pass every expression? */
function keyAdmits(expressions: Expression[], value: string | undefined): boolean {
  return expressions.every((expr) => {
    const values = stringValues(expr);
    switch (expr.operator) {
      case 'In':
        return value !== undefined && values.includes(value);
      case 'NotIn':
        return value === undefined || !values.includes(value);
      case 'Exists':
        return value !== undefined;
      case 'DoesNotExist':
        return value === undefined;
      case 'Gt':
      case 'Lt': {
        // The scheduler compares integers; a label that is not one never matches.
        if (value === undefined || !INTEGER.test(value) || values.length !== 1 || !INTEGER.test(values[0]!)) return false;
        const [label, bound] = [Number(value), Number(values[0])];
        return expr.operator === 'Gt' ? label > bound : label < bound;
      }
      default:
        return false;
    }
  });
}

const INTEGER = /^-?\d+$/;
// A value no expression mentions: it stands for "any other value" when judging NotIn and Exists.
const UNMENTIONED = '\u0000unmentioned';

/** Enough label values to decide what a set of expressions allows: absence, every value they mention, integer neighbours, one value none mentions. */
function witnesses(expressions: Expression[]): Array<string | undefined> {
  const out: Array<string | undefined> = [undefined, UNMENTIONED];
  for (const expr of expressions) {
    for (const v of stringValues(expr)) {
      out.push(v);
      if ((expr.operator === 'Gt' || expr.operator === 'Lt') && INTEGER.test(v)) out.push(String(Number(v) + 1), String(Number(v) - 1));
    }
  }
  return out;
}

type TermVerdict = 'satisfied' | 'conflict' | 'needs';

function judgeExpressions(expressions: Expression[], req: Requirement): TermVerdict {
  const value = req.values[0];
  const byKey = new Map<unknown, Expression[]>();
  for (const expr of expressions) byKey.set(expr.key, [...(byKey.get(expr.key) ?? []), expr]);

  // A term that no node can match already keeps to any requirement: leave it as it is.
  for (const [key, onOther] of byKey) {
    if (key !== req.key && !witnesses(onOther).some((v) => keyAdmits(onOther, v))) return 'satisfied';
  }
  const onKey = byKey.get(req.key) ?? [];
  const allowsValue = keyAdmits(onKey, value);
  const allowsOther = witnesses(onKey).some((v) => v !== value && keyAdmits(onKey, v));
  if (req.operator === 'NotIn') {
    if (!allowsValue) return 'satisfied';
    return allowsOther ? 'needs' : 'conflict';
  }
  if (!allowsOther) return 'satisfied';
  return allowsValue ? 'needs' : 'conflict';
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
      const clash = expressions
        .filter((e) => e.key === req.key)
        .map((e) => `${req.key} ${String(e.operator)}${e.operator === 'Exists' || e.operator === 'DoesNotExist' ? '' : ` [${stringValues(e).join(', ')}]`}`);
      conflicts.push(`nodeSelectorTerms[${index}] has ${clash.join(', ')}`);
      return;
    }
    // The whole list, existing expressions first and untouched: "add" on an existing member
    // replaces it (RFC 6902), so applying the patch a second time changes nothing.
    const existing: unknown[] = Array.isArray(term.matchExpressions) ? term.matchExpressions : [];
    patch.push({ op: 'add', path: `${requiredPath}/nodeSelectorTerms/${index}/matchExpressions`, value: [...existing, expression] });
  });

  if (conflicts.length > 0) return { outcome: 'conflict', conflicts };
  if (patch.length === 0) return { outcome: 'present' };
  return { outcome: 'patch', patch };
}
