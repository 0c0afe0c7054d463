// Planning the one node-affinity requirement a role needs, as JSON-patch "add" operations
// against a pod template spec. Pure: reads the spec, never changes it.
//
// Scheduling semantics this relies on (k8s.io/component-helpers/scheduling/corev1):
// - required nodeSelectorTerms are ORed; expressions inside one term are ANDed;
// - nodeSelector is ANDed with the affinity;
// - an empty term (no expressions, no fields) matches no node at all.
// So the requirement goes into every non-empty term, and a term that already implies it is left alone.

import type { JsonPatchOp } from '../admission/types.js';
import { isObject } from '../objects.js';

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
  { outcome: 'present' } | { outcome: 'patch'; patch: JsonPatchOp[] } | { outcome: 'conflict'; conflicts: string[] } | { outcome: 'invalid'; problem: string };

export function describeRequirement(req: Requirement): string {
  return `${req.key} ${req.operator} [${req.values[0]}]`;
}

/**
 * The first few items joined, then how many more: a message names what clashes without echoing a
 * term of 65,000 expressions back to the API server (and kubectl) whole.
 */
export function firstFew(items: readonly string[], separator: string, max = 5): string {
  const shown = items.slice(0, max).join(separator);
  return items.length > max ? `${shown}${separator}… ${items.length - max} more` : shown;
}

function stringValues(expr: Expression): string[] {
  return Array.isArray(expr.values) ? expr.values.filter((v): v is string => typeof v === 'string') : [];
}

// ---- what a term allows on one label key -----------------------------------------------------
// A term's expressions on one key together constrain that label's value (or its absence). Judging
// them together, not one by one, is what catches "In [cilium, aws]" plus "NotIn [aws]".
//
// Cost: anyone who may create a DaemonSet chooses how many expressions a term holds (the API
// server bounds only the object's size, ~3 MiB), so each key's expressions are compiled once into
// sets and bounds, and every candidate value is then judged in constant time: linear in the input,
// where judging each candidate against every expression was quadratic (65,000 expressions: 25 s).

const INTEGER = /^-?\d+$/;
// A value no expression mentions: it stands for "any other value" when judging NotIn and Exists.
const UNMENTIONED = '\u0000unmentioned';

/** Every expression on one key, compiled: a value passes them all exactly when `keyAdmits` says so. */
interface KeyConstraint {
  /** Some expression no value passes: an unknown operator, or Gt/Lt without exactly one integer bound. */
  never: boolean;
  /** In, Exists, Gt or Lt: the label must be there. */
  mustExist: boolean;
  /** DoesNotExist: the label must be absent. */
  mustBeAbsent: boolean;
  /** The values every In expression lists (their intersection); undefined: no In expression. */
  inAll: Set<string> | undefined;
  /** Every value some NotIn expression lists. */
  notIn: Set<string>;
  /** The label must be an integer above every Gt bound (the largest) and below every Lt bound (the smallest). */
  above: number | undefined;
  below: number | undefined;
  /** Enough label values to decide what the expressions allow: absence, every value they mention, integer neighbours, one value none mentions. */
  witnesses: Array<string | undefined>;
}

function compileKey(expressions: Expression[]): KeyConstraint {
  const c: KeyConstraint = {
    never: false,
    mustExist: false,
    mustBeAbsent: false,
    inAll: undefined,
    notIn: new Set(),
    above: undefined,
    below: undefined,
    witnesses: [undefined, UNMENTIONED],
  };
  for (const expr of expressions) {
    const values = stringValues(expr);
    for (const v of values) {
      c.witnesses.push(v);
      if ((expr.operator === 'Gt' || expr.operator === 'Lt') && INTEGER.test(v)) c.witnesses.push(String(Number(v) + 1), String(Number(v) - 1));
    }
    switch (expr.operator) {
      case 'In': {
        c.mustExist = true;
        const listed = new Set(values);
        if (c.inAll === undefined) c.inAll = listed;
        else for (const v of c.inAll) if (!listed.has(v)) c.inAll.delete(v);
        break;
      }
      case 'NotIn':
        for (const v of values) c.notIn.add(v);
        break;
      case 'Exists':
        c.mustExist = true;
        break;
      case 'DoesNotExist':
        c.mustBeAbsent = true;
        break;
      case 'Gt':
      case 'Lt': {
        // The scheduler compares integers; a label that is not one never matches, nor does any
        // label when the bound is not exactly one integer.
        c.mustExist = true;
        if (values.length !== 1 || !INTEGER.test(values[0]!)) {
          c.never = true;
          break;
        }
        const bound = Number(values[0]);
        if (expr.operator === 'Gt') c.above = c.above === undefined ? bound : Math.max(c.above, bound);
        else c.below = c.below === undefined ? bound : Math.min(c.below, bound);
        break;
      }
      default:
        c.never = true;
    }
  }
  return c;
}

/** Does a node whose label has `value` (undefined: no such label) pass every expression? */
function keyAdmits(c: KeyConstraint, value: string | undefined): boolean {
  if (c.never) return false;
  if (value === undefined) return !c.mustExist;
  if (c.mustBeAbsent) return false;
  if (c.inAll !== undefined && !c.inAll.has(value)) return false;
  if (c.notIn.has(value)) return false;
  if (c.above !== undefined || c.below !== undefined) {
    if (!INTEGER.test(value)) return false;
    const label = Number(value);
    if (c.above !== undefined && !(label > c.above)) return false;
    if (c.below !== undefined && !(label < c.below)) return false;
  }
  return true;
}

type TermVerdict = 'satisfied' | 'conflict' | 'needs';

function judgeExpressions(expressions: Expression[], req: Requirement): TermVerdict {
  const value = req.values[0];
  const byKey = new Map<unknown, Expression[]>();
  for (const expr of expressions) {
    const list = byKey.get(expr.key);
    if (list) list.push(expr);
    else byKey.set(expr.key, [expr]);
  }

  // A term that no node can match already keeps to any requirement: leave it as it is.
  for (const [key, onOther] of byKey) {
    if (key === req.key) continue;
    const other = compileKey(onOther);
    if (!other.witnesses.some((v) => keyAdmits(other, v))) return 'satisfied';
  }
  const onKey = compileKey(byKey.get(req.key) ?? []);
  const allowsValue = keyAdmits(onKey, value);
  const allowsOther = onKey.witnesses.some((v) => v !== value && keyAdmits(onKey, v));
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
    return {
      outcome: 'patch',
      patch: [{ op: 'add', path: `${base}/affinity`, value: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: freshTerms } } }],
    };
  }
  if (!isObject(affinity)) return { outcome: 'invalid', problem: 'spec.affinity is not an object' };

  const nodeAffinity = affinity.nodeAffinity;
  if (nodeAffinity === undefined || nodeAffinity === null) {
    return {
      outcome: 'patch',
      patch: [{ op: 'add', path: `${base}/affinity/nodeAffinity`, value: { requiredDuringSchedulingIgnoredDuringExecution: freshTerms } }],
    };
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
        .map(
          (e) => `${req.key} ${String(e.operator)}${e.operator === 'Exists' || e.operator === 'DoesNotExist' ? '' : ` [${firstFew(stringValues(e), ', ')}]`}`,
        );
      conflicts.push(`nodeSelectorTerms[${index}] has ${firstFew(clash, ', ')}`);
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
