// `lint` against a live cluster (test/harness: a real kube-apiserver): a bad cilium-config, Nodes
// with the pod CIDRs kube-controller-manager would have given them, CiliumNodes as the agent writes
// them, and pods. The real CLI lists them once and must report the misconfigurations, with the
// exit code CI relies on.

import { execFile } from 'node:child_process';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, waitFor, type ControlPlane } from '../harness/controlplane.js';
import { buildDist, CLI, installCiliumCrds, ROOT, startGuard, type Guard } from '../harness/guard.js';

let cp: ControlPlane;

const apply = (obj: unknown) => cp.kubectl(['apply', '-f', '-'], { input: stringify(obj) });

function lintCli(args: string[], command = 'lint'): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env))
    if (!key.startsWith('CMG_') && !key.startsWith('KUBERNETES_') && key !== 'KUBECONFIG') env[key] = value;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, command, '--kubeconfig', cp.kubeconfigPath, ...args], { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

const node = (name: string, podCIDR: string, labels: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
  spec: { podCIDR, podCIDRs: [podCIDR] },
});

/** Narrows the native-routing CIDR on pool-b-1 only. */
const nodeConfig = {
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNodeConfig',
  metadata: { name: 'narrow-b', namespace: 'kube-system' },
  spec: { nodeSelector: { matchLabels: { 'kubernetes.io/hostname': 'pool-b-1' } }, defaults: { 'ipv4-native-routing-cidr': '10.244.0.0/16' } },
};

beforeAll(async () => {
  await buildDist();
  cp = await startControlPlane({ nodes: [], log: (line) => process.stderr.write(`[controlplane] ${line}\n`) });
  await installCiliumCrds(cp);
  // CiliumNodeConfig's CRD (cilium.io/v2, namespaced), schema left open as this test only reads it back.
  await apply({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'ciliumnodeconfigs.cilium.io' },
    spec: {
      group: 'cilium.io',
      scope: 'Namespaced',
      names: { kind: 'CiliumNodeConfig', listKind: 'CiliumNodeConfigList', plural: 'ciliumnodeconfigs', singular: 'ciliumnodeconfig' },
      versions: [{ name: 'v2', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
    },
  });
  await cp.kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/ciliumnodeconfigs.cilium.io']);
  await apply(node('pool-a-1', '10.244.1.0/24', { cni: 'cilium' }));
  await apply(node('pool-b-1', '10.245.7.0/24', {}));
  // The agent's CiliumNode, with the pod CIDR cluster-pool IPAM allocated it.
  await apply({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: 'pool-a-1' }, spec: { ipam: { podCIDRs: ['10.250.3.0/24'] } } });
  for (const name of ['web-1', 'web-2', 'web-3', 'web-4']) {
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default' },
      spec: { containers: [{ name: 'c', image: 'registry.example/c:1' }] },
    });
  }
}, 600_000);

let guard: Guard | undefined;

afterAll(async () => {
  await guard?.stop();
  await cp?.stop();
});

describe('lint on the live cluster', () => {
  it('with no cilium-config: no error findings, exit 0', async () => {
    const r = await lintCli([]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Cilium lint of cluster ${cp.server}`);
    expect(r.stdout).toContain('0 errors, 0 warnings, 0 info');
  });

  it('reports a bad cilium-config against the live Nodes, CiliumNodes and pods, exit 1', async () => {
    await apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cilium-config', namespace: 'kube-system' },
      data: {
        ipam: 'kubernetes',
        'routing-mode': 'native',
        'enable-ipv4-masquerade': 'true',
        'ipv4-native-routing-cidr': '10.244.0.0/16',
        'enable-ipsec': 'true',
        'enable-hubble': 'true',
        'hubble-metrics': 'dns drop:sourceContext=pod;destinationContext=pod',
      },
    });
    const r = await lintCli(['-o', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    const { findings } = JSON.parse(r.stdout) as { findings: { id: string; severity: string; message: string; subject: string }[] };
    const native = findings.find((f) => f.id === 'native-routing-cidr');
    expect(native).toMatchObject({ severity: 'error', subject: 'ConfigMap kube-system/cilium-config (every node)' });
    expect(native?.message).toContain('10.245.7.0/24 (Node pool-b-1)');
    expect(native?.message).toContain('10.250.3.0/24 (CiliumNode pool-a-1)');
    expect(native?.message).toContain('With IPsec on and encrypt-node off');
    // The pod count comes from the live list: 4 pods, both sides per pod.
    expect(findings.find((f) => f.id === 'hubble-cardinality')?.message).toContain('with 4 pods, up to ~16 series');
    expect(findings.find((f) => f.id === 'pod-cidr-plan')?.severity).toBe('info');
  });

  it('report shows the same findings in its lint section', async () => {
    const r = await lintCli([], 'report');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Cilium configuration \(lint\): 1 error\(s\), 1 warning\(s\), 1 info/);
    expect(r.stdout).toContain('  ERROR    native-routing-cidr (ConfigMap kube-system/cilium-config (every node))');
    // report takes the pods from its own caches, lint lists them: the same findings (the pod count too).
    const [reportJson, lintJson] = await Promise.all([lintCli(['-o', 'json'], 'report'), lintCli(['-o', 'json'])]);
    const fromCaches = (JSON.parse(reportJson.stdout) as { lint: { id: string; message: string }[] }).lint;
    expect(fromCaches.find((f) => f.id === 'hubble-cardinality')?.message).toContain('with 4 pods, up to ~16 series');
    expect(fromCaches).toEqual((JSON.parse(lintJson.stdout) as { findings: unknown[] }).findings);
  });

  it('a fixed cilium-config clears the error, exit 0', async () => {
    await cp.kubectl([
      '-n',
      'kube-system',
      'patch',
      'configmap',
      'cilium-config',
      '--type=merge',
      '-p',
      JSON.stringify({ data: { 'ipv4-native-routing-cidr': '10.0.0.0/8' } }),
    ]);
    const r = await lintCli([]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('native-routing-cidr');
    expect(r.stdout).toContain('WARNING  hubble-cardinality');
  });

  it("merges a CiliumNodeConfig's defaults over cilium-config on the nodes it selects", async () => {
    await apply(nodeConfig);
    const r = await lintCli([]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('ERROR    native-routing-cidr  (node pool-b-1)');
    expect(r.stdout).toContain('lies outside ipv4-native-routing-cidr 10.244.0.0/16');
    await cp.kubectl(['-n', 'kube-system', 'delete', 'ciliumnodeconfig', 'narrow-b']);
    expect((await lintCli([])).code).toBe(0);
  });
});

describe('lint at apply time: the webhook answers a cilium-config write with warnings', () => {
  const bad = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'cilium-config', namespace: 'kube-system' },
    data: { ipam: 'kubernetes', 'routing-mode': 'native', 'ipv4-native-routing-cidr': '10.244.0.0/16', 'enable-ipsec': 'true' },
  };

  beforeAll(async () => {
    guard = await startGuard(cp);
    await guard.register();
    // The API server picks the validating registration up through its own informer: probe with
    // server-side dry runs (not counted by the metric) until the warning comes back.
    await waitFor(
      'the API server to call the cilium-config webhook',
      async () => {
        const r = await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: stringify(bad), allowFail: true });
        return r.stderr.includes('native-routing-cidr') ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
  }, 120_000);

  it('kubectl apply of a bad cilium-config shows the findings as Warning: lines and is not blocked', async () => {
    const r = await cp.kubectl(['apply', '-f', '-'], { input: stringify(bad) });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('configmap/cilium-config configured');
    const warnings = r.stderr.split('\n').filter((line) => line.startsWith('Warning: '));
    expect(warnings[0]).toMatch(/^Warning: \[error\] native-routing-cidr: pod CIDR 10\.245\.7\.0\/24 \(Node pool-b-1\)/);
    expect(warnings.join(' ')).toContain('Widen Helm ipv4NativeRoutingCIDR to cover every pod CIDR.');
    expect(warnings.some((w) => w.includes('cilium-migration-guard lint'))).toBe(true);
    for (const w of warnings) expect(w.length - 'Warning: '.length).toBeLessThan(120);
    const stored = JSON.parse((await cp.kubectl(['-n', 'kube-system', 'get', 'configmap', 'cilium-config', '-o', 'json'])).stdout) as {
      data: Record<string, string>;
    };
    expect(stored.data['enable-ipsec']).toBe('true');
  });

  it('a CiliumNodeConfig write is judged on the nodes it selects, named in the warning', async () => {
    // The webhook does not cache cilium-config: the object's own defaults are judged.
    const own = {
      ...nodeConfig,
      spec: { ...nodeConfig.spec, defaults: { 'routing-mode': 'native', 'ipv4-native-routing-cidr': '10.244.0.0/16', 'enable-ipsec': 'true' } },
    };
    const r = await cp.kubectl(['apply', '-f', '-'], { input: stringify(own) });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ciliumnodeconfig.cilium.io/narrow-b created');
    expect(r.stderr).toMatch(/^Warning: \[error\] native-routing-cidr \(node pool-b-1\): pod CIDR 10\.245\.7\.0\/24/m);
    await cp.kubectl(['-n', 'kube-system', 'delete', 'ciliumnodeconfig', 'narrow-b']);
  });

  it('other ConfigMaps are never sent (matchConditions), and the metric counts the finding', async () => {
    const other = await cp.kubectl(['apply', '-f', '-'], { input: stringify({ ...bad, metadata: { name: 'not-cilium', namespace: 'kube-system' } }) });
    expect(other.stderr).toBe('');
    const text = await fetchMetrics();
    expect(text).toMatch(/cmg_lint_findings_total\{check="native-routing-cidr",severity="error"\} 2\b/);
    expect(text).toContain('cmg_admission_requests_total{webhook="cilium-config-lint",operation="UPDATE",decision="allowed"}');
  });
});

const fetchMetrics = (): Promise<string> => guard!.metrics();
