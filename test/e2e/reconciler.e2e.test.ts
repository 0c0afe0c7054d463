// Existing DaemonSets through a real kube-apiserver: written before the webhook was registered,
// listed by `report`, brought in line by the reconciler in the reaper's process (a JSON patch
// with a resourceVersion test, which passes through the webhook like any write), an Event on the
// DaemonSet, a conflicting one left alone, and the owner's next `kubectl apply` a no-op.
// No kube-controller-manager runs here: the agent pod a DaemonSet controller would create is
// written as it would write it (ownerReferences to the DaemonSet, controller: true).

import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MUTATING_NAME } from '../../src/registration.js';
import { startControlPlane, waitFor, type ControlPlane } from '../harness/controlplane.js';
import { auditEvents } from '../harness/audit.js';
import { CLI, installCiliumCrds, startGuard, startReaper, type Guard, type ReaperProcess } from '../harness/guard.js';

const LEGACY = 'kwok-legacy-1';
const MIGRATED = 'kwok-cilium-1';
const KUBE_ROUTER = readFileSync(new URL('../fixtures/daemonsets/kube-router.yaml', import.meta.url), 'utf8');

let cp: ControlPlane;
let guard: Guard;
let reaper: ReaperProcess | undefined;

const getJson = async (args: string[]): Promise<any> => JSON.parse((await cp.kubectl(['get', ...args, '-o', 'json'])).stdout);

/** kube-flannel-ds in kube-system, pinned by its owner to cni In [cilium]: contradicts its legacy role. */
function conflictingFlannel(): string {
  const ds = parse(readFileSync(new URL('../fixtures/daemonsets/kube-flannel-ds.yaml', import.meta.url), 'utf8'));
  ds.metadata.namespace = 'kube-system';
  ds.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions.push({
    key: 'cni',
    operator: 'In',
    values: ['cilium'],
  });
  return stringify(ds);
}

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) =>
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

const stored = (ds: any) => JSON.stringify(ds.spec.template.spec.affinity ?? {});

beforeAll(async () => {
  cp = await startControlPlane({
    nodes: [{ name: LEGACY }, { name: MIGRATED, labels: { cni: 'cilium' } }],
    log: (line) => process.stderr.write(`[controlplane] ${line}\n`),
  });
  await installCiliumCrds(cp);
  // Written before the webhook is registered: stored as their owners wrote them.
  await cp.kubectl(['apply', '-f', '-'], { input: KUBE_ROUTER });
  await cp.kubectl(['apply', '-f', '-'], { input: conflictingFlannel() });
  // Cilium's envoy, written as while the webhook was down (its entry fails open): unpatched.
  await cp.kubectl(['apply', '-f', '-'], { input: readFileSync(new URL('../fixtures/daemonsets/cilium-envoy.yaml', import.meta.url), 'utf8') });
  const router = await getJson(['ds', '-n', 'kube-system', 'kube-router']);
  // The kube-router pod the DaemonSet controller would have started on every node, the migrated one too.
  await cp.kubectl(['apply', '-f', '-'], {
    input: stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'kube-router-m1',
        namespace: 'kube-system',
        labels: router.spec.template.metadata.labels,
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'kube-router', uid: router.metadata.uid, controller: true, blockOwnerDeletion: true },
        ],
      },
      spec: {
        nodeName: MIGRATED,
        hostNetwork: true,
        tolerations: [{ operator: 'Exists' }],
        containers: [{ name: 'kube-router', image: 'docker.io/cloudnativelabs/kube-router' }],
      },
    }),
  });
  guard = await startGuard(cp);
  await guard.register();
}, 600_000);

afterAll(async () => {
  await reaper?.stop();
  await guard?.stop();
  await cp?.stop();
});

describe('a cluster with DaemonSets written before the webhook', () => {
  // The DaemonSet controller writes each DaemonSet's status, which moves its resourceVersion at any
  // time: what the reconciler and the owner change (or must not) is the spec, seen in the
  // generation and the spec itself.
  let routerRv: string;
  let routerSpec: string;
  let flannelGeneration: number;
  let flannelSpec: string;
  const specOf = (ds: any) => JSON.stringify({ labels: ds.metadata.labels, spec: ds.spec });

  it('report lists the out-of-line and the conflicting DaemonSet, the legacy agent on the migrated node, and the node with no Cilium agent', async () => {
    const router = await getJson(['ds', '-n', 'kube-system', 'kube-router']);
    expect(stored(router)).not.toContain('"cilium"');
    routerRv = router.metadata.resourceVersion;
    const flannel = await getJson(['ds', '-n', 'kube-system', 'kube-flannel-ds']);
    flannelGeneration = flannel.metadata.generation;
    flannelSpec = specOf(flannel);

    const json = await runCli(['report', '--kubeconfig', cp.kubeconfigPath, '-o', 'json']);
    expect(json.code, json.stderr).toBe(0);
    const { daemonSets } = JSON.parse(json.stdout);
    expect(daemonSets.outOfLine).toEqual([
      { namespace: 'kube-system', name: 'cilium-envoy', role: 'cilium', rule: 'cilium-envoy', requirement: 'cni In [cilium]' },
      { namespace: 'kube-system', name: 'kube-router', role: 'legacy', rule: 'kube-router', requirement: 'cni NotIn [cilium]' },
    ]);
    expect(daemonSets.conflicts).toEqual([
      expect.objectContaining({ namespace: 'kube-system', name: 'kube-flannel-ds', role: 'legacy', rule: 'kube-flannel' }),
    ]);
    expect(daemonSets.agents.legacyOnMigrated).toEqual([
      { namespace: 'kube-system', name: 'kube-router-m1', node: MIGRATED, daemonSet: 'kube-router', rule: 'kube-router' },
    ]);
    expect(daemonSets.agents.ciliumMissing).toEqual([MIGRATED]);

    const table = await runCli(['report', '--kubeconfig', cp.kubeconfigPath]);
    expect(table.stdout).toMatch(/kube-system\/kube-router\s+legacy\s+kube-router\s+out of line\s+cni NotIn \[cilium\]/);
    expect(table.stdout).toMatch(/kube-system\/kube-flannel-ds\s+legacy\s+kube-flannel\s+CONFLICT/);
    expect(table.stdout).toMatch(/kube-system\/kube-router-m1\s+kwok-cilium-1\s+kube-router/);
  });

  it('the reconciler (reconciler.enabled) patches kube-router through the API server, with an Event, and leaves the conflicting one alone', async () => {
    const configPath = join(cp.dir, 'reconciler.yaml');
    writeFileSync(configPath, stringify({ reconciler: { enabled: true, perMinute: 5 } }));
    reaper = await startReaper(cp, { args: ['--config', configPath] });
    const fixed = await waitFor(
      'the reconciler to patch kube-router',
      async () => {
        const ds = await getJson(['ds', '-n', 'kube-system', 'kube-router']);
        return stored(ds).includes('{"key":"cni","operator":"NotIn","values":["cilium"]}') ? ds : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(fixed.metadata.resourceVersion).not.toBe(routerRv);
    routerSpec = specOf(fixed);

    const events = await waitFor(
      'the Event on kube-router',
      async () => {
        // Only the reconciler's Events: the DaemonSet controller records its own (SuccessfulCreate, ...).
        const list = await getJson(['events', '-n', 'kube-system', '--field-selector', 'involvedObject.kind=DaemonSet']);
        const mine = list.items.filter((e: any) => e.reason === 'AffinityReconciled' || e.reason === 'AffinityConflict');
        return mine.length >= 3 ? mine : undefined;
      },
      { timeoutMs: 15_000 },
    );
    const byName = Object.fromEntries(events.map((e: any) => [e.involvedObject.name, e]));
    expect(byName['kube-router']).toMatchObject({
      type: 'Normal',
      reason: 'AffinityReconciled',
      involvedObject: { apiVersion: 'apps/v1', uid: fixed.metadata.uid },
    });
    expect(byName['kube-router'].message).toContain('added nodeAffinity cni NotIn [cilium] (role legacy, rule kube-router)');
    expect(byName['kube-flannel-ds']).toMatchObject({ type: 'Warning', reason: 'AffinityConflict' });
    const flannelNow = await getJson(['ds', '-n', 'kube-system', 'kube-flannel-ds']);
    expect(flannelNow.metadata.generation).toBe(flannelGeneration);
    expect(specOf(flannelNow)).toBe(flannelSpec);
    // Cilium's envoy gets its affinity back too.
    await waitFor(
      'the reconciler to patch cilium-envoy',
      async () => {
        const envoy = await getJson(['ds', '-n', 'kube-system', 'cilium-envoy']);
        return stored(envoy).includes('{"key":"cni","operator":"In","values":["cilium"]}') ? true : undefined;
      },
      { timeoutMs: 15_000 },
    );

    // The patch went through the mutating webhook like any write, which found the requirement present.
    const audit = auditEvents<any>(cp);
    const patch = audit.find(
      (e) => e.verb === 'patch' && e.objectRef?.resource === 'daemonsets' && e.objectRef?.name === 'kube-router' && e.stage === 'ResponseComplete',
    );
    expect(patch.responseStatus.code).toBe(200);
    expect(patch.annotations).toMatchObject({ [`${MUTATING_NAME}/action`]: 'present', [`${MUTATING_NAME}/mode`]: 'enforce' });

    const metrics = await (await fetch(`${reaper!.url}/metrics`)).text();
    expect(metrics).toMatch(/cmg_reconciler_daemonsets_total\{outcome="patched"\} 2\b/);
    expect(metrics).toMatch(/cmg_daemonsets_out_of_line\{state="conflict"\} 1\b/);
  });

  it("the owner's next kubectl apply is a no-op: nothing sent, spec unchanged", async () => {
    // Writes of kube-router itself (not its status, which the DaemonSet controller keeps writing).
    const specWrites = async () =>
      auditEvents<any>(cp).filter(
        (e) =>
          ['create', 'update', 'patch'].includes(e.verb) &&
          e.stage === 'ResponseComplete' &&
          e.objectRef?.resource === 'daemonsets' &&
          e.objectRef?.name === 'kube-router' &&
          !e.objectRef?.subresource,
      ).length;
    const before = await specWrites();
    expect(before).toBeGreaterThan(0); // the owner's create and the reconciler's patch are there
    const res = await cp.kubectl(['apply', '-f', '-'], { input: KUBE_ROUTER });
    // "unchanged": kubectl found nothing to patch and sent no write.
    expect(res.stdout).toContain('daemonset.apps/kube-router unchanged');
    expect(specOf(await getJson(['ds', '-n', 'kube-system', 'kube-router']))).toBe(routerSpec);
    await new Promise((r) => setTimeout(r, 1_000)); // the audit log is written asynchronously
    expect(await specWrites()).toBe(before);
  });

  it('a stale resourceVersion makes the reconciler leave the DaemonSet for its next pass (the test op fails)', async () => {
    // What the reconciler sends when someone wrote the DaemonSet since its list.
    const patch = [
      { op: 'test', path: '/metadata/resourceVersion', value: '1' },
      { op: 'add', path: '/metadata/labels/x', value: 'y' },
    ];
    const r = await cp.kubectl(['patch', 'ds', '-n', 'kube-system', 'kube-flannel-ds', '--type=json', '-p', JSON.stringify(patch), '-v=6'], {
      allowFail: true,
    });
    expect(r.code).not.toBe(0);
    // A failed JSON-patch test op is 422 Unprocessable Entity (api.ts maps it to "changed").
    expect(r.stderr).toMatch(/verb="PATCH" url="[^"]+kube-flannel-ds[^"]*" status="422 Unprocessable Entity"/);
    const after = await getJson(['ds', '-n', 'kube-system', 'kube-flannel-ds']);
    expect(after.metadata.generation).toBe(flannelGeneration);
    expect(specOf(after)).toBe(flannelSpec);
  });
});
