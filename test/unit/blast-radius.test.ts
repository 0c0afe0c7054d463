// Blast radius and hands-off, the pure parts: which of Cilium's pods are exempt (only what must
// run before Cilium is ready), Cilium's rules bound to Cilium's namespace, and cloud-managed
// Cilium (GKE Dataplane V2, AKS-managed Cilium) never given a role nor its cluster patched.

import { describe, expect, it } from 'vitest';
import { describeManagedDataplane, managedDataplaneDaemonSet, managedDataplaneIn } from '../../src/cluster/managed-dataplane.js';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import type { PodInfo } from '../../src/cluster/view.js';
import { parseConfig } from '../../src/config.js';
import { decideDaemonSetAffinity } from '../../src/webhooks/daemonset-affinity.js';
import { exemptionFor } from '../../src/policy/exemptions.js';
import { resolveRole, rulesFor } from '../../src/webhooks/roles.js';
import { daemonSet } from '../support/fixtures.js';
import { daemonSetRequest } from '../support/reviews.js';

const config = parseConfig({});

function pod(namespace: string, name: string, labels: Record<string, string>, owner?: string): PodInfo {
  return {
    metadata: {
      name,
      namespace,
      labels,
      ...(owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: owner, uid: `uid-${owner}`, controller: true }] } : {}),
    },
    spec: { nodeName: 'node-1' },
  };
}

describe("exemptions of Cilium's own pods: only what must run before Cilium is ready", () => {
  // Labels as Cilium's chart sets them (install/kubernetes/cilium/templates).
  it.each([
    ['agent', { 'k8s-app': 'cilium', 'app.kubernetes.io/part-of': 'cilium', 'app.kubernetes.io/name': 'cilium-agent' }],
    ['envoy', { 'k8s-app': 'cilium-envoy', 'app.kubernetes.io/part-of': 'cilium', name: 'cilium-envoy' }],
    ['node-init', { app: 'cilium-node-init', 'app.kubernetes.io/name': 'cilium-node-init', 'app.kubernetes.io/part-of': 'cilium' }],
    ['operator', { 'io.cilium/app': 'operator', name: 'cilium-operator', 'app.kubernetes.io/part-of': 'cilium' }],
    ['operator (name label only)', { name: 'cilium-operator' }],
  ])("%s is exempt in Cilium's namespace", (_what, labels) => {
    expect(exemptionFor(pod('kube-system', 'p', labels), config)).toBe('cilium-pod');
  });

  it.each([
    ['hubble-relay', { 'k8s-app': 'hubble-relay', 'app.kubernetes.io/part-of': 'cilium', 'app.kubernetes.io/name': 'hubble-relay' }],
    ['hubble-ui', { 'k8s-app': 'hubble-ui', 'app.kubernetes.io/part-of': 'cilium', 'app.kubernetes.io/name': 'hubble-ui' }],
    ['clustermesh-apiserver', { 'k8s-app': 'clustermesh-apiserver', 'app.kubernetes.io/part-of': 'cilium' }],
    ['anything else part-of=cilium', { 'app.kubernetes.io/part-of': 'cilium' }],
  ])('%s is gated like any pod (it would get an old-CNI IP too)', (_what, labels) => {
    expect(exemptionFor(pod('kube-system', 'p', labels), config)).toBeUndefined();
  });

  it("Cilium's labels exempt nothing outside Cilium's namespace", () => {
    expect(exemptionFor(pod('default', 'p', { 'k8s-app': 'cilium' }), config)).toBeUndefined();
    expect(exemptionFor(pod('default', 'p', { name: 'cilium-operator' }), config)).toBeUndefined();
  });
});

describe("Cilium's rules match in Cilium's namespace only", () => {
  const identity = (namespace: string, labels: Record<string, string>, name = 'x') => ({ namespace, name, labels, templateLabels: {} });

  it('k8s-app=cilium gives a role in cilium.namespace, not elsewhere', () => {
    expect(resolveRole(rulesFor(config), identity('kube-system', { 'k8s-app': 'cilium' }))).toEqual({ role: 'cilium', rule: 'cilium-agent-labels' });
    expect(resolveRole(rulesFor(config), identity('default', { 'k8s-app': 'cilium' }))).toBeUndefined();
    expect(resolveRole(rulesFor(config), identity('monitoring', {}, 'cilium'))).toBeUndefined();
  });

  it('follows cilium.namespace', () => {
    const own = parseConfig({ cilium: { namespace: 'cilium' } });
    expect(resolveRole(rulesFor(own), identity('cilium', { 'k8s-app': 'cilium-envoy' }))?.rule).toBe('cilium-envoy-labels');
    expect(resolveRole(rulesFor(own), identity('cilium', {}, 'cilium'))?.rule).toBe('cilium-agent');
    expect(resolveRole(rulesFor(own), identity('kube-system', { 'k8s-app': 'cilium' }))).toBeUndefined();
  });
});

describe('cloud-managed Cilium', () => {
  const ds = (namespace: string, name: string, labels: Record<string, string>, templateLabels: Record<string, string> = {}) => ({
    namespace,
    name,
    labels,
    templateLabels,
  });

  it("recognises GKE's anetd and AKS's managed cilium, and nothing else", () => {
    expect(managedDataplaneDaemonSet(ds('kube-system', 'anetd', { 'k8s-app': 'cilium' }))).toBe('gke-dataplane-v2');
    expect(managedDataplaneDaemonSet(ds('kube-system', 'cilium', { 'k8s-app': 'cilium' }, { 'kubernetes.azure.com/ebpf-dataplane': 'cilium' }))).toBe(
      'aks-managed-cilium',
    );
    expect(managedDataplaneDaemonSet(ds('kube-system', 'cilium', { 'k8s-app': 'cilium', 'kubernetes.azure.com/managedby': 'aks' }))).toBe('aks-managed-cilium');
    // AKS labels many of its own DaemonSets managedby=aks; only its Cilium is hands-off.
    expect(managedDataplaneDaemonSet(ds('kube-system', 'azure-cns', { 'k8s-app': 'azure-cns', 'kubernetes.azure.com/managedby': 'aks' }))).toBeUndefined();
    expect(managedDataplaneDaemonSet(ds('kube-system', 'cilium', { 'k8s-app': 'cilium' }))).toBeUndefined();
    expect(managedDataplaneDaemonSet(ds('default', 'anetd', {}))).toBeUndefined();
  });

  it('never gives them a role, not even through the k8s-app=cilium label rule or a user rule', () => {
    const withRule = parseConfig({ rules: [{ name: 'mine', role: 'cilium', match: { names: ['anetd', 'cilium'] } }] });
    for (const cfg of [config, withRule]) {
      expect(resolveRole(rulesFor(cfg), { ...ds('kube-system', 'anetd', { 'k8s-app': 'cilium' }), templateLabels: { 'k8s-app': 'cilium' } })).toBeUndefined();
      expect(resolveRole(rulesFor(cfg), ds('kube-system', 'cilium', { 'k8s-app': 'cilium', 'kubernetes.azure.com/managedby': 'aks' }))).toBeUndefined();
    }
    const anetd = { ...daemonSet('cilium'), metadata: { ...daemonSet('cilium').metadata, name: 'anetd', namespace: 'kube-system' } };
    const decision = decideDaemonSetAffinity(daemonSetRequest(anetd), new MemoryClusterView(config), config);
    expect(decision).toMatchObject({ allowed: true, reason: 'managed-dataplane' });
    expect(decision.patch).toBeUndefined();
  });

  it('sees a managed dataplane in the view from the agent pods it caches (owner DaemonSet, AKS labels)', () => {
    const gke = new MemoryClusterView(config);
    gke.upsertPod(pod('kube-system', 'anetd-x7k2p', { 'k8s-app': 'cilium' }, 'anetd'));
    expect(managedDataplaneIn(gke)).toEqual({ kind: 'gke-dataplane-v2', evidence: 'pod kube-system/anetd-x7k2p of DaemonSet anetd' });

    const aks = new MemoryClusterView(config);
    aks.upsertPod(pod('kube-system', 'cilium-l7dhk', { 'k8s-app': 'cilium', 'kubernetes.azure.com/ebpf-dataplane': 'cilium' }, 'cilium'));
    expect(managedDataplaneIn(aks)?.kind).toBe('aks-managed-cilium');
    expect(describeManagedDataplane(managedDataplaneIn(aks)!)).toContain('AKS Azure CNI powered by Cilium runs this cluster');

    const own = new MemoryClusterView(config);
    own.upsertPod(pod('kube-system', 'cilium-abcde', { 'k8s-app': 'cilium', 'app.kubernetes.io/part-of': 'cilium' }, 'cilium'));
    expect(managedDataplaneIn(own)).toBeUndefined();
  });

  it('where one runs, no DaemonSet gets a patch: admitted unchanged with a warning saying why', () => {
    const view = new MemoryClusterView(config);
    view.upsertPod(pod('kube-system', 'cilium-l7dhk', { 'k8s-app': 'cilium', 'kubernetes.azure.com/ebpf-dataplane': 'cilium' }, 'cilium'));
    for (const name of ['azure-cns', 'aws-node', 'calico-node']) {
      const decision = decideDaemonSetAffinity(daemonSetRequest(daemonSet(name)), view, config);
      expect(decision).toMatchObject({ allowed: true, reason: 'managed-dataplane', audit: { action: 'managed-dataplane', dataplane: 'aks-managed-cilium' } });
      expect(decision.patch).toBeUndefined();
      expect(decision.warnings).toEqual([
        `cilium-migration-guard left kube-system/${name} unchanged (role legacy)`,
        "AKS Azure CNI powered by Cilium runs this cluster's Cilium: the migration does not apply",
      ]);
      // The API server cuts each warning at 120 characters.
      for (const warning of decision.warnings!) expect(warning.length).toBeLessThanOrEqual(120);
    }
    // Without it, the same DaemonSet is patched as usual.
    expect(decideDaemonSetAffinity(daemonSetRequest(daemonSet('azure-cns')), new MemoryClusterView(config), config).reason).toBe('injected');
  });
});

describe('`registration` prints the registrations for a config', () => {
  it('the base config gives exactly the shipped manifest; another config gives other DaemonSet conditions', async () => {
    const { registrationText } = await import('../../src/commands/registration.js');
    const { parseAllDocuments } = await import('yaml');
    const { readFileSync } = await import('node:fs');
    const docs = (text: string) => parseAllDocuments(text).map((d) => d.toJSON());
    const shipped = docs(readFileSync(new URL('../../manifests/base/webhook-configurations.yaml', import.meta.url), 'utf8'));
    const base = docs(registrationText(['--config', 'manifests/base/config.yaml'], {}));
    expect(base).toEqual(shipped);
    const aws = docs(registrationText(['--config', 'manifests/overlays/aws/config.yaml'], {}));
    expect(aws[0].webhooks[0].matchConditions).not.toEqual(shipped[0].webhooks[0].matchConditions);
    expect(aws[0].webhooks[0].matchConditions[1].expression).toContain("'aws-node'");
    expect(aws[0].webhooks[0].matchConditions[1].expression).not.toContain("'azure-cns'");
    // --url for an out-of-cluster webhook; anything but https is refused.
    expect(docs(registrationText(['--url', 'https://10.0.0.5:8443'], {}))[1].webhooks[0].clientConfig).toEqual({ url: 'https://10.0.0.5:8443/validate/pods' });
    expect(() => registrationText(['--url', 'http://10.0.0.5'], {})).toThrow(/must be an https:\/\/ URL/);
  });
});
