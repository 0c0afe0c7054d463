// `status` against a real kube-apiserver: nodes per state, the DaemonSet written before the webhook,
// a namespace mode override, and the registered webhooks' failure policies, caBundle and /healthz,
// then the same with the webhook stopped. The table printed here is the README's transcript.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MUTATING_CILIUM_NAME, MUTATING_NAME, MUTATING_NODES_NAME, VALIDATING_NAME } from '../../src/registration.js';
import { startControlPlane, waitFor, type ControlPlane } from '../harness/controlplane.js';
import { CLI, installCiliumCrds, startGuard, type Guard } from '../harness/guard.js';

let cp: ControlPlane;
let guard: Guard;

function status(args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) =>
    execFile(process.execPath, [CLI, 'status', '--kubeconfig', cp.kubeconfigPath, ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

beforeAll(async () => {
  cp = await startControlPlane({
    nodes: [
      { name: 'kwok-legacy-1' },
      { name: 'kwok-legacy-2' },
      { name: 'kwok-cilium-ready', labels: { cni: 'cilium' } },
      { name: 'kwok-cilium-pending', labels: { cni: 'cilium' } },
    ],
    log: (line) => process.stderr.write(`[controlplane] ${line}\n`),
  });
  await installCiliumCrds(cp);
  // Cilium ready on kwok-cilium-ready: its CiliumNode and a Ready agent pod (kwok reports it Running and Ready).
  await cp.kubectl(['apply', '-f', '-'], {
    input: stringify({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNode',
      metadata: { name: 'kwok-cilium-ready' },
      spec: { ipam: { podCIDRs: ['10.245.0.0/24'] } },
    }),
  });
  await cp.kubectl(['apply', '-f', '-'], {
    input: stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'cilium-ready-agent', namespace: 'kube-system', labels: { 'k8s-app': 'cilium' } },
      spec: {
        nodeName: 'kwok-cilium-ready',
        hostNetwork: true,
        tolerations: [{ operator: 'Exists' }],
        containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium:v1.18.4' }],
      },
    }),
  });
  await waitFor(
    'the agent pod to be Ready',
    async () => {
      const pod = JSON.parse((await cp.kubectl(['get', 'pod', '-n', 'kube-system', 'cilium-ready-agent', '-o', 'json'])).stdout);
      return pod.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
    },
    { timeoutMs: 30_000 },
  );
  // Written before the webhook: out of line.
  await cp.kubectl(['apply', '-f', '-'], { input: readFileSync(new URL('../fixtures/daemonsets/weave-net.yaml', import.meta.url), 'utf8') });
  await cp.kubectl(['create', 'namespace', 'payments']);
  await cp.kubectl(['label', 'namespace', 'payments', 'cilium-migration-guard.io/mode=warn']);
  guard = await startGuard(cp);
  await guard.register();
}, 600_000);

afterAll(async () => {
  await guard?.stop();
  await cp?.stop();
});

describe('status', () => {
  it('one screen: nodes per state, the DaemonSet out of line, modes, each webhook reachable with a valid caBundle; exit 3 (needs attention)', async () => {
    const res = await status();
    process.stderr.write(`\n--- status transcript ---\n${res.stdout}--- end ---\n`);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(3);
    const out = res.stdout;
    expect(out).toMatch(/^legacy\s+2$/m);
    expect(out).toMatch(/^migrated-ready\s+1$/m);
    expect(out).toMatch(/^migrated-not-ready\s+1$/m);
    expect(out).toMatch(/^\s+kwok-cilium-pending\s+\d+s\s+no-cilium-node, no-agent-pod$/m);
    expect(out).toMatch(/DaemonSets out of line \/ conflicting:\s+1 \/ 0/);
    expect(out).toContain('Modes: pods enforce, daemonsets enforce; namespaces: payments=warn');
    for (const [name, policy] of [
      [MUTATING_NAME, 'Fail'],
      [MUTATING_CILIUM_NAME, 'Ignore'],
      [MUTATING_NODES_NAME, 'Ignore'],
      [VALIDATING_NAME, 'Ignore'],
    ] as const) {
      expect(out).toMatch(new RegExp(`^${name.replace(/\./g, '\\.')}\\s+${policy}\\s+ok\\s+ok$`, 'm'));
    }
    expect(out).toContain('Needs attention:\n  - 1 DaemonSet(s) out of line: kube-system/weave-net');
  });

  it('-o json carries the same, for scripts', async () => {
    const res = await status(['-o', 'json']);
    expect(res.code).toBe(3);
    const s = JSON.parse(res.stdout);
    expect(s.nodes).toEqual({ legacy: 2, 'migrated-ready': 1, 'migrated-not-ready': 1 });
    expect(s.daemonSets.outOfLine).toEqual(['kube-system/weave-net']);
    expect(s.modes).toEqual({ pods: 'enforce', daemonsets: 'enforce', namespaces: { payments: 'warn' } });
    expect(s.webhooks.every((w: any) => w.reachable === 'ok' && w.caBundle === 'ok')).toBe(true);
  });

  it('with the webhook stopped, each webhook is unreachable and says so', async () => {
    await guard.stop();
    const res = await status(['-o', 'json']);
    expect(res.code).toBe(3);
    const s = JSON.parse(res.stdout);
    expect(s.webhooks.length).toBeGreaterThanOrEqual(4);
    for (const w of s.webhooks) expect(w.reachable).toMatch(/^unreachable: /);
    expect(s.attention).toContain(`webhook ${VALIDATING_NAME}: ${s.webhooks.find((w: any) => w.name === VALIDATING_NAME).reachable}`);
  });
});
