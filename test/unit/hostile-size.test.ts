// Hostile input, size: every DaemonSet decision is linear in its input. A 3 MiB object (the API
// server's request limit) of each adversarial shape is decided in far less than a second of CPU;
// the quadratic planner took 25 s for 65,000 expressions on one key. CPU time, not wall time, so
// a loaded machine does not fail the test; the bound is still 20x under what quadratic code takes.

import fc from 'fast-check';
import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { planAffinity, type Requirement } from '../../src/webhooks/affinity.js';
import { decideDaemonSetAffinity } from '../../src/webhooks/daemonset-affinity.js';
/** A cluster view with no Cilium agent pods: no cloud-managed dataplane in sight. */
const NO_AGENTS = { agentPods: () => [] };
import { adversarialDaemonSet, countFor, SHAPES, type Shape } from '../support/adversarial.js';
import { podSpecAdmits } from '../support/node-match.js';
import { daemonSetRequest } from '../support/reviews.js';

const config = parseConfig({});
const THREE_MIB = 3 * 1024 * 1024;
const CPU_BUDGET_MS = 1000;

function cpuMs<T>(fn: () => T): { result: T; ms: number } {
  const before = process.cpuUsage();
  const result = fn();
  const used = process.cpuUsage(before);
  return { result, ms: (used.user + used.system) / 1000 };
}

const EXPECTED: Record<Shape, string> = {
  'notin-one-key': 'injected',
  'in-one-key': 'conflict',
  'many-keys': 'injected',
  unsatisfiable: 'already-present',
  'many-terms': 'injected',
  'many-conflicts': 'conflict',
  'no-role': 'no-role',
};

describe('a 3 MiB adversarial DaemonSet is decided in linear time', () => {
  it.each(SHAPES)('%s', (shape) => {
    const ds = adversarialDaemonSet(shape, countFor(shape, THREE_MIB));
    const size = JSON.stringify(ds).length;
    expect(size).toBeGreaterThan(2.8 * 1024 * 1024);
    expect(size).toBeLessThan(3.2 * 1024 * 1024);
    const request = daemonSetRequest(ds);
    decideDaemonSetAffinity(daemonSetRequest(adversarialDaemonSet(shape, 100)), NO_AGENTS, config); // warm-up
    // The better of two runs: a collection of the previous test's garbage can land in either one.
    const first = cpuMs(() => decideDaemonSetAffinity(request, NO_AGENTS, config));
    const ms = first.ms < CPU_BUDGET_MS ? first.ms : Math.min(first.ms, cpuMs(() => decideDaemonSetAffinity(request, NO_AGENTS, config)).ms);
    const decision = first.result;
    expect(decision.reason).toBe(EXPECTED[shape]);
    expect(ms, `${shape}: ${ms.toFixed(0)} ms of CPU`).toBeLessThan(CPU_BUDGET_MS);
    // What goes back to the API server (and kubectl) names the clash without echoing it whole.
    for (const warning of decision.warnings ?? []) expect(warning.length).toBeLessThan(2000);
  });

  it('a denial for a conflict (onConflict: deny) names a few clashes and counts the rest', () => {
    const deny = parseConfig({ onConflict: 'deny' });
    const decision = decideDaemonSetAffinity(daemonSetRequest(adversarialDaemonSet('many-conflicts', 20_000)), NO_AGENTS, deny);
    expect(decision.allowed).toBe(false);
    expect(decision.message).toContain('nodeSelectorTerms[0] has cni In [cilium]');
    expect(decision.message).toContain('… 19995 more');
    expect(decision.message!.length).toBeLessThan(2000);
  });

  it('the injected patch on 60,000 expressions applies and keeps every one of them', () => {
    const ds = adversarialDaemonSet('notin-one-key', 60_000);
    const decision = decideDaemonSetAffinity(daemonSetRequest(ds), NO_AGENTS, config);
    const after = jsonpatch.applyPatch(structuredClone(ds), decision.patch as jsonpatch.Operation[], true, false).newDocument as any;
    const exprs = after.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions;
    expect(exprs).toHaveLength(60_001);
    expect(exprs.at(-1)).toEqual({ key: 'cni', operator: 'NotIn', values: ['cilium'] });
  });
});

// The compiled per-key constraint must say exactly what the expressions say one by one. The
// generator here is wider than affinity.test.ts's: several expressions on one key, In lists that
// intersect, Gt/Lt bounds that are not one integer, unknown operators.
describe('planAffinity: compiled constraints agree with the node-matching oracle', () => {
  const KEYS = ['cni', 'zone'];
  const VALUES = ['cilium', 'aws', 'a', '5', '9', '-3'];
  const LEGACY: Requirement = { key: 'cni', operator: 'NotIn', values: ['cilium'] };
  const CILIUM: Requirement = { key: 'cni', operator: 'In', values: ['cilium'] };
  const expressionArb = fc.oneof(
    fc.record({
      key: fc.constantFrom(...KEYS),
      operator: fc.constantFrom('In', 'NotIn'),
      values: fc.uniqueArray(fc.constantFrom(...VALUES), { minLength: 1, maxLength: 4 }),
    }),
    fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom('Exists', 'DoesNotExist') }),
    fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom('Gt', 'Lt'), values: fc.constantFrom(['5'], ['9'], ['-3'], ['x'], ['5', '9'], []) }),
    fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom('Equals', 'in'), values: fc.constant(['cilium']) }),
  );
  const specArb = fc.array(fc.array(expressionArb, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 3 }).map((terms) => ({
    affinity: {
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms.map((matchExpressions) => ({ matchExpressions })) } },
    },
  }));
  const options = [undefined, ...VALUES, 'zz', '4', '6', '8', '10', '-2', '-4'];
  const UNIVERSE = options.flatMap((cni) => options.map((zone) => ({ ...(cni === undefined ? {} : { cni }), ...(zone === undefined ? {} : { zone }) })));
  const meets = (req: Requirement, labels: Record<string, string>) => (labels[req.key] === req.values[0]) === (req.operator === 'In');

  it('present / patch / conflict each mean what they say on every distinguishable node', () => {
    const seen = { present: 0, patch: 0, conflict: 0 };
    fc.assert(
      fc.property(specArb, fc.constantFrom(LEGACY, CILIUM), (spec, req) => {
        const plan = planAffinity(spec, req, '/spec');
        const terms = spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
        const only = (t: unknown) => ({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [t] } } } });
        const loses = terms.some((t) => UNIVERSE.some((l) => podSpecAdmits(only(t), l)) && !UNIVERSE.some((l) => podSpecAdmits(only(t), l) && meets(req, l)));
        if (plan.outcome === 'invalid') throw new Error(plan.problem);
        seen[plan.outcome] += 1;
        expect(plan.outcome === 'conflict').toBe(loses);
        if (plan.outcome === 'present') {
          for (const l of UNIVERSE) if (podSpecAdmits(spec, l)) expect(meets(req, l)).toBe(true);
        }
        if (plan.outcome === 'patch') {
          const after = jsonpatch.applyPatch({ spec: structuredClone(spec) }, plan.patch as jsonpatch.Operation[], true, false).newDocument.spec;
          for (const l of UNIVERSE) expect(podSpecAdmits(after, l)).toBe(podSpecAdmits(spec, l) && meets(req, l));
          expect(planAffinity(after, req, '/spec').outcome).toBe('present');
        }
      }),
      { numRuns: 1500 },
    );
    // The generator reaches all three outcomes.
    expect(Math.min(seen.present, seen.patch, seen.conflict)).toBeGreaterThan(20);
  });
});
