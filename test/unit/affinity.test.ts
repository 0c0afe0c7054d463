import fc from 'fast-check';
import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import type { JsonPatchOp } from '../../src/admission/types.js';
import { planAffinity, type Requirement } from '../../src/webhooks/affinity.js';
import { podSpecAdmits } from '../support/node-match.js';

const LEGACY: Requirement = { key: 'cni', operator: 'NotIn', values: ['cilium'] };
const CILIUM: Requirement = { key: 'cni', operator: 'In', values: ['cilium'] };
const BASE = '/spec';

function apply(podSpec: unknown, patch: JsonPatchOp[]): any {
  const doc = { spec: structuredClone(podSpec) };
  // validate=true: every operation must apply cleanly to the document as it stands.
  return jsonpatch.applyPatch(doc, patch as jsonpatch.Operation[], true, false).newDocument.spec;
}

const term = (...matchExpressions: object[]) => ({ matchExpressions });
const required = (...nodeSelectorTerms: object[]) => ({
  affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms } } },
});

describe('planAffinity: table', () => {
  it.each([
    ['no affinity', {}, LEGACY, 'patch'],
    ['empty affinity object', { affinity: {} }, LEGACY, 'patch'],
    ['only podAntiAffinity', { affinity: { podAntiAffinity: { x: 1 } } }, CILIUM, 'patch'],
    ['only preferred node affinity', { affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] } } }, LEGACY, 'patch'],
    ['required with no terms list', { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: {} } } }, LEGACY, 'patch'],
    ['exact NotIn already there', required(term({ key: 'cni', operator: 'NotIn', values: ['cilium'] })), LEGACY, 'present'],
    ['NotIn with more values already there', required(term({ key: 'cni', operator: 'NotIn', values: ['x', 'cilium'] })), LEGACY, 'present'],
    ['DoesNotExist implies NotIn', required(term({ key: 'cni', operator: 'DoesNotExist' })), LEGACY, 'present'],
    ['In [aws] implies NotIn [cilium]', required(term({ key: 'cni', operator: 'In', values: ['aws'] })), LEGACY, 'present'],
    ['legacy pinned In [cilium] conflicts', required(term({ key: 'cni', operator: 'In', values: ['cilium'] })), LEGACY, 'conflict'],
    ['legacy In [cilium, aws] narrows', required(term({ key: 'cni', operator: 'In', values: ['cilium', 'aws'] })), LEGACY, 'patch'],
    ['cilium In [cilium] already there', required(term({ key: 'cni', operator: 'In', values: ['cilium'] })), CILIUM, 'present'],
    ['cilium with NotIn [cilium] conflicts', required(term({ key: 'cni', operator: 'NotIn', values: ['cilium'] })), CILIUM, 'conflict'],
    ['cilium with DoesNotExist conflicts', required(term({ key: 'cni', operator: 'DoesNotExist' })), CILIUM, 'conflict'],
    ['cilium with Exists narrows', required(term({ key: 'cni', operator: 'Exists' })), CILIUM, 'patch'],
    ['nodeSelector cni=cilium satisfies cilium', { nodeSelector: { cni: 'cilium' } }, CILIUM, 'present'],
    ['nodeSelector cni=cilium contradicts legacy', { nodeSelector: { cni: 'cilium' } }, LEGACY, 'conflict'],
    ['nodeSelector cni=aws satisfies legacy', { nodeSelector: { cni: 'aws' } }, LEGACY, 'present'],
    ['nodeSelector cni=aws contradicts cilium', { nodeSelector: { cni: 'aws' } }, CILIUM, 'conflict'],
    ['only empty terms place nothing: left alone', required({}), LEGACY, 'present'],
    ['affinity not an object', { affinity: 'nope' }, LEGACY, 'invalid'],
    ['no pod spec', undefined, LEGACY, 'invalid'],
  ])('%s → %s', (_name, spec, req, outcome) => {
    expect(planAffinity(spec, req, BASE).outcome).toBe(outcome);
  });

  it('adds to every existing term and keeps what was there', () => {
    const spec = {
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      tolerations: [{ operator: 'Exists' }],
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              term({ key: 'kubernetes.io/arch', operator: 'In', values: ['amd64', 'arm64'] }),
              { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n'] }] },
            ],
          },
          preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: term({ key: 'a', operator: 'Exists' }) }],
        },
      },
    };
    const plan = planAffinity(spec, LEGACY, BASE);
    expect(plan.outcome).toBe('patch');
    if (plan.outcome !== 'patch') return;
    expect(plan.patch).toEqual([
      { op: 'add', path: '/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchExpressions/-', value: { key: 'cni', operator: 'NotIn', values: ['cilium'] } },
      { op: 'add', path: '/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/1/matchExpressions', value: [{ key: 'cni', operator: 'NotIn', values: ['cilium'] }] },
    ]);
    const after = apply(spec, plan.patch);
    expect(after.nodeSelector).toEqual(spec.nodeSelector);
    expect(after.tolerations).toEqual(spec.tolerations);
    expect(after.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution).toEqual(
      spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution,
    );
    expect(after.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[1].matchFields).toEqual(
      (spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[1] as any).matchFields,
    );
    expect(planAffinity(after, LEGACY, BASE).outcome).toBe('present');
  });

  it('reports every conflicting term', () => {
    const spec = required(
      term({ key: 'cni', operator: 'In', values: ['cilium'] }),
      term({ key: 'zone', operator: 'Exists' }),
      term({ key: 'cni', operator: 'In', values: ['cilium'] }),
    );
    const plan = planAffinity(spec, LEGACY, BASE);
    expect(plan).toEqual({
      outcome: 'conflict',
      conflicts: ['nodeSelectorTerms[0] has cni In [cilium]', 'nodeSelectorTerms[2] has cni In [cilium]'],
    });
  });

  it('uses the configured label key and value, with JSON-pointer-safe paths', () => {
    const req: Requirement = { key: 'io.cilium.migration/cilium-default', operator: 'NotIn', values: ['true'] };
    const plan = planAffinity({}, req, BASE);
    if (plan.outcome !== 'patch') throw new Error(`expected a patch, got ${plan.outcome}`);
    const after = apply({}, plan.patch);
    expect(after.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms).toEqual([
      { matchExpressions: [{ key: 'io.cilium.migration/cilium-default', operator: 'NotIn', values: ['true'] }] },
    ]);
  });
});

// ---- property tests -------------------------------------------------------------------------

const KEYS = ['cni', 'zone', 'kubernetes.io/os'];
const VALUES = ['cilium', 'aws', 'linux', 'a', '7'];

const expressionArb = fc.oneof(
  fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom('In', 'NotIn'), values: fc.uniqueArray(fc.constantFrom(...VALUES), { minLength: 1, maxLength: 3 }) }),
  fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom('Exists', 'DoesNotExist') }),
  fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom('Gt', 'Lt'), values: fc.constantFrom(['5'], ['9']) }),
);
const termArb = fc.record(
  {
    matchExpressions: fc.array(expressionArb, { maxLength: 3 }),
    matchFields: fc.constant([{ key: 'metadata.name', operator: 'In', values: ['n'] }]),
  },
  { requiredKeys: [] },
);
const podSpecArb = fc.record(
  {
    nodeSelector: fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), { maxKeys: 2 }),
    tolerations: fc.constant([{ key: 'node.cilium.io/agent-not-ready', operator: 'Exists' }]),
    affinity: fc.oneof(
      fc.constant({}),
      fc.record({ nodeAffinity: fc.constant({}) }),
      fc.record({
        podAntiAffinity: fc.constant({ requiredDuringSchedulingIgnoredDuringExecution: [] }),
        nodeAffinity: fc.record(
          {
            requiredDuringSchedulingIgnoredDuringExecution: fc.record({ nodeSelectorTerms: fc.array(termArb, { minLength: 1, maxLength: 4 }) }),
            preferredDuringSchedulingIgnoredDuringExecution: fc.constant([{ weight: 5, preference: { matchExpressions: [{ key: 'zone', operator: 'Exists' }] } }]),
          },
          { requiredKeys: [] },
        ),
      }),
    ),
  },
  { requiredKeys: [] },
);
const requirementArb = fc.constantFrom(LEGACY, CILIUM);
const nodeLabelsArb = fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), { maxKeys: 3 });

function satisfies(req: Requirement, labels: Record<string, string>): boolean {
  const equal = labels[req.key] === req.values[0];
  return req.operator === 'In' ? equal : !equal;
}

describe('planAffinity: properties', () => {
  it('a patch applies cleanly, and re-planning the result finds nothing to do (idempotent)', () => {
    fc.assert(
      fc.property(podSpecArb, requirementArb, (spec, req) => {
        const plan = planAffinity(spec, req, BASE);
        if (plan.outcome !== 'patch') return;
        const after = apply(spec, plan.patch);
        expect(planAffinity(after, req, BASE).outcome).toBe('present');
      }),
      { numRuns: 500 },
    );
  });

  it('the patched spec admits exactly the nodes the original admitted that also meet the requirement', () => {
    fc.assert(
      fc.property(podSpecArb, requirementArb, fc.array(nodeLabelsArb, { minLength: 1, maxLength: 8 }), (spec, req, nodes) => {
        const plan = planAffinity(spec, req, BASE);
        if (plan.outcome !== 'patch') return;
        const after = apply(spec, plan.patch);
        for (const labels of nodes) {
          expect(podSpecAdmits(after, labels)).toBe(podSpecAdmits(spec, labels) && satisfies(req, labels));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('"present" means the spec already keeps to the requirement on every node', () => {
    fc.assert(
      fc.property(podSpecArb, requirementArb, nodeLabelsArb, (spec, req, labels) => {
        if (planAffinity(spec, req, BASE).outcome !== 'present') return;
        if (podSpecAdmits(spec, labels)) expect(satisfies(req, labels)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it('never drops or rewrites what was there: every existing term keeps its expressions and fields', () => {
    fc.assert(
      fc.property(podSpecArb, requirementArb, (spec, req) => {
        const plan = planAffinity(spec, req, BASE);
        if (plan.outcome !== 'patch') return;
        expect(plan.patch.every((op) => op.op === 'add')).toBe(true);
        const after = apply(spec, plan.patch);
        expect(after.nodeSelector).toEqual((spec as any).nodeSelector);
        expect(after.tolerations).toEqual((spec as any).tolerations);
        const before = (spec as any).affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
        const now = after.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
        expect(now.length).toBe(Math.max(before.length, 1));
        before.forEach((t: any, i: number) => {
          expect(now[i].matchFields).toEqual(t.matchFields);
          expect((now[i].matchExpressions ?? []).slice(0, (t.matchExpressions ?? []).length)).toEqual(t.matchExpressions ?? []);
        });
        expect(after.affinity.podAntiAffinity).toEqual((spec as any).affinity?.podAntiAffinity);
        expect(after.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution).toEqual(
          (spec as any).affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution,
        );
      }),
      { numRuns: 500 },
    );
  });

  it('a conflict is a spec where adding the requirement would leave some term unable to match any node', () => {
    fc.assert(
      fc.property(podSpecArb, requirementArb, fc.array(nodeLabelsArb, { minLength: 1, maxLength: 8 }), (spec, req, nodes) => {
        if (planAffinity(spec, req, BASE).outcome !== 'conflict') return;
        // No node that meets the requirement is admitted by the spec as written... unless another term admits it.
        // What must hold: some term (or the nodeSelector) by itself can never meet the requirement.
        const selector = (spec as any).nodeSelector ?? {};
        const terms = (spec as any).affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
        const blocked = (labels: Record<string, string>) => !satisfies(req, labels);
        const selectorConflicts = req.key in selector && selector[req.key] === req.values[0] !== (req.operator === 'In');
        const someTermConflicts = terms.some((t: any) =>
          nodes.every((labels) => !podSpecAdmits({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [t] } } } }, labels) || blocked(labels)),
        );
        expect(selectorConflicts || someTermConflicts).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});
