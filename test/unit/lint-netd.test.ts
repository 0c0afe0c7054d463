// gke-netd-source-valid-mark, the check that replaced the webhook's DaemonSet-time netd warning:
// it judges netd's flags (resolved through netd-config), the L7 proxy, and whether netd's pods can
// land on a migrated node (its nodeSelector and required node affinity, src/lint/placement.ts,
// checked here against the independent node-matching oracle in test/support/node-match.ts).

import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { netdSetting } from '../../src/lint/checks.js';
import { loadFiles, placementOf } from '../../src/lint/load.js';
import { keptOffLabel, mayRunOn } from '../../src/lint/placement.js';
import { DEFAULT_LINT_OPTIONS, lint } from '../../src/lint/run.js';
import type { Finding, LintInput } from '../../src/lint/types.js';
import { podSpecAdmits } from '../support/node-match.js';

const ID = 'gke-netd-source-valid-mark';
const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
const trigger = join(FIXTURES, 'lint', ID, 'trigger.yaml');
const netdOf = (findings: Finding[]) => findings.filter((f) => f.id === ID);
const loadText = (text: string, name: string) => loadFiles([name], () => text);

/** The trigger fixture's objects, the netd DaemonSet's pod spec changed by `edit`, minus any kinds in `drop`. */
function withNetd(edit: (podSpec: any) => void, drop: string[] = []): LintInput {
  const docs = readFileSync(trigger, 'utf8')
    .split(/^---$/m)
    .map((d) => parse(d))
    .filter((d) => d && !drop.includes(d.kind));
  const ds = docs.find((d) => d.kind === 'DaemonSet');
  edit(ds.spec.template.spec);
  return loadText(docs.map((d) => stringify(d)).join('---\n'), 'edited trigger.yaml').input;
}

const notInMigrated = {
  nodeAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'cni', operator: 'NotIn', values: ['cilium'] }] }] },
  },
};

describe('gke-netd-source-valid-mark on netd running on migrated nodes', () => {
  it('names the migrated nodes netd may run on', () => {
    const [finding, ...rest] = netdOf(lint(loadFiles([trigger]).input));
    expect(rest).toEqual([]);
    expect(finding).toMatchObject({ severity: 'warning', subject: 'DaemonSet kube-system/netd' });
    expect(finding!.message).toContain('netd may run on 1 migrated node (gke-pool-cilium-1) with enable-policy-routing');
    expect(finding!.message).toContain('cni NotIn [cilium]');
  });

  it('is silent once netd is kept off the migrated nodes (what a rule giving netd the legacy role does)', () => {
    expect(netdOf(lint(withNetd((spec) => (spec.affinity = notInMigrated))))).toEqual([]);
  });

  it('judges the nodeSelector: GKE schedules netd only on nodes labelled kube-netd-ready', () => {
    const selecting = (spec: any) => (spec.nodeSelector = { 'beta.kubernetes.io/kube-netd-ready': 'true' });
    // The fixture's migrated node does not carry it: netd never lands there.
    expect(netdOf(lint(withNetd(selecting)))).toEqual([]);
    const input = withNetd(selecting);
    const labelled = { ...input, nodes: input.nodes.map((n) => ({ ...n, labels: { ...n.labels, 'beta.kubernetes.io/kube-netd-ready': 'true' } })) };
    expect(netdOf(lint(labelled))).toHaveLength(1);
  });

  it('says nothing while no node is migrated, or the node label is another', () => {
    const input = loadFiles([trigger]).input;
    const unmigrated = { ...input, nodes: input.nodes.map((n) => ({ ...n, labels: {} })) };
    expect(netdOf(lint(unmigrated))).toEqual([]);
    expect(netdOf(lint(input, { ...DEFAULT_LINT_OPTIONS, nodeLabel: { key: 'io.cilium.migration/cilium-default', value: 'true' } }))).toEqual([]);
  });

  it('without Nodes, judges the migration label alone', () => {
    const found = netdOf(lint(withNetd(() => {}, ['Node'])));
    expect(found).toHaveLength(1);
    expect(found[0]!.message).toContain('netd is not kept off cni=cilium nodes with enable-policy-routing');
    expect(netdOf(lint(withNetd((spec) => (spec.affinity = notInMigrated), ['Node'])))).toEqual([]);
    expect(netdOf(lint(withNetd((spec) => (spec.nodeSelector = { cni: 'legacy' }), ['Node'])))).toEqual([]);
  });

  it('reads --enable-source-valid-mark too, and says nothing when both flags are off', () => {
    const found = netdOf(lint(withNetd((spec) => spec.containers[0].args.push('--enable-source-valid-mark'))));
    expect(found[0]!.message).toContain('enable-policy-routing and enable-source-valid-mark');
    const off = withNetd((spec) => (spec.containers[0].args = ['--enable-policy-routing=false', '--enable-source-valid-mark=false']));
    expect(netdOf(lint(off))).toEqual([]);
  });

  it("the upstream netd manifest (GKE's nodeSelector, flags from netd-config) on a labelled migrated node", () => {
    const ds = readFileSync(join(FIXTURES, 'daemonsets', 'netd.yaml'), 'utf8');
    const rest = readFileSync(trigger, 'utf8')
      .split(/^---$/m)
      .filter((d) => !/^kind: DaemonSet$/m.test(d))
      .join('---\n');
    const node = (labels: string) =>
      `---\napiVersion: v1\nkind: Node\nmetadata:\n  name: gke-pool-cilium-1\n  labels: {cni: cilium${labels}}\nspec: {podCIDRs: [10.52.1.0/24]}\n`;
    const docs = (labels: string) => `${ds}\n---\n${rest.replace(/---\s*apiVersion: v1\s*kind: Node[\s\S]*$/, '')}${node(labels)}`;
    expect(netdOf(lint(loadText(docs(', beta.kubernetes.io/kube-netd-ready: "true"'), 'netd').input))).toHaveLength(1);
    expect(netdOf(lint(loadText(docs(''), 'netd').input))).toEqual([]);
  });

  it('reads a 3 MiB netd argument in linear time', () => {
    const huge = { env: {}, args: [`--enable-policy-routing=${'$(X)x\n'.repeat(600_000)}`], podAnnotations: {}, namespace: 'kube-system', name: 'netd' };
    const before = process.cpuUsage();
    expect(netdSetting(huge, undefined, 'enable-policy-routing')).toBe('unknown');
    const used = process.cpuUsage(before);
    expect((used.user + used.system) / 1000).toBeLessThan(1000);
  });
});

// Random pod specs over a few keys and values, every operator, matchFields on the node name.
const KEYS = ['cni', 'zone', 'kube-netd-ready'];
const VALUES = ['cilium', 'legacy', 'a', '5', '-3'];
const requirementArb = (keys: string[]) =>
  fc.record({
    key: fc.constantFrom(...keys),
    operator: fc.constantFrom('In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'),
    values: fc.subarray(VALUES, { minLength: 1, maxLength: 3 }),
  });
const podSpecArb = fc.record(
  {
    nodeSelector: fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), { maxKeys: 2 }),
    affinity: fc.record({
      nodeAffinity: fc.record({
        requiredDuringSchedulingIgnoredDuringExecution: fc.record({
          nodeSelectorTerms: fc.array(
            fc.record(
              {
                matchExpressions: fc.array(requirementArb(KEYS), { maxLength: 3 }),
                matchFields: fc.array(requirementArb(['metadata.name']), { maxLength: 1 }),
              },
              { requiredKeys: [] },
            ),
            { minLength: 1, maxLength: 3 },
          ),
        }),
      }),
    }),
  },
  { requiredKeys: [] },
);
const labelsArb = fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), { maxKeys: 3 });

describe('placement: where a DaemonSet may run', () => {
  it('agrees with the node-matching oracle', () => {
    fc.assert(
      fc.property(podSpecArb, labelsArb, (spec, labels) => {
        // Gt/Lt need one value (the API server refuses others): the oracle and the code both place nothing then.
        expect(mayRunOn(placementOf(spec as Record<string, unknown>), { name: 'n', labels })).toBe(podSpecAdmits(spec, labels));
      }),
      { numRuns: 3000 },
    );
  });

  it('"kept off the migration label" is never wrong: no node with that label is admitted', () => {
    let keptOff = 0;
    fc.assert(
      fc.property(podSpecArb, labelsArb, (spec, labels) => {
        if (!keptOffLabel(placementOf(spec as Record<string, unknown>), 'cni', 'cilium')) return;
        keptOff += 1;
        expect(podSpecAdmits(spec, { ...labels, cni: 'cilium' })).toBe(false);
      }),
      { numRuns: 3000 },
    );
    expect(keptOff).toBeGreaterThan(100);
  });

  it('no nodeSelector and no affinity: anywhere', () => {
    expect(mayRunOn(placementOf({}), { name: 'n', labels: {} })).toBe(true);
    expect(keptOffLabel(placementOf({}), 'cni', 'cilium')).toBe(false);
  });
});
