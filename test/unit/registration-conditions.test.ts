// The DaemonSet entries' matchConditions (src/registration-conditions.ts), evaluated with a CEL
// evaluator (@marcbachmann/cel-js) on many generated DaemonSets, against the rule matcher the
// webhook itself uses (src/webhooks/roles.ts) and the managed-dataplane test. The real API server's
// verdict on the same expressions is in test/e2e/blast-radius.e2e.test.ts.

import { parse as celParse } from '@marcbachmann/cel-js';
import fc from 'fast-check';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../src/config.js';
import { LEGACY_PRESETS, KUBE_PROXY_RULES, ciliumRules, type PresetRule } from '../../src/presets.js';
import { MUTATING_CILIUM_NAME, MUTATING_NAME, MUTATING_NODES_NAME, mutatingWebhookConfiguration } from '../../src/registration.js';
import { celString, MAX_MATCH_CONDITIONS, staleEntries } from '../../src/registration-conditions.js';
import { resolveRole, rulesFor } from '../../src/webhooks/roles.js';
import { daemonSet } from '../support/fixtures.js';

type Conditions = Array<{ name: string; expression: string }>;

function entries(config: Config): Record<string, Conditions> {
  const configuration = mutatingWebhookConfiguration({ endpoint: { url: 'https://127.0.0.1:8443' }, ownNamespace: 'cilium-migration-guard', config });
  return Object.fromEntries(configuration.webhooks.map((w) => [w.name, w.matchConditions as Conditions]));
}

/** Evaluates every condition as the API server does: all true → the webhook is called; any throw is a failure here. */
function compile(conditions: Conditions): (object: unknown) => boolean {
  const programs = conditions.map((c) => ({ name: c.name, run: celParse(c.expression) }));
  return (object) =>
    programs.every(({ name, run }) => {
      let result: unknown;
      try {
        result = run({ object, request: {} });
      } catch (err) {
        throw new Error(`condition ${name} errored on ${JSON.stringify(object)}: ${(err as Error).message}`, { cause: err });
      }
      if (typeof result !== 'boolean') throw new Error(`condition ${name} returned ${typeof result}`);
      return result;
    });
}

interface Shape {
  namespace: string;
  name?: string;
  labels?: Record<string, string>;
  template?: { labels?: Record<string, string> } | 'no-metadata' | 'no-template';
}

/** The object as the API server hands it to CEL: absent maps and empty strings are left out (omitempty). */
function objectOf(shape: Shape): Record<string, unknown> {
  const metadata: Record<string, unknown> = { namespace: shape.namespace };
  if (shape.name) metadata.name = shape.name;
  if (shape.labels && Object.keys(shape.labels).length > 0) metadata.labels = shape.labels;
  const spec: Record<string, unknown> = { selector: { matchLabels: { app: 'x' } } };
  if (shape.template !== 'no-template') {
    const template: Record<string, unknown> = { spec: { containers: [] } };
    if (shape.template !== 'no-metadata') {
      const labels = shape.template?.labels;
      template.metadata = labels && Object.keys(labels).length > 0 ? { labels } : {};
    }
    spec.template = template;
  }
  return { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata, spec };
}

function identityOf(shape: Shape) {
  const template = typeof shape.template === 'object' ? (shape.template.labels ?? {}) : {};
  return { namespace: shape.namespace, name: shape.name ?? '', labels: shape.labels ?? {}, templateLabels: template };
}

const CUSTOM_RULES: PresetRule[] = [
  { name: 'dotted-label', role: 'legacy', match: { namespace: 'kube-system', labels: { 'example.com/agent': 'old-cni', tier: 'node' } } },
  { name: 'quoted-name', role: 'legacy', match: { names: ["it's-an-agent", 'back\\slash'] } },
  { name: 'anywhere-label', role: 'cilium', match: { labels: { 'app.kubernetes.io/name': 'my-cilium' } } },
];

const CONFIGS: Record<string, Config> = {
  default: parseConfig({}),
  aws: parseConfig({ presets: ['aws'] }),
  azure: parseConfig({ presets: ['azure'] }),
  gke: parseConfig({ presets: ['gke'] }),
  'no presets, Cilium not confined': parseConfig({ presets: [], confineCilium: false }),
  'kube-proxy replacement, Cilium in its own namespace': parseConfig({ kubeProxyReplacement: true, cilium: { namespace: 'cilium' } }),
  'custom rules': parseConfig({ rules: CUSTOM_RULES }),
};

// Every name, namespace and label any rule, preset or managed-dataplane test looks at,
// plus bystanders, so generated DaemonSets hit every branch.
const allRules: PresetRule[] = [
  ...ciliumRules('kube-system'),
  ...ciliumRules('cilium'),
  ...Object.values(LEGACY_PRESETS).flat(),
  ...KUBE_PROXY_RULES,
  ...CUSTOM_RULES,
];
const NAMES = [...new Set([...allRules.flatMap((r) => r.match.names ?? []), 'netd', 'anetd', 'node-exporter', 'fluent-bit'])];
const NAMESPACES = ['kube-system', 'cilium', 'monitoring', 'calico-system', 'kube-flannel', 'default'];
const LABELS: Array<[string, string]> = [
  ...allRules.flatMap((r) => Object.entries(r.match.labels ?? {})),
  ['kubernetes.azure.com/managedby', 'aks'],
  ['kubernetes.azure.com/ebpf-dataplane', 'cilium'],
  ['app.kubernetes.io/part-of', 'cilium'],
  ['k8s-app', 'node-exporter'],
  ['k8s-app', 'aws-node-other'],
  ['tier', 'web'],
];

const labelsArb = fc.option(
  fc.subarray(LABELS, { maxLength: 4 }).map((pairs) => Object.fromEntries(pairs)),
  { nil: undefined },
);
const shapeArb: fc.Arbitrary<Shape> = fc.record(
  {
    namespace: fc.constantFrom(...NAMESPACES),
    name: fc.option(fc.constantFrom(...NAMES), { nil: undefined, freq: 8 }),
    labels: labelsArb,
    template: fc.oneof(
      { weight: 8, arbitrary: fc.record({ labels: labelsArb }, { requiredKeys: [] }) },
      { weight: 1, arbitrary: fc.constantFrom('no-metadata' as const, 'no-template' as const) },
    ),
  },
  { requiredKeys: ['namespace', 'template'] },
);

describe.each(Object.entries(CONFIGS))('matchConditions for config: %s', (_label, config) => {
  const byName = entries(config);
  const roleEntry = compile(byName[MUTATING_NAME]!);
  const ciliumEntry = compile(byName[MUTATING_CILIUM_NAME]!);
  const rules = rulesFor(config);

  it('send a DaemonSet exactly when a rule gives it a role, never a cloud-managed Cilium, and never error', () => {
    fc.assert(
      fc.property(shapeArb, (shape) => {
        const object = objectOf(shape);
        const role = resolveRole(rules, identityOf(shape)) !== undefined;
        expect(roleEntry(object)).toBe(role);
        // Cilium's own entry (objectSelector part-of=cilium) uses the same conditions.
        expect(ciliumEntry(object)).toBe(role);
      }),
      { numRuns: 3000 },
    );
  });

  it('stay within what the API server accepts', () => {
    for (const conditions of Object.values(byName)) {
      expect(conditions.length).toBeLessThanOrEqual(MAX_MATCH_CONDITIONS);
      for (const { name } of conditions) expect(name).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/);
      expect(new Set(conditions.map((c) => c.name)).size).toBe(conditions.length);
    }
  });
});

describe('on the upstream manifests (default config)', () => {
  const config = CONFIGS.default!;
  const roleEntry = compile(entries(config)[MUTATING_NAME]!);
  const files = readdirSync(fileURLToPath(new URL('../fixtures/daemonsets/', import.meta.url))).map((f) => f.replace(/\.yaml$/, ''));

  it.each(files)('%s reaches the webhook exactly when a rule gives it a role', (file) => {
    const ds = daemonSet(file);
    const shape: Shape = {
      namespace: ds.metadata.namespace ?? 'default',
      name: ds.metadata.name,
      labels: ds.metadata.labels,
      template: { labels: ds.spec.template.metadata?.labels },
    };
    // The fixture as the API server would pass it (with its namespace set).
    const object = { ...ds, metadata: { ...ds.metadata, namespace: shape.namespace } };
    expect(roleEntry(object)).toBe(resolveRole(rulesFor(config), identityOf(shape)) !== undefined);
  });

  it('node-exporter and netd are never sent; aws-node and the Cilium agent are', () => {
    const obj = (name: string) => daemonSet(name);
    expect(roleEntry({ ...obj('node-exporter') })).toBe(false);
    expect(roleEntry(obj('aws-node'))).toBe(true);
    expect(roleEntry(obj('cilium'))).toBe(true);
    // GKE's netd is judged by the lint check gke-netd-source-valid-mark, not at DaemonSet admission.
    expect(roleEntry(obj('netd'))).toBe(false);
  });

  it('registers two DaemonSet entries and the node entry, in that order (the overlays patch them by index)', () => {
    expect(Object.keys(entries(config))).toEqual([MUTATING_NAME, MUTATING_CILIUM_NAME, MUTATING_NODES_NAME]);
  });

  it("a cloud's own Cilium is never sent: GKE's anetd (k8s-app=cilium) and AKS's managed cilium", () => {
    const anetd = {
      metadata: { namespace: 'kube-system', name: 'anetd', labels: { 'k8s-app': 'cilium' } },
      spec: { template: { metadata: { labels: { 'k8s-app': 'cilium' } } } },
    };
    const aks = {
      metadata: { namespace: 'kube-system', name: 'cilium', labels: { 'k8s-app': 'cilium', 'kubernetes.azure.com/managedby': 'aks' } },
      spec: { template: { metadata: { labels: { 'k8s-app': 'cilium', 'kubernetes.azure.com/ebpf-dataplane': 'cilium' } } } },
    };
    expect(roleEntry(anetd)).toBe(false);
    expect(roleEntry(aks)).toBe(false);
    // Other AKS-managed DaemonSets keep their preset role (azure-cns is the old CNI's IPAM).
    const cns = daemonSet('azure-cns');
    expect(roleEntry({ ...cns, metadata: { ...cns.metadata, labels: { ...cns.metadata.labels, 'kubernetes.azure.com/managedby': 'aks' } } })).toBe(true);
  });
});

describe('celString', () => {
  it.each([["it's"], ['back\\slash'], ['tab\there'], ['plain']])('round-trips %j through CEL', (text) => {
    expect(celParse(`${celString(text)} == x`)({ x: text })).toBe(true);
  });
});

describe('matchConditionDrift (serve warns when the registration was made for another config)', () => {
  it('names the entries whose conditions differ, and none when they match', async () => {
    const { matchConditionDrift } = await import('../../src/registration-conditions.js');
    const options = { endpoint: { url: 'https://127.0.0.1:8443' }, ownNamespace: 'cilium-migration-guard' };
    const registeredDefault = mutatingWebhookConfiguration(options);
    const forAws = mutatingWebhookConfiguration({ ...options, config: CONFIGS.aws! });
    expect(matchConditionDrift(registeredDefault, mutatingWebhookConfiguration(options))).toEqual([]);
    expect(matchConditionDrift(registeredDefault, forAws)).toEqual([MUTATING_NAME, MUTATING_CILIUM_NAME]);
    // A registration from before matchConditions existed, or garbage: every entry it has differs, none it lacks.
    const old = { webhooks: [{ name: MUTATING_NAME }] };
    expect(matchConditionDrift(old, forAws)).toEqual([MUTATING_NAME]);
    expect(matchConditionDrift(undefined, forAws)).toEqual([]);
  });
});

describe('staleEntries (serve warns about entries an older registration left behind)', () => {
  const options = { endpoint: { url: 'https://127.0.0.1:8443' }, ownNamespace: 'cilium-migration-guard' };
  const current = mutatingWebhookConfiguration(options);

  it("names the retired advisory entry of an older registration, and nothing in this version's own", () => {
    const retired = 'advisory-daemonsets.cilium-migration-guard.io';
    const older = { webhooks: [...current.webhooks.slice(0, 2), { ...current.webhooks[0]!, name: retired }, current.webhooks[2]!] };
    expect(staleEntries(older, current)).toEqual([retired]);
    expect(staleEntries(current, current)).toEqual([]);
  });

  it('reads garbage as no entries', () => {
    expect(staleEntries(undefined, current)).toEqual([]);
    expect(staleEntries({ webhooks: 'x' }, current)).toEqual([]);
    expect(staleEntries({ webhooks: [null, { name: 3 }] }, current)).toEqual([]);
  });
});
