// Enforcement modes as users meet them: through a real kube-apiserver, kubectl's `Warning:` lines
// and the API server's audit log. The webhook runs with both webhooks in warn (the warn-first
// overlay's config); namespaces labelled cilium-migration-guard.io/mode switch to enforce or audit.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODE_LABEL } from '../../src/modes/mode.js';
import { MUTATING_NAME, VALIDATING_NAME } from '../../src/registration.js';
import { startControlPlane, waitFor, type ControlPlane } from '../harness/controlplane.js';
import { findAudit } from '../harness/audit.js';
import { installCiliumCrds, startGuard, type Guard } from '../harness/guard.js';

const CILIUM_1 = 'kwok-cilium-1';

let cp: ControlPlane;
let guard: Guard;

function webPod(name: string, namespace: string) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: 'web' } },
    spec: { nodeName: CILIUM_1, containers: [{ name: 'nginx', image: 'nginx:1.27' }] },
  };
}

const apply = (obj: unknown) => cp.kubectl(['apply', '-f', '-'], { input: typeof obj === 'string' ? obj : stringify(obj), allowFail: true });
const warningsOf = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('Warning: '))
    .map((l) => l.slice('Warning: '.length));

const findEvent = (predicate: (e: any) => unknown): Promise<any> => findAudit<any>(cp, predicate);

const metricsText = (): Promise<string> => guard.metrics();

async function labelNamespace(namespace: string, mode: string | undefined) {
  await cp.kubectl(['label', 'namespace', namespace, '--overwrite', mode ? `${MODE_LABEL}=${mode}` : `${MODE_LABEL}-`]);
}

beforeAll(async () => {
  cp = await startControlPlane({
    nodes: [{ name: 'kwok-legacy-1' }, { name: CILIUM_1, labels: { cni: 'cilium' } }],
    log: (line) => process.stderr.write(`[controlplane] ${line}\n`),
  });
  await installCiliumCrds(cp);
  for (const ns of ['team-enforce', 'team-audit', 'team-warn']) await cp.kubectl(['create', 'namespace', ns]);
  // The warn-first overlay's config, as shipped.
  const configPath = join(cp.dir, 'warn-first.yaml');
  writeFileSync(configPath, readFileSync(new URL('../../manifests/overlays/warn-first/config.yaml', import.meta.url), 'utf8'));
  await labelNamespace('team-enforce', 'enforce');
  await labelNamespace('team-audit', 'audit');
  // register() probes with a DaemonSet in kube-system until the webhook patches it: enforce there
  // for the probe, removed again before the DaemonSet tests.
  await labelNamespace('kube-system', 'enforce');
  guard = await startGuard(cp, { args: ['--config', configPath] });
  await guard.register();
  await labelNamespace('kube-system', undefined);
}, 600_000);

afterAll(async () => {
  await guard?.stop();
  await cp?.stop();
});

describe('pod webhook, configured mode warn', () => {
  it('admits a pod placed on a node where Cilium is not ready, and kubectl shows the would-be denial in lines of at most 120 characters', async () => {
    const res = await apply(webPod('warned', 'team-warn'));
    process.stderr.write(`\n--- kubectl transcript ---\n${res.stderr}${res.stdout}--- end ---\n`);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('pod/warned created');
    const warnings = warningsOf(res.stderr);
    expect(warnings[0]).toMatch(/^cilium-migration-guard \(mode warn\) would deny: pod team-warn\/warned cannot be placed on node kwok-cilium-1/);
    for (const w of warnings) expect(w.length).toBeLessThanOrEqual(120);
    expect(warnings.join(' ')).toContain('To exempt a pod, label it cilium-migration-guard.io/exempt=true.');

    const event = await findEvent((e) => e.objectRef?.name === 'warned' && e.verb === 'create' && e.annotations?.[`${VALIDATING_NAME}/decision`]);
    expect(event.annotations).toMatchObject({
      [`${VALIDATING_NAME}/decision`]: 'would-deny',
      [`${VALIDATING_NAME}/mode`]: 'warn',
      [`${VALIDATING_NAME}/node`]: CILIUM_1,
    });
    expect(event.responseStatus.code).toBe(201);
  });

  it('a namespace labelled enforce gets the denial', async () => {
    const res = await apply(webPod('refused', 'team-enforce'));
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`admission webhook "${VALIDATING_NAME}" denied the request: pod team-enforce/refused cannot be placed`);
    const event = await findEvent((e) => e.objectRef?.name === 'refused' && e.annotations?.[`${VALIDATING_NAME}/decision`]);
    expect(event.annotations).toMatchObject({ [`${VALIDATING_NAME}/decision`]: 'denied', [`${VALIDATING_NAME}/mode`]: 'enforce' });
  });

  it('a namespace labelled audit admits silently: no warning, only the audit log says it', async () => {
    const res = await apply(webPod('silent', 'team-audit'));
    expect(res.code).toBe(0);
    expect(warningsOf(res.stderr)).toEqual([]);
    const event = await findEvent((e) => e.objectRef?.name === 'silent' && e.verb === 'create' && e.annotations?.[`${VALIDATING_NAME}/decision`]);
    expect(event.annotations).toMatchObject({ [`${VALIDATING_NAME}/decision`]: 'would-deny', [`${VALIDATING_NAME}/mode`]: 'audit' });
  });

  it('relabelling a namespace takes effect without a restart', async () => {
    await labelNamespace('team-warn', 'enforce');
    let n = 0;
    const refused = await waitFor(
      'the enforce label to take effect',
      async () => {
        const res = await apply(webPod(`relabel-${n++}`, 'team-warn'));
        return res.code !== 0 ? res : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 300 },
    );
    expect(refused.stderr).toContain('denied the request');
    await labelNamespace('team-warn', undefined);
  });
});

describe('DaemonSet webhook, configured mode warn', () => {
  it('stores aws-node unpatched and kubectl shows what would be added', async () => {
    const res = await apply(readFileSync(new URL('../fixtures/daemonsets/aws-node.yaml', import.meta.url), 'utf8'));
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('daemonset.apps/aws-node created');
    const warnings = warningsOf(res.stderr);
    expect(warnings.join(' ')).toMatch(
      /cilium-migration-guard \(mode warn\) would add nodeAffinity cni NotIn \[cilium\] to kube-system\/aws-node .*not applied/,
    );
    for (const w of warnings) expect(w.length).toBeLessThanOrEqual(120);
    const stored = JSON.parse((await cp.kubectl(['get', 'ds', '-n', 'kube-system', 'aws-node', '-o', 'json'])).stdout);
    expect(JSON.stringify(stored.spec.template.spec.affinity)).not.toContain('"cilium"');
    // register()'s probes are server-side dry runs of a DaemonSet of the same name: not this write.
    const event = await findEvent(
      (e) => e.objectRef?.resource === 'daemonsets' && e.objectRef?.name === 'aws-node' && e.verb === 'create' && !e.requestURI.includes('dryRun'),
    );
    expect(event.annotations).toMatchObject({
      [`${MUTATING_NAME}/action`]: 'would-inject',
      [`${MUTATING_NAME}/mode`]: 'warn',
      [`${MUTATING_NAME}/role`]: 'legacy',
    });
  });
});

describe('the mode in the log line and the metrics', () => {
  it('counts decisions by mode and says the mode in each decision line', async () => {
    const text = await metricsText();
    const count = (labels: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith('cmg_admission_decisions_total{') && labels.split(',').every((p) => l.includes(p)))
        .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
    expect(count('webhook="pod-placement",mode="warn",decision="would-deny"')).toBeGreaterThanOrEqual(1);
    expect(count('webhook="pod-placement",mode="audit",decision="would-deny"')).toBe(1);
    expect(count('webhook="pod-placement",mode="enforce",decision="denied"')).toBeGreaterThanOrEqual(2);
    expect(count('webhook="daemonset-affinity",mode="warn",decision="would-patch"')).toBe(1);
    const lines = guard
      .logs()
      .split('\n')
      .filter((l) => l.includes('"admission decision"'))
      .map((l) => JSON.parse(l));
    const silent = lines.find((l) => l.name === 'silent');
    expect(silent).toMatchObject({ mode: 'audit', wouldBe: 'denied', decision: 'allowed', reason: 'cilium-not-ready' });
  });
});
