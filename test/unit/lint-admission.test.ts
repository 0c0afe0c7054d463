import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { AdmissionRequest } from '../../src/admission/types.js';
import { lintAdmission, lintAdmissionHandler, MAX_WARNING_CHARS, type LintFacts } from '../../src/lint/admission.js';
import { lintFindingsCounter } from '../../src/lint/metrics.js';
import { DEFAULT_LINT_OPTIONS } from '../../src/lint/run.js';

const BAD = { 'routing-mode': 'native', 'ipv4-native-routing-cidr': '10.244.0.0/16', 'enable-wireguard': 'true', ipam: 'kubernetes' };
const facts: LintFacts = {
  nodes: [
    { name: 'a', labels: { cni: 'cilium', pool: 'a' }, podCIDRs: ['10.244.1.0/24'] },
    { name: 'b', labels: { pool: 'b' }, podCIDRs: ['10.245.7.0/24'] },
  ],
  ciliumNodes: new Map(),
};
const options = { ciliumNamespace: 'kube-system', settings: DEFAULT_LINT_OPTIONS, denyChecks: [] as string[] };

function configMapWrite(data: Record<string, string>, name = 'cilium-config', namespace = 'kube-system', dryRun = false): AdmissionRequest {
  return {
    uid: 'u1',
    kind: { group: '', version: 'v1', kind: 'ConfigMap' },
    resource: { group: '', version: 'v1', resource: 'configmaps' },
    name,
    namespace,
    operation: 'UPDATE',
    dryRun,
    object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data },
  };
}

describe('lint at apply time', () => {
  it('answers a bad cilium-config with short warnings, never a denial by default', () => {
    const { decision, findings } = lintAdmission(configMapWrite(BAD), facts, options);
    expect(decision.allowed).toBe(true);
    expect(findings.map((f) => [f.id, f.severity])).toEqual([['native-routing-cidr', 'error']]);
    expect(decision.warnings?.[0]).toMatch(/^\[error\] native-routing-cidr: pod CIDR 10\.245\.7\.0\/24 \(Node b\)/);
    expect(decision.warnings?.at(-1)).toContain('cilium-migration-guard lint');
    for (const w of decision.warnings ?? []) expect(w.length).toBeLessThanOrEqual(MAX_WARNING_CHARS);
    // Wrapped, not cut: the whole message, with the Helm value, reaches kubectl.
    expect((decision.warnings ?? []).join(' ').replace(/\s+/g, ' ')).toContain(findings[0]!.message.replace(/\s+/g, ' '));
    expect(decision.warnings?.[1]).toMatch(/^ {2}\S/);
    expect(decision.audit).toEqual({ findings: 'error:native-routing-cidr' });
  });

  it('denies only for checks listed in denyChecks, and only on errors', () => {
    const denied = lintAdmission(configMapWrite(BAD), facts, { ...options, denyChecks: ['native-routing-cidr'] }).decision;
    expect(denied.allowed).toBe(false);
    expect(denied.message).toContain('ConfigMap kube-system/cilium-config is refused by cilium-migration-guard lint (lint.denyChecks): native-routing-cidr:');
    const warningOnly = { ...BAD, 'enable-wireguard': 'false' };
    expect(lintAdmission(configMapWrite(warningOnly), facts, { ...options, denyChecks: ['native-routing-cidr'] }).decision.allowed).toBe(true);
  });

  it('a clean cilium-config gets no warnings (info findings are for lint and report)', () => {
    const { decision } = lintAdmission(configMapWrite({ ipam: 'kubernetes', 'routing-mode': 'tunnel' }), facts, options);
    expect(decision).toMatchObject({ allowed: true, reason: 'lint-clean' });
    expect(decision.warnings).toBeUndefined();
  });

  it("ignores other ConfigMaps and cilium-config outside Cilium's namespace", () => {
    expect(lintAdmission(configMapWrite(BAD, 'other'), facts, options).decision.reason).toBe('lint-not-applicable');
    expect(lintAdmission(configMapWrite(BAD, 'cilium-config', 'default'), facts, options).decision.reason).toBe('lint-not-applicable');
  });

  it('judges a CiliumNodeConfig on the nodes it selects, merged over the current cilium-config', () => {
    const cnc = (matchLabels: Record<string, string>): AdmissionRequest => ({
      uid: 'u2',
      kind: { group: 'cilium.io', version: 'v2', kind: 'CiliumNodeConfig' },
      resource: { group: 'cilium.io', version: 'v2', resource: 'ciliumnodeconfigs' },
      name: 'native-b',
      namespace: 'kube-system',
      operation: 'CREATE',
      object: {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNodeConfig',
        metadata: { name: 'native-b', namespace: 'kube-system' },
        spec: { nodeSelector: { matchLabels }, defaults: { 'routing-mode': 'native' } },
      },
    });
    const withConfig = { ...facts, ciliumConfigData: { 'ipv4-native-routing-cidr': '10.244.0.0/16', ipam: 'kubernetes' } };
    const onB = lintAdmission(cnc({ pool: 'b' }), withConfig, options);
    expect(onB.findings.map((f) => [f.id, f.subject])).toEqual([['native-routing-cidr', 'node b']]);
    expect(lintAdmission(cnc({ pool: 'none' }), withConfig, options).decision.reason).toBe('lint-selects-no-node');
  });

  it('counts findings by check and severity (not for dry runs)', async () => {
    const registry = new Registry();
    const view = {
      nodes: () => facts.nodes.map((n) => ({ metadata: { name: n.name, labels: { ...n.labels } }, spec: { podCIDRs: [...n.podCIDRs] } })),
      ciliumNode: () => undefined,
    };
    const handler = lintAdmissionHandler(view, { ciliumNamespace: 'kube-system', denyChecks: [] }, lintFindingsCounter(registry));
    await handler.handle(configMapWrite(BAD));
    await handler.handle(configMapWrite(BAD, 'cilium-config', 'kube-system', true));
    const text = await registry.metrics();
    expect(text).toContain('cmg_lint_findings_total{check="native-routing-cidr",severity="error"} 1');
  });
});

describe('lint.denyChecks in the configuration', () => {
  it('defaults to none and accepts only check ids', async () => {
    const { parseConfig } = await import('../../src/config.js');
    expect(parseConfig({}).lint.denyChecks).toEqual([]);
    expect(parseConfig({ lint: { denyChecks: ['native-routing-cidr'] } }).lint.denyChecks).toEqual(['native-routing-cidr']);
    expect(() => parseConfig({ lint: { denyChecks: ['no-such-check'] } })).toThrow(/lint\.denyChecks\.0/);
  });
});
