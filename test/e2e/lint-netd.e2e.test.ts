// GKE's netd on the local control plane (test/harness), judged by the lint check
// gke-netd-source-valid-mark that replaced the webhook's DaemonSet-time warning: it sees the
// upstream netd DaemonSet (test/fixtures/daemonsets/netd.yaml, policy routing from ConfigMap netd-config) that
// the DaemonSet controller runs on a migrated node, in `lint` and in `report`; it falls silent when
// policy routing is off, and when a rule keeps netd off migrated nodes (the webhook adds the
// affinity, the controller moves the pod). And an upgrade: a registration from before, with the
// retired advisory-daemonsets entry, still works (netd is answered with a plain allow) until
// re-applying the registration removes the entry (kubectl apply, client-side or server-side, the
// latter after the cert controller injected its CA into every entry).

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import {
  CONFIGURATION_NAME,
  MUTATING_CILIUM_NAME,
  MUTATING_NAME,
  MUTATING_NODES_NAME,
  mutatingWebhookConfiguration,
  validatingWebhookConfiguration,
} from '../../src/registration.js';
import { freePorts, startChild, startControlPlane, stopChild, waitFor, type Child, type ControlPlane } from '../harness/controlplane.js';
import { buildDist, CLI, installCiliumCrds, OWN_NAMESPACE, ROOT, startGuard, type Guard } from '../harness/guard.js';
import { applyDaemonSetFixture, waitForDaemonSetOn } from '../harness/workloads.js';
import { cleanEnv } from '../support/clean-env.js';

const MIGRATED = 'gke-pool-cilium-1';
const LEGACY = 'gke-pool-default-1';
// GKE labels the nodes that should run netd; the upstream manifest selects them.
const NETD_READY = { 'beta.kubernetes.io/kube-netd-ready': 'true' };
const ID = 'gke-netd-source-valid-mark';
const RETIRED = 'advisory-daemonsets.cilium-migration-guard.io';

let cp: ControlPlane;
let guard: Guard | undefined;

const apply = (obj: unknown) => cp.kubectl(['apply', '-f', '-'], { input: stringify(obj) });

function cli(command: string, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, command, '--kubeconfig', cp.kubeconfigPath, ...args],
      { cwd: ROOT, env: cleanEnv(), timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
      },
    );
  });
}

type Finding = { id: string; severity: string; message: string; subject: string };
async function netdFindings(): Promise<Finding[]> {
  const r = await cli('lint', ['-o', 'json']);
  expect(r.stderr).toBe('');
  return (JSON.parse(r.stdout) as { findings: Finding[] }).findings.filter((f) => f.id === ID);
}

const netdConfig = (policyRouting: string) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'netd-config', namespace: 'kube-system' },
  // The keys netd.yaml's env reads (its init container reads more; absent keys only fail that container on a real node).
  data: { enable_policy_routing: policyRouting, enable_masquerade: 'false', reconcile_interval_seconds: '60' },
});

/** The registration as the previous release made it: the retired entry third (manifests/base before this change). */
function olderRegistration(current: ReturnType<typeof mutatingWebhookConfiguration>) {
  const [roles, cilium, nodes] = current.webhooks as any[];
  const retired = {
    ...roles,
    name: RETIRED,
    failurePolicy: 'Ignore',
    matchConditions: [
      roles.matchConditions[0],
      {
        name: 'an-advisory-can-match',
        expression:
          "(has(object.metadata.namespace) && object.metadata.namespace == 'kube-system' && has(object.metadata.name) && object.metadata.name == 'netd')",
      },
      { name: 'no-rule-can-match', expression: `!(${roles.matchConditions[1].expression})` },
    ],
  };
  return { ...current, webhooks: [roles, cilium, retired, nodes] };
}

const auditEventsFor = (name: string) =>
  readFileSync(cp.auditLogPath, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((e) => e.objectRef?.resource === 'daemonsets' && e.objectRef?.name === name && e.stage === 'ResponseComplete' && e.verb === 'patch');
const calledRetired = (e: any) => Object.values(e.annotations ?? {}).some((v) => String(v).includes(`"webhook":"${RETIRED}","mutated":false`));

/** Touches netd until the API server has called the retired entry for it (its informer lags a registration). */
async function touchNetdUntilRetiredCalled(): Promise<any> {
  const before = auditEventsFor('netd').filter(calledRetired).length;
  let n = 0;
  return waitFor(
    `the API server to call ${RETIRED} for netd`,
    async () => {
      n += 1;
      const r = await cp.kubectl(['-n', 'kube-system', 'label', 'daemonset', 'netd', `touched=${Date.now()}-${n}`, '--overwrite'], { allowFail: true });
      expect(r.code).toBe(0);
      expect(r.stderr).toBe(''); // no warning, ever
      return auditEventsFor('netd').filter(calledRetired)[before];
    },
    { timeoutMs: 30_000, intervalMs: 500 },
  );
}

beforeAll(async () => {
  await buildDist();
  cp = await startControlPlane({
    nodes: [
      { name: MIGRATED, labels: { cni: 'cilium', ...NETD_READY } },
      { name: LEGACY, labels: { ...NETD_READY } },
    ],
    log: (line) => process.stderr.write(`[controlplane] ${line}\n`),
  });
  await installCiliumCrds(cp);
  await apply(netdConfig('true'));
  // The L7 proxy on (also Cilium's default), as FQDN policies need it.
  await apply({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'cilium-config', namespace: 'kube-system' },
    data: { ipam: 'kubernetes', 'enable-l7-proxy': 'true' },
  });
  const created = await applyDaemonSetFixture(cp, 'netd');
  expect(created.stderr).toBe('');
  // The DaemonSet controller runs netd on both nodes, the migrated one included.
  await waitForDaemonSetOn(cp, 'kube-system', 'netd', [LEGACY, MIGRATED]);
}, 600_000);

afterAll(async () => {
  await guard?.stop();
  await cp?.stop();
});

describe('the running netd, seen by lint and report', () => {
  it('lint names the migrated node netd runs on, and the flag from netd-config', async () => {
    const found = await netdFindings();
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ severity: 'warning', subject: 'DaemonSet kube-system/netd' });
    expect(found[0]!.message).toContain(`netd may run on 1 migrated node (${MIGRATED}) with enable-policy-routing, which sets src_valid_mark=1`);
    expect(found[0]!.message).toContain('cilium/cilium#48706');
  });

  it('report shows it in its lint section', async () => {
    const r = await cli('report');
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`  WARNING  ${ID} (DaemonSet kube-system/netd): netd may run on 1 migrated node (${MIGRATED})`);
  });

  it('policy routing off in netd-config: no finding', async () => {
    await apply(netdConfig('false'));
    expect(await netdFindings()).toEqual([]);
    await apply(netdConfig('true'));
    expect(await netdFindings()).toHaveLength(1);
  });
});

describe('upgrading from a registration with the retired advisory-daemonsets entry', () => {
  it('a stale entry still sends netd to /mutate/daemonsets, which allows it unchanged and silently', async () => {
    guard = await startGuard(cp);
    const options = { endpoint: { url: guard.url }, caPem: guard.caPem, ownNamespace: OWN_NAMESPACE };
    const current = mutatingWebhookConfiguration(options);
    const older = olderRegistration(current);
    // kubectl apply, as `kubectl apply -k manifests/` installed it.
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [older, validatingWebhookConfiguration(options)] }),
    });

    const event = await touchNetdUntilRetiredCalled();
    // Called, answered, nothing changed.
    expect(event.responseStatus?.code).toBe(200);
    const ds = JSON.parse((await cp.kubectl(['-n', 'kube-system', 'get', 'daemonset', 'netd', '-o', 'json'])).stdout);
    expect(ds.spec.template.spec.affinity).toBeUndefined();
  });

  it('re-applying the registration (kubectl apply) removes the stale entry', async () => {
    const options = { endpoint: { url: guard!.url }, caPem: guard!.caPem, ownNamespace: OWN_NAMESPACE };
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [mutatingWebhookConfiguration(options), validatingWebhookConfiguration(options)] }),
    });
    const registered = JSON.parse((await cp.kubectl(['get', 'mutatingwebhookconfiguration', CONFIGURATION_NAME, '-o', 'json'])).stdout);
    expect(registered.webhooks.map((w: { name: string }) => w.name)).toEqual([MUTATING_NAME, MUTATING_CILIUM_NAME, MUTATING_NODES_NAME]);
  });
});

describe('upgrading with the cert controller (serve --cert-secret --webhook-config) and server-side apply', () => {
  let serve: Child | undefined;
  afterAll(async () => {
    if (serve) await stopChild(serve);
  });

  it('the CA goes into the stale entry too, serve warns about it and answers it; applying the new registration removes it', async () => {
    await guard?.stop();
    guard = undefined;
    const [port] = await freePorts(1);
    await cp.createNamespace(OWN_NAMESPACE);
    const options = { endpoint: { url: `https://127.0.0.1:${port}` }, ownNamespace: OWN_NAMESPACE };
    const current = mutatingWebhookConfiguration(options);
    const list = (mutating: unknown) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [mutating, validatingWebhookConfiguration(options)] });
    const ssa = ['apply', '--server-side', '--force-conflicts', '-f', '-'];
    // A fresh install, all by server-side apply (the previous describe used client-side apply).
    await cp.kubectl(['delete', 'mutatingwebhookconfiguration,validatingwebhookconfiguration', CONFIGURATION_NAME]);
    await cp.kubectl(ssa, { input: list(olderRegistration(current)) });
    await mkdir(join(cp.dir, 'logs'), { recursive: true });
    serve = startChild(
      'serve-cert-controller',
      process.execPath,
      [
        CLI,
        'serve',
        `--kubeconfig=${cp.kubeconfigPath}`,
        `--cert-secret=${OWN_NAMESPACE}/netd-upgrade-tls`,
        `--webhook-config=${CONFIGURATION_NAME}`,
        `--cert-dir=${join(cp.dir, 'serve-cert-controller')}`,
        '--host=127.0.0.1',
        `--port=${port}`,
      ],
      cp.dir,
      cleanEnv(),
    );
    const registered = async () => JSON.parse((await cp.kubectl(['get', 'mutatingwebhookconfiguration', CONFIGURATION_NAME, '-o', 'json'])).stdout);
    const injected = await waitFor(
      'the CA in every entry',
      async () => {
        const config = await registered();
        return config.webhooks.every((w: any) => w.clientConfig.caBundle) ? config : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, children: [serve] },
    );
    expect(injected.webhooks.map((w: { name: string }) => w.name)).toEqual([MUTATING_NAME, MUTATING_CILIUM_NAME, RETIRED, MUTATING_NODES_NAME]);
    const warned = await waitFor(
      "serve's warning about the stale entry",
      async () =>
        readFileSync(serve!.logPath, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l))
          .find((l) => String(l.msg).includes('no longer registers')),
      { timeoutMs: 20_000, children: [serve] },
    );
    expect(warned).toMatchObject({ level: 'warn', entries: [RETIRED] });
    // The stale entry reaches this server over TLS with the injected CA, and is answered: allowed, unchanged.
    const event = await touchNetdUntilRetiredCalled();
    expect(event.responseStatus?.code).toBe(200);

    const r = await cp.kubectl(ssa, { input: list(current), allowFail: true });
    const after = await registered();
    // Removed whole, though the cert controller wrote its caBundle (a field of another manager).
    expect(r.code).toBe(0);
    expect(after.webhooks.map((w: { name: string }) => w.name)).toEqual([MUTATING_NAME, MUTATING_CILIUM_NAME, MUTATING_NODES_NAME]);
    // It would keep injecting its CA, which the next test's webhook does not serve.
    await stopChild(serve);
  });
});

describe('a rule that keeps netd off migrated nodes silences the check', () => {
  it('the webhook adds the affinity, the controller moves netd off the migrated node, lint says nothing', async () => {
    await guard?.stop();
    const configFile = join(cp.dir, 'netd-rule.yaml');
    const rule = { name: 'gke-netd', role: 'legacy', match: { namespace: 'kube-system', names: ['netd'] } };
    await writeFile(configFile, stringify({ rules: [rule] }));
    guard = await startGuard(cp, { args: ['--config', configFile] });
    // The registration generated for that config: its matchConditions send netd.
    const options = { endpoint: { url: guard.url }, caPem: guard.caPem, ownNamespace: OWN_NAMESPACE, config: parseConfig({ rules: [rule] }) };
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [mutatingWebhookConfiguration(options), validatingWebhookConfiguration(options)] }),
    });
    // Any write of netd now gets the affinity (kubectl apply of the unchanged file would send none).
    let n = 0;
    const applied = await waitFor(
      'the API server to send netd to the webhook',
      async () => {
        n += 1;
        const r = await cp.kubectl(['-n', 'kube-system', 'annotate', 'daemonset', 'netd', `example.com/touched=${n}`, '--overwrite'], { allowFail: true });
        return r.stderr.includes('added nodeAffinity') ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(applied.code).toBe(0);
    expect(applied.stderr).toContain('Warning: cilium-migration-guard added nodeAffinity cni NotIn [cilium] to kube-system/netd (role legacy, rule gke-netd)');
    await waitForDaemonSetOn(cp, 'kube-system', 'netd', [LEGACY]);
    expect(await netdFindings()).toEqual([]);
  });
});
