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
    [
      'expressions judged together: In [cilium, aws] + NotIn [aws] conflicts',
      required(term({ key: 'cni', operator: 'In', values: ['cilium', 'aws'] }, { key: 'cni', operator: 'NotIn', values: ['aws'] })),
      LEGACY,
      'conflict',
    ],
    [
      'expressions judged together: NotIn [aws] + Exists narrows for cilium',
      required(term({ key: 'cni', operator: 'NotIn', values: ['aws'] }, { key: 'cni', operator: 'Exists' })),
      CILIUM,
      'patch',
    ],
    [
      'a term no node matches (other key) is left alone',
      required(
        term(
          { key: 'zone', operator: 'In', values: ['a'] },
          { key: 'zone', operator: 'NotIn', values: ['a'] },
          { key: 'cni', operator: 'In', values: ['cilium'] },
        ),
      ),
      LEGACY,
      'present',
    ],
    ['Gt/Lt on a non-integer value exclude it', required(term({ key: 'cni', operator: 'Gt', values: ['5'] })), LEGACY, 'present'],
    ['affinity not an object', { affinity: 'nope' }, LEGACY, 'invalid'],
    ['no pod spec', undefined, LEGACY, 'invalid'],
  ])('%s', (_name, spec, req, outcome) => {
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
      {
        op: 'add',
        path: '/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchExpressions',
        value: [
          { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64', 'arm64'] },
          { key: 'cni', operator: 'NotIn', values: ['cilium'] },
        ],
      },
      {
        op: 'add',
        path: '/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/1/matchExpressions',
        value: [{ key: 'cni', operator: 'NotIn', values: ['cilium'] }],
      },
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
  fc.record({
    key: fc.constantFrom(...KEYS),
    operator: fc.constantFrom('In', 'NotIn'),
    values: fc.uniqueArray(fc.constantFrom(...VALUES), { minLength: 1, maxLength: 3 }),
  }),
  fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom('Exists', 'DoesNotExist') }),
  fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom('Gt', 'Lt'), values: fc.constantFrom(['5'], ['9']) }),
);
const termArb = fc.record(
  {
    matchExpressions: fc.array(expressionArb, { maxLength: 4 }),
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
            preferredDuringSchedulingIgnoredDuringExecution: fc.constant([
              { weight: 5, preference: { matchExpressions: [{ key: 'zone', operator: 'Exists' }] } },
            ]),
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

// Every node the generated specs can tell apart: each key absent or set to a generated value, an
// unmentioned value, or an integer just past the Gt/Lt bounds.
const UNIVERSE: Array<Record<string, string>> = (() => {
  const options: Array<string | undefined> = [undefined, ...VALUES, 'zz', '4', '6', '10'];
  let nodes: Array<Record<string, string>> = [{}];
  for (const key of KEYS) {
    nodes = nodes.flatMap((labels) => options.map((v) => (v === undefined ? labels : { ...labels, [key]: v })));
  }
  return nodes;
})();

function satisfies(req: Requirement, labels: Record<string, string>): boolean {
  const equal = labels[req.key] === req.values[0];
  return req.operator === 'In' ? equal : !equal;
}

const termsOf = (spec: any): any[] => spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
const onlyTerm = (t: any) => ({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [t] } } } });
/** A term that matches some node but none once the requirement is added. */
const loses = (t: any, req: Requirement) =>
  UNIVERSE.some((labels) => podSpecAdmits(onlyTerm(t), labels)) && !UNIVERSE.some((labels) => podSpecAdmits(onlyTerm(t), labels) && satisfies(req, labels));
const selectorContradicts = (spec: any, req: Requirement) =>
  typeof spec?.nodeSelector?.[req.key] === 'string' && (spec.nodeSelector[req.key] === req.values[0]) !== (req.operator === 'In');
const selectorSatisfies = (spec: any, req: Requirement) =>
  typeof spec?.nodeSelector?.[req.key] === 'string' && (spec.nodeSelector[req.key] === req.values[0]) === (req.operator === 'In');

describe('planAffinity: properties', () => {
  it('a patch applies cleanly; re-planning the result finds nothing to do; applying it twice equals applying it once', () => {
    fc.assert(
      fc.property(podSpecArb, requirementArb, (spec, req) => {
        const plan = planAffinity(spec, req, BASE);
        if (plan.outcome !== 'patch') return;
        const once = apply(spec, plan.patch);
        expect(planAffinity(once, req, BASE).outcome).toBe('present');
        expect(apply(once, plan.patch)).toEqual(once);
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
        for (const labels of [...nodes, ...UNIVERSE]) {
          expect(podSpecAdmits(after, labels)).toBe(podSpecAdmits(spec, labels) && satisfies(req, labels));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('"present" means the spec already keeps to the requirement on every node', () => {
    fc.assert(
      fc.property(podSpecArb, requirementArb, (spec, req) => {
        if (planAffinity(spec, req, BASE).outcome !== 'present') return;
        for (const labels of UNIVERSE) {
          if (podSpecAdmits(spec, labels)) expect(satisfies(req, labels)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('"conflict" exactly when the nodeSelector contradicts, or some term would lose every node it matches', () => {
    let conflicts = 0;
    fc.assert(
      fc.property(podSpecArb, requirementArb, (spec, req) => {
        const outcome = planAffinity(spec, req, BASE).outcome;
        const expected = !selectorSatisfies(spec, req) && (selectorContradicts(spec, req) || termsOf(spec).some((t) => loses(t, req)));
        if (outcome === 'conflict') conflicts += 1;
        expect(outcome === 'conflict').toBe(expected);
      }),
      { numRuns: 500 },
    );
    expect(conflicts).toBeGreaterThan(0); // the generator does reach conflicts
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
        const before = termsOf(spec);
        const now = termsOf(after);
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
});
