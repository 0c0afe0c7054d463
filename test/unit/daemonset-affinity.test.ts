import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import type { Decision } from '../../src/admission/decision.js';
import { BadReview } from '../../src/admission/review.js';
import { parseConfig, SKIP_AFFINITY_ANNOTATION } from '../../src/config.js';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import { daemonSetAffinityHandler, decideDaemonSetAffinity } from '../../src/webhooks/daemonset-affinity.js';
import { daemonSet } from '../support/fixtures.js';
import { daemonSetRequest, podRequest } from '../support/reviews.js';

const config = parseConfig({});
/** A cluster with no cloud-managed Cilium in it (see test/unit/blast-radius.test.ts for one that has). */
const view = new MemoryClusterView(config);
const decide = (request: Parameters<typeof decideDaemonSetAffinity>[0], cfg: Parameters<typeof decideDaemonSetAffinity>[2]) =>
  decideDaemonSetAffinity(request, view, cfg);

function applyDecision(ds: any, decision: Decision): any {
  if (!decision.patch) return ds;
  return jsonpatch.applyPatch(structuredClone(ds), decision.patch as jsonpatch.Operation[], true, false).newDocument;
}

const terms = (ds: any) => ds.spec.template.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;

describe('DaemonSet affinity on upstream manifests', () => {
  it.each([
    ['aws-node', 'legacy', 'aws-node'],
    ['azure-cns', 'legacy', 'azure-cns'],
    ['azure-ip-masq-agent', 'legacy', 'azure-ip-masq-agent'],
    ['calico-node', 'legacy', 'gke-calico-node'],
    ['kube-flannel-ds', 'legacy', 'kube-flannel'],
    ['weave-net', 'legacy', 'weave-net'],
    ['kube-router', 'legacy', 'kube-router'],
    ['cilium', 'cilium', 'cilium-agent'],
    ['cilium-envoy', 'cilium', 'cilium-envoy'],
    ['cilium-node-init', 'cilium', 'cilium-node-init'],
  ])('%s gets role %s (rule %s), a patch that applies, and then nothing more', (name, role, rule) => {
    const ds = daemonSet(name);
    const decision = decide(daemonSetRequest(ds), config);
    expect(decision.allowed).toBe(true);
    expect(decision.reason).toBe('injected');
    expect(decision.audit).toMatchObject({ role, rule, action: 'injected' });
    const operator = role === 'cilium' ? 'In' : 'NotIn';
    expect(decision.warnings?.[0]).toContain(`cni ${operator} [cilium]`);

    const after = applyDecision(ds, decision);
    for (const term of terms(after)) {
      expect(term.matchExpressions).toContainEqual({ key: 'cni', operator, values: ['cilium'] });
    }
    // Everything else in the pod template is exactly as it was.
    const { affinity: _a, ...restAfter } = after.spec.template.spec;
    const { affinity: _b, ...restBefore } = ds.spec.template.spec;
    expect(restAfter).toEqual(restBefore);
    expect(after.metadata).toEqual(ds.metadata);

    // Re-running on the patched object (what an UPDATE or re-apply sends) changes nothing.
    const again = decide(daemonSetRequest(after, 'UPDATE', after), config);
    expect(again.reason).toBe('already-present');
    expect(again.patch).toBeUndefined();
  });

  it("keeps aws-node's own node affinity expressions, in order, and appends ours", () => {
    const ds = daemonSet('aws-node');
    const before = terms(ds);
    const after = terms(applyDecision(ds, decide(daemonSetRequest(ds), config)));
    expect(after).toHaveLength(before.length);
    before.forEach((term: any, i: number) => {
      expect(after[i].matchExpressions.slice(0, -1)).toEqual(term.matchExpressions);
      expect(after[i].matchExpressions.at(-1)).toEqual({ key: 'cni', operator: 'NotIn', values: ['cilium'] });
    });
  });

  it.each(['node-exporter', 'ip-masq-agent', 'kube-proxy'])('%s is untouched by default', (name) => {
    const decision = decide(daemonSetRequest(daemonSet(name)), config);
    expect(decision).toMatchObject({ allowed: true, reason: 'no-role' });
    expect(decision.patch).toBeUndefined();
  });

  it('kube-proxy is kept off migrated nodes when Cilium replaces it', () => {
    const decision = decide(daemonSetRequest(daemonSet('kube-proxy')), parseConfig({ kubeProxyReplacement: true }));
    expect(decision.audit).toMatchObject({ role: 'legacy', rule: 'kube-proxy' });
  });

  it("Cilium's agents are left to run everywhere with confineCilium: false (Cilium's own migration guide)", () => {
    const decision = decide(daemonSetRequest(daemonSet('cilium')), parseConfig({ confineCilium: false }));
    expect(decision).toMatchObject({ allowed: true, reason: 'no-role' });
    expect(decision.patch).toBeUndefined();
  });

  describe('rules match by name and namespace, by DaemonSet labels, or by pod-template labels', () => {
    const bare = (name: string, namespace: string, labels?: object, templateLabels?: object) => ({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name, namespace, ...(labels ? { labels } : {}) },
      spec: { template: { metadata: { labels: templateLabels ?? { app: name } }, spec: { containers: [{ name: 'c', image: 'i' }] } } },
    });
    it.each([
      ['DaemonSet label', bare('vpc-cni', 'kube-system', { 'k8s-app': 'aws-node' }), 'aws-node-labels'],
      ['pod-template label only', bare('cns', 'kube-system', undefined, { 'k8s-app': 'azure-cns' }), 'azure-cns-labels'],
      ['name in any namespace (operator installs use calico-system)', bare('calico-node', 'calico-system'), 'calico-node'],
      ['name in the kube-flannel namespace', bare('kube-flannel-ds', 'kube-flannel'), 'kube-flannel'],
      ['azure-npm by name', bare('azure-npm', 'kube-system'), 'azure-npm'],
    ])('%s', (_case, ds, rule) => {
      expect(decide(daemonSetRequest(ds), config).audit).toMatchObject({ rule, role: 'legacy' });
    });
    it('a name rule bound to a namespace does not match the same name elsewhere', () => {
      expect(decide(daemonSetRequest(bare('aws-node', 'default')), config).reason).toBe('no-role');
    });
  });

  it('presets can be switched off', () => {
    const decision = decide(daemonSetRequest(daemonSet('aws-node')), parseConfig({ presets: ['gke'] }));
    expect(decision.reason).toBe('no-role');
  });

  it("the node label is one setting: Cilium's migration-guide label", () => {
    const cfg = parseConfig({ nodeLabel: 'io.cilium.migration/cilium-default=true' });
    const after = applyDecision(daemonSet('cilium'), decide(daemonSetRequest(daemonSet('cilium')), cfg));
    expect(terms(after)[0].matchExpressions).toEqual([{ key: 'io.cilium.migration/cilium-default', operator: 'In', values: ['true'] }]);
  });

  it('user rules come first and can give any DaemonSet a role', () => {
    const cfg = parseConfig({ rules: [{ name: 'old-agent', role: 'legacy', match: { names: ['node-exporter'] } }] });
    expect(decide(daemonSetRequest(daemonSet('node-exporter')), cfg).audit).toMatchObject({ rule: 'old-agent' });
  });

  it(`opts out with the ${SKIP_AFFINITY_ANNOTATION} annotation`, () => {
    const ds = daemonSet('aws-node');
    ds.metadata.annotations = { ...(ds.metadata.annotations ?? {}), [SKIP_AFFINITY_ANNOTATION]: 'true' };
    const decision = decide(daemonSetRequest(ds), config);
    expect(decision).toMatchObject({ allowed: true, reason: 'opted-out' });
    expect(decision.patch).toBeUndefined();
  });

  describe('a contradicting affinity is never "fixed" into an unschedulable one', () => {
    const pinned = () => {
      const ds = daemonSet('aws-node');
      ds.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions.push({
        key: 'cni',
        operator: 'In',
        values: ['cilium'],
      });
      return ds;
    };
    it('warns and leaves the object alone by default', () => {
      const decision = decide(daemonSetRequest(pinned()), config);
      expect(decision).toMatchObject({ allowed: true, reason: 'conflict', audit: { action: 'conflict' } });
      expect(decision.patch).toBeUndefined();
      expect(decision.warnings?.join('\n')).toContain('nodeSelectorTerms[0] has cni In [cilium]');
    });
    it('denies with onConflict: deny, saying why and how to fix it', () => {
      const decision = decide(daemonSetRequest(pinned()), parseConfig({ onConflict: 'deny' }));
      expect(decision.allowed).toBe(false);
      expect(decision.code).toBe(403);
      expect(decision.message).toMatch(/kube-system\/aws-node is a previous-CNI agent .* would leave pods with no node to run on/);
      expect(decision.message).toContain(SKIP_AFFINITY_ANNOTATION);
    });
  });

  it('the handler refuses requests it does not serve with a 4xx error', () => {
    const handler = daemonSetAffinityHandler(config, view);
    expect(() => handler.handle(podRequest({ metadata: { name: 'p', namespace: 'd' }, spec: {} }))).toThrow(BadReview);
    expect(() => handler.handle({ ...daemonSetRequest(daemonSet('cilium')), operation: 'DELETE' })).toThrow(/CREATE and UPDATE/);
    expect(() => handler.handle({ ...daemonSetRequest(daemonSet('cilium')), object: undefined })).toThrow(/request.object/);
  });
});

describe("GKE's netd (no role; judged by the lint check gke-netd-source-valid-mark instead)", () => {
  // A registration from before the lint check still has the retired advisory-daemonsets… entry,
  // which sends netd to this same handler: the answer must be a plain allow, no patch, no warning.
  it('is admitted unchanged and without a warning, policy routing on or off', async () => {
    const on = daemonSet('netd');
    const off = daemonSet('netd');
    off.spec.template.spec.containers[0].args = off.spec.template.spec.containers[0].args.map((a: string) =>
      a.startsWith('--enable-policy-routing') ? '--enable-policy-routing=false' : a,
    );
    for (const ds of [on, off]) {
      const decision = await daemonSetAffinityHandler(config, view).handle(daemonSetRequest(ds));
      expect(decision).toMatchObject({ allowed: true, reason: 'no-role' });
      expect(decision.patch).toBeUndefined();
      expect(decision.warnings).toBeUndefined();
      expect(decision.audit).toBeUndefined();
    }
  });
});
