// manifests/base/network-policy.yaml, read as a file: each Deployment is isolated for ingress by
// exactly one policy that admits only the port it serves, by the port's name (so the host-network
// component's port change carries over), and egress is left alone. Whether a CNI enforces it is
// not testable here (the e2e control plane has no NetworkPolicy implementation): docs/install.md
// says what each cloud's path looks like.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const kustomization = parse(readFileSync(join(root, 'manifests/base/kustomization.yaml'), 'utf8')) as any;
const objects: any[] = (kustomization.resources as string[]).flatMap((file) =>
  parseAllDocuments(readFileSync(join(root, 'manifests/base', file), 'utf8'))
    .map((d) => d.toJSON())
    .filter(Boolean),
);
const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
const deployment = (name: string) => objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name);
const selecting = (dep: any) =>
  policies.filter((p) => Object.entries(p.spec.podSelector.matchLabels).every(([k, v]) => dep.spec.template.metadata.labels[k] === v));

describe('NetworkPolicy in manifests/base', () => {
  it('is part of the base install', () => {
    expect(kustomization.resources).toContain('network-policy.yaml');
    expect(policies.map((p) => p.metadata.name).sort()).toEqual(['cilium-migration-guard-reaper', 'cilium-migration-guard-webhook']);
  });

  it.each([
    ['cilium-migration-guard-webhook', 'https'],
    ['cilium-migration-guard-reaper', 'http-metrics'],
  ])('%s: one policy, ingress only, admitting only its named port %s', (name, port) => {
    const dep = deployment(name);
    const [policy, ...more] = selecting(dep);
    expect(more).toEqual([]);
    expect(policy.metadata.namespace).toBe(dep.metadata.namespace);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    const ports = (policy.spec.ingress as any[]).flatMap((rule) => rule.ports);
    expect(ports).toEqual([{ port, protocol: 'TCP' }]);
    // The name resolves to a port the container declares (and its probes use).
    const container = dep.spec.template.spec.containers[0];
    expect(container.ports.map((p: any) => p.name)).toContain(port);
    for (const probe of ['livenessProbe', 'readinessProbe']) expect(container[probe].httpGet.port).toBe(port);
  });

  it('webhook: any source on its port (the API server cannot be selected by labels on every cloud)', () => {
    const policy = selecting(deployment('cilium-migration-guard-webhook'))[0];
    expect(policy.spec.ingress).toHaveLength(1);
    expect(policy.spec.ingress[0].from).toBeUndefined();
  });

  it('reaper: only from the monitoring namespace (the kubelet reaches it as the local node)', () => {
    const policy = selecting(deployment('cilium-migration-guard-reaper'))[0];
    expect(policy.spec.ingress).toEqual([
      {
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
        ports: [{ port: 'http-metrics', protocol: 'TCP' }],
      },
    ]);
  });
});
