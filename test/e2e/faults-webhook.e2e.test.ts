// Fault suite, part 2 (issue 9): one of two webhook replicas killed (SIGKILL) under load, behind
// the registration. Two `serve --kubeconfig` processes share one serving certificate (as replicas
// of the Deployment share the Secret); the registration's URL points at a TCP round-robin proxy
// in front of them (test/harness/faults.ts: what kube-proxy makes of a Service with two
// endpoints, TLS passing through). Load: 4 clients sending, through the API server, server-side
// dry runs of an old-CNI DaemonSet (entry with failurePolicy Fail: patched when the webhook
// answers, refused "failed calling webhook" when the call fails) and of a pod placed on a migrated
// node where Cilium is not ready (failurePolicy Ignore: denied when the webhook answers, admitted
// when the call fails). Every answer is classified; the measured numbers are printed.

import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mutatingWebhookConfiguration, validatingWebhookConfiguration } from '../../src/registration.js';
import { sleep, startControlPlane, waitFor, type ControlPlane } from '../harness/controlplane.js';
import { installCiliumCrds, OWN_NAMESPACE, startGuard, type Guard } from '../harness/guard.js';
import { kill, startRoundRobinProxy, type RoundRobinProxy } from '../harness/faults.js';

const PENDING = 'kwok-cilium-pending';
const CLIENTS = 4;
const BEFORE_MS = 5_000;
const AFTER_MS = 15_000;

type Outcome = 'patched' | 'denied' | 'refused-by-policy' | 'admitted-by-policy' | 'other';
interface Sample {
  at: number;
  kind: 'daemonset' | 'pod';
  outcome: Outcome;
  ms: number;
  detail?: string;
}

let cp: ControlPlane;
let a: Guard;
let b: Guard;
let proxy: RoundRobinProxy;
const measured: string[] = [];
const report = (line: string) => {
  measured.push(line);
  process.stderr.write(`[faults] ${line}\n`);
};

const awsNode = {
  apiVersion: 'apps/v1',
  kind: 'DaemonSet',
  metadata: { name: 'aws-node', namespace: 'kube-system' },
  spec: {
    selector: { matchLabels: { 'k8s-app': 'aws-node' } },
    template: { metadata: { labels: { 'k8s-app': 'aws-node' } }, spec: { containers: [{ name: 'aws-node', image: 'aws-node' }] } },
  },
};

async function one(kind: Sample['kind']): Promise<Sample> {
  const started = Date.now();
  const r =
    kind === 'daemonset'
      ? await cp.api('POST', '/apis/apps/v1/namespaces/kube-system/daemonsets?dryRun=All', awsNode)
      : await cp.api('POST', '/api/v1/namespaces/default/pods?dryRun=All', {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { generateName: 'load-', namespace: 'default', labels: { app: 'web' } },
          spec: { nodeName: PENDING, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
        });
  const ms = Date.now() - started;
  let outcome: Outcome = 'other';
  if (kind === 'daemonset') {
    if (r.status === 201 && r.body.includes('"NotIn"')) outcome = 'patched';
    else if (r.status >= 500 && r.body.includes('failed calling webhook')) outcome = 'refused-by-policy';
  } else if (r.status === 403 && r.body.includes('cannot be placed on node')) outcome = 'denied';
  else if (r.status === 201) outcome = 'admitted-by-policy';
  return { at: started, kind, outcome, ms, ...(outcome === 'other' || outcome.endsWith('policy') ? { detail: `${r.status} ${r.body.slice(0, 300)}` } : {}) };
}

describe('faults: one of two webhook replicas killed under load', () => {
  beforeAll(async () => {
    cp = await startControlPlane({ nodes: [{ name: PENDING, labels: { cni: 'cilium' } }], log: (l) => process.stderr.write(`[controlplane] ${l}\n`) });
    await installCiliumCrds(cp);
    a = await startGuard(cp, { dir: join(cp.dir, 'replica-a') });
    // The second replica serves the same pair (replicas share the Secret).
    const dirB = join(cp.dir, 'replica-b');
    mkdirSync(dirB, { recursive: true });
    cpSync(a.certDir, join(dirB, 'guard-certs'), { recursive: true });
    b = await startGuard(cp, { dir: dirB });
    expect(b.caPem).toBe(a.caPem);
    proxy = await startRoundRobinProxy([a.port, b.port]);
    const endpoint = { url: `https://127.0.0.1:${proxy.port}` };
    const list = {
      apiVersion: 'v1',
      kind: 'List',
      items: [
        mutatingWebhookConfiguration({ endpoint, caPem: a.caPem, ownNamespace: OWN_NAMESPACE }),
        validatingWebhookConfiguration({ endpoint, caPem: a.caPem, ownNamespace: OWN_NAMESPACE }),
      ],
    };
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(list) });
    // The API server picks up each configuration through its own informer: wait for both entries.
    await waitFor(
      'the API server calling both webhooks through the proxy',
      async () => ((await one('daemonset')).outcome === 'patched' && (await one('pod')).outcome === 'denied' ? true : undefined),
      { timeoutMs: 30_000, children: [a.child, b.child] },
    );
  }, 40 * 60_000);

  afterAll(async () => {
    await proxy?.close();
    await a?.stop();
    await b?.stop();
    await cp?.stop();
    if (measured.length > 0) process.stderr.write(`[faults] summary:\n${measured.map((l) => `  ${l}`).join('\n')}\n`);
  }, 120_000);

  it('the API server applies each entry’s failure policy while the dead replica is still in rotation, and requests succeed again within seconds', async () => {
    const samples: Sample[] = [];
    const start = Date.now();
    let killedAt = 0;
    const stopAt = start + BEFORE_MS + AFTER_MS;
    const clients = Array.from({ length: CLIENTS }, async (_, i) => {
      for (let n = 0; Date.now() < stopAt && n < 10_000; n++) samples.push(await one((n + i) % 2 === 0 ? 'daemonset' : 'pod'));
    });
    await sleep(BEFORE_MS);
    const beforeKill = samples.length;
    killedAt = Date.now();
    await kill(a.child, 'SIGKILL');
    await Promise.all(clients);

    // A request in flight at the kill (answered after it) belongs to the fault: the replica may have been deciding it.
    const before = samples.filter((s) => s.at + s.ms < killedAt);
    const after = samples.filter((s) => s.at + s.ms >= killedAt);
    const inFlight = after.filter((s) => s.at < killedAt).length;
    const wrong = (s: Sample) => s.outcome !== (s.kind === 'daemonset' ? 'patched' : 'denied');
    // Before the kill, every answer is the webhook's.
    expect(before.filter(wrong)).toEqual([]);
    expect(beforeKill).toBeGreaterThan(20);
    // After: only the documented failure policies, never anything else (no 5xx for pods, no hang).
    expect(after.filter((s) => s.outcome === 'other')).toEqual([]);
    expect(after.filter((s) => s.kind === 'daemonset' && s.outcome === 'admitted-by-policy')).toEqual([]);
    const failed = after.filter(wrong);
    const lastFailure = failed.length > 0 ? Math.max(...failed.map((s) => s.at + s.ms)) - killedAt : 0;
    // Requests succeed again within seconds, and keep succeeding (the dead endpoint is still in rotation).
    expect(lastFailure).toBeLessThan(5_000);
    const tail = after.filter((s) => s.at - killedAt > 5_000);
    expect(tail.length).toBeGreaterThan(20);
    expect(tail.filter(wrong)).toEqual([]);
    expect(b.child.exitCode).toBeUndefined();
    const slowest = Math.max(...after.map((s) => s.ms));
    report(
      `webhook replica SIGKILLed under load (${CLIENTS} clients, ${samples.length} requests, ${after.length} after the kill): ` +
        `${failed.length} answered by the failure policy (${failed.filter((s) => s.kind === 'daemonset').length} DaemonSet writes refused "failed calling webhook", ` +
        `${failed.filter((s) => s.kind === 'pod').length} pod placements admitted unchecked), the last ${(lastFailure / 1000).toFixed(1)} s after the kill; ` +
        `0 other errors; ${inFlight} requests were in flight at the kill; slowest request after the kill ${slowest} ms; proxy: ${proxy.stats.refused} connections refused by the dead replica`,
    );
    if (failed.length > 0)
      process.stderr.write(`[faults] policy answers:\n${failed.map((s) => `  +${s.at - killedAt} ms ${s.kind}: ${s.detail}`).join('\n')}\n`);
  });
});
