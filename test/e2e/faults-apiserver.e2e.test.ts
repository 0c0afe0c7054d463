// Fault suite, part 1 (issue 9): the API server killed and restarted, then etcd paused (SIGSTOP)
// for longer than the informers' 30 s inactivity timeout, while the webhook (`serve
// --kubeconfig`) and the reaper (`reaper`, leader-elected) run as CLI processes against them.
//
// What "honest" means, asserted below:
//   - the webhook keeps answering from its last known caches (they are the state the API server
//     last showed; every replica sees the same outage, so failing readiness would take all of them
//     out of the Service at once): /readyz stays 200 and its body names the disconnected caches;
//   - the reaper acts on nothing while any of its caches is disconnected: /readyz 503 naming them;
//     it cannot act while etcd is paused either (its Lease cannot be renewed: it stops leading);
//   - after recovery, a node that became Cilium-ready DURING the outage (CiliumNode + Ready agent
//     pod, written through another API server of the control plane, or landing when etcd resumes)
//     gets a bind-equivalent placement allowed within seconds;
//   - both processes survive, and their RSS stays bounded.
// Every wait is a bounded poll. The measured times are printed as `[faults] ...` lines.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, startControlPlane, waitFor, httpGet, type ControlPlane } from '../harness/controlplane.js';
import { installCiliumCrds, startGuard, startReaper, type Guard, type ReaperProcess } from '../harness/guard.js';
import { https, kill, metricValue, podCreateReview, reaperMetrics, rssMiB, startPeerApiServer } from '../harness/faults.js';

const READY = 'kwok-cilium-ready';
const LATE = 'kwok-cilium-late'; // becomes ready while the API server is down
const PAUSED = 'kwok-cilium-paused'; // becomes ready while etcd is paused
const ETCD_PAUSE_MS = 40_000;
/** The API server stays down this long: longer than the informers' 30 s watch timeout, so their retries reach the backoff cap. */
const API_DOWN_MS = 35_000;

let cp: ControlPlane;
let guard: Guard;
let reaper: ReaperProcess;
const measured: string[] = [];
const report = (line: string) => {
  measured.push(line);
  process.stderr.write(`[faults] ${line}\n`);
};

function ciliumNode(name: string) {
  return { apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name }, spec: { ipam: { podCIDRs: ['10.244.0.0/16'] } } };
}
function agentPod(node: string) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `cilium-${node}`, namespace: 'kube-system', labels: { 'k8s-app': 'cilium' } },
    spec: { nodeName: node, hostNetwork: true, containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium:v1.17.4' }] },
  };
}
const readyStatus = () =>
  JSON.stringify({
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }] },
  });

/** A pod created with spec.nodeName, server-side dry run: what the pod webhook decides for a placement on `node`. */
async function place(node: string): Promise<number> {
  const r = await cp.api('POST', '/api/v1/namespaces/default/pods?dryRun=All', {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'probe-', namespace: 'default', labels: { app: 'web' } },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
  });
  return r.status;
}

/** The webhook asked directly (not through the API server): its own decision from its caches. */
async function askWebhook(node: string): Promise<boolean> {
  const r = await https(`${guard.url}/validate/pods`, { ca: guard.caPem, body: podCreateReview(`u-${Date.now()}`, 'direct', node) });
  if (r.status !== 200) throw new Error(`webhook answered ${r.status}: ${r.body}`);
  return (JSON.parse(r.body) as { response: { allowed: boolean } }).response.allowed;
}

async function webhookReadyz(): Promise<{ status: number; body: { ready: boolean; disconnected?: Record<string, string> } }> {
  const r = await https(`${guard.url}/readyz`, { ca: guard.caPem, timeoutMs: 3_000 });
  return { status: r.status, body: JSON.parse(r.body) as { ready: boolean; disconnected?: Record<string, string> } };
}
async function reaperReadyz(): Promise<{ status: number; body: { ready: boolean; detail: { disconnected?: Record<string, string> } } }> {
  const r = await httpGet(`${reaper.url}/readyz`, 3_000);
  return { status: r.status, body: JSON.parse(r.body) as { ready: boolean; detail: { disconnected?: Record<string, string> } } };
}
const webhookRss = async () => rssMiB((await https(`${guard.url}/metrics`, { ca: guard.caPem })).body);
const reaperRss = async () => rssMiB(await reaperMetrics(reaper.url));

/** Polls until the placement on `node` is allowed; returns ms from `since`. */
async function allowedAfter(node: string, since: number): Promise<number> {
  await waitFor(`a placement on ${node} allowed`, async () => ((await place(node).catch(() => 0)) === 201 ? true : undefined), {
    timeoutMs: 60_000,
    intervalMs: 200,
    children: [guard.child, reaper.child],
  });
  return Date.now() - since;
}

describe('faults: API server killed and restarted, etcd paused', () => {
  let rssBefore: { webhook: number; reaper: number };

  beforeAll(async () => {
    cp = await startControlPlane({
      nodes: [READY, LATE, PAUSED].map((name) => ({ name, labels: { cni: 'cilium' } })),
      log: (l) => process.stderr.write(`[controlplane] ${l}\n`),
    });
    await installCiliumCrds(cp);
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(ciliumNode(READY)) });
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(agentPod(READY)) });
    await cp.kubectl(['wait', '--for=condition=Ready', '--timeout=60s', '-n', 'kube-system', `pod/cilium-${READY}`]);
    guard = await startGuard(cp);
    await guard.register();
    reaper = await startReaper(cp);
    await waitFor('the reaper leading', async () => (metricValue(await reaperMetrics(reaper.url), 'cmg_reaper_leader') === 1 ? true : undefined), {
      timeoutMs: 30_000,
      children: [reaper.child],
    });
  }, 40 * 60_000);

  afterAll(async () => {
    const etcd = cp?.process('etcd');
    if (etcd && etcd.exitCode === undefined) etcd.proc.kill('SIGCONT'); // never leave it stopped
    await reaper?.stop();
    await guard?.stop();
    await cp?.stop();
    if (measured.length > 0) process.stderr.write(`[faults] summary:\n${measured.map((l) => `  ${l}`).join('\n')}\n`);
  }, 120_000);

  it('before any fault: placements on the ready node allowed, on the others denied', async () => {
    expect(await place(READY)).toBe(201);
    expect(await place(LATE)).toBe(403);
    expect(await place(PAUSED)).toBe(403);
    rssBefore = { webhook: await webhookRss(), reaper: await reaperRss() };
    report(`RSS before the faults: webhook ${rssBefore.webhook} MiB, reaper ${rssBefore.reaper} MiB`);
  });

  it('API server killed: webhook answers from its caches (ready, says what is disconnected), reaper holds back; a node made ready meanwhile is allowed within seconds of the restart', async () => {
    const apiserver = cp.process('kube-apiserver')!;
    const killedAt = Date.now();
    await kill(apiserver, 'SIGKILL');

    // Honest readiness during the outage.
    const webhookDuring = await waitFor(
      'the webhook to report its caches disconnected',
      async () => {
        const r = await webhookReadyz();
        return r.body.disconnected && Object.keys(r.body.disconnected).length >= 4 ? r : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, children: [guard.child] },
    );
    expect(webhookDuring.status).toBe(200);
    expect(Object.keys(webhookDuring.body.disconnected!).sort()).toEqual(['agentPods', 'ciliumnodes', 'nodes', 'unscheduledPods']);
    // Said to Prometheus too (the webhook stays ready, so this is what an alert reads).
    const webhookMetricsDuring = (await https(`${guard.url}/metrics`, { ca: guard.caPem })).body;
    expect(metricValue(webhookMetricsDuring, 'cmg_cache_disconnected{cache="nodes"}')).toBe(1);
    const reaperDuring = await waitFor(
      'the reaper to report not ready',
      async () => {
        const r = await reaperReadyz();
        return r.status === 503 ? r : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, children: [reaper.child] },
    );
    expect(Object.keys(reaperDuring.body.detail.disconnected ?? {}).length).toBeGreaterThanOrEqual(1);
    // The webhook keeps deciding from its last known view: ready node allowed, the other denied.
    expect(await askWebhook(READY)).toBe(true);
    expect(await askWebhook(LATE)).toBe(false);

    // Meanwhile the rest of the control plane (another API server on the same etcd) sees LATE
    // become ready: its CiliumNode is created and its agent pod turns Ready, as the kubelet writes it.
    const peer = await startPeerApiServer(cp);
    try {
      // cp.kubectl passes the primary's kubeconfig first; the later --kubeconfig wins in kubectl.
      const run = (args: string[], input?: string) => cp.kubectl([`--kubeconfig=${peer.kubeconfigPath}`, ...args], input ? { input } : {});
      await run(['apply', '-f', '-'], JSON.stringify(ciliumNode(LATE)));
      await run(['apply', '-f', '-'], JSON.stringify(agentPod(LATE)));
      await run(['patch', 'pod', `cilium-${LATE}`, '-n', 'kube-system', '--subresource=status', '--type=merge', '-p', readyStatus()]);
    } finally {
      await peer.stop();
    }
    await sleep(Math.max(0, killedAt + API_DOWN_MS - Date.now()));
    // Still the last known view: the webhook cannot know yet, and still says so.
    expect(await askWebhook(LATE)).toBe(false);
    expect((await webhookReadyz()).body.disconnected).toBeDefined();
    expect((await reaperReadyz()).status).toBe(503);
    expect(guard.child.exitCode).toBeUndefined();
    expect(reaper.child.exitCode).toBeUndefined();

    // Same flags, same etcd, same port and certificates.
    const downMs = Date.now() - killedAt;
    cp.restart('kube-apiserver');
    const ca = readFileSync(cp.caFile, 'utf8');
    await waitFor(
      'kube-apiserver /readyz after the restart',
      async () => ((await https(`${cp.server}/readyz`, { ca, token: cp.token, timeoutMs: 3_000 })).status === 200 ? true : undefined),
      {
        timeoutMs: 90_000,
        intervalMs: 200,
      },
    );
    const upAt = Date.now();
    const allowedMs = await allowedAfter(LATE, upAt);
    const webhookClean = await waitFor('webhook caches reconnected', async () => ((await webhookReadyz()).body.disconnected ? undefined : Date.now() - upAt), {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    expect(metricValue((await https(`${guard.url}/metrics`, { ca: guard.caPem })).body, 'cmg_cache_disconnected{cache="nodes"}')).toBe(0);
    const reaperBack = await waitFor('reaper ready again', async () => ((await reaperReadyz()).status === 200 ? Date.now() - upAt : undefined), {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    report(
      `API server killed for ${(downMs / 1000).toFixed(1)} s (a node made Cilium-ready meanwhile through another API server): ` +
        `after /readyz of the restarted API server, placement on it allowed in ${(allowedMs / 1000).toFixed(1)} s, ` +
        `webhook caches all reconnected in ${(webhookClean / 1000).toFixed(1)} s, reaper ready in ${(reaperBack / 1000).toFixed(1)} s`,
    );
    expect(allowedMs).toBeLessThan(15_000);
    expect(await place(READY)).toBe(201);
    expect(await place(PAUSED)).toBe(403);
    expect(readFileSync(reaper.logPath, 'utf8')).toContain('not evaluating or removing anything: a cache lost its watch');
    // Said by the first pass after the watches are back (it looks again every second).
    await waitFor(
      'the reaper evaluating again',
      async () => (readFileSync(reaper.logPath, 'utf8').includes('every cache is watching again: evaluating') ? true : undefined),
      {
        timeoutMs: 10_000,
        intervalMs: 200,
      },
    );
  });

  it('etcd paused for 40 s: the webhook keeps answering, the reaper stops leading; a node made ready during the pause is allowed within seconds of the resume', async () => {
    const etcd = cp.process('etcd')!;
    await waitFor('the reaper leading again', async () => (metricValue(await reaperMetrics(reaper.url), 'cmg_reaper_leader') === 1 ? true : undefined), {
      timeoutMs: 30_000,
      children: [reaper.child],
    });
    etcd.proc.kill('SIGSTOP');
    const pausedAt = Date.now();
    // The writes that make PAUSED ready are sent during the pause, retried until etcd takes them.
    const writer = (async () => {
      const steps: Array<[string[], string?]> = [
        [['apply', '-f', '-'], JSON.stringify(ciliumNode(PAUSED))],
        [['apply', '-f', '-'], JSON.stringify(agentPod(PAUSED))],
        [['patch', 'pod', `cilium-${PAUSED}`, '-n', 'kube-system', '--subresource=status', '--type=merge', '-p', readyStatus()]],
      ];
      for (const [args, input] of steps) {
        for (let i = 0; i < 60; i++) {
          const r = await cp.kubectl(['--request-timeout=20s', ...args], { allowFail: true, ...(input ? { input } : {}), timeoutMs: 30_000 });
          if (r.code === 0) break;
          await sleep(500);
        }
      }
    })();

    const samples: Array<{ t: number; webhook: number; disconnected: number; reaper: number; leader: number | undefined; answered: boolean }> = [];
    while (Date.now() - pausedAt < ETCD_PAUSE_MS) {
      const w = await webhookReadyz();
      const r = await reaperReadyz();
      const leader = metricValue(await reaperMetrics(reaper.url), 'cmg_reaper_leader');
      const answered = (await askWebhook(READY)) && !(await askWebhook(PAUSED));
      const disconnected = Object.keys(w.body.disconnected ?? {}).length;
      samples.push({ t: Date.now() - pausedAt, webhook: w.status, disconnected, reaper: r.status, leader, answered });
      if (r.status === 200) expect(r.body.detail.disconnected).toBeUndefined();
      await sleep(2_000);
    }
    // The webhook was ready and answered from its caches throughout.
    expect(samples.every((s) => s.webhook === 200 && s.answered)).toBe(true);
    // The reaper could not renew its Lease: it stopped leading within its renew deadline (10 s) + a retry.
    const notLeading = samples.find((s) => s.leader === 0);
    expect(notLeading?.t).toBeLessThan(16_000);
    expect(samples.at(-1)!.leader).toBe(0);
    expect(guard.child.exitCode).toBeUndefined();
    expect(reaper.child.exitCode).toBeUndefined();

    etcd.proc.kill('SIGCONT');
    const resumedAt = Date.now();
    const allowedMs = await allowedAfter(PAUSED, resumedAt);
    await writer;
    const leadingMs = await waitFor(
      'the reaper leading after the pause',
      async () => (metricValue(await reaperMetrics(reaper.url), 'cmg_reaper_leader') === 1 ? Date.now() - resumedAt : undefined),
      {
        timeoutMs: 40_000,
        children: [reaper.child],
      },
    );
    const reaperReadyMs = await waitFor(
      'reaper ready after the pause',
      async () => ((await reaperReadyz()).status === 200 ? Date.now() - resumedAt : undefined),
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    const disconnectedSeen = Math.max(...samples.map((s) => s.disconnected));
    const reaperNotReady = samples.filter((s) => s.reaper === 503).length;
    report(
      `etcd paused ${ETCD_PAUSE_MS / 1000} s: webhook /readyz 200 and answering in ${samples.length}/${samples.length} samples ` +
        `(at most ${disconnectedSeen} caches reported disconnected), reaper stopped leading after ${(notLeading!.t / 1000).toFixed(0)} s ` +
        `(/readyz 503 in ${reaperNotReady}/${samples.length} samples); after SIGCONT: placement on the node made ready during the pause allowed in ` +
        `${(allowedMs / 1000).toFixed(1)} s, reaper leading again in ${(leadingMs / 1000).toFixed(1)} s, ready in ${(reaperReadyMs / 1000).toFixed(1)} s`,
    );
    expect(allowedMs).toBeLessThan(15_000);
  });

  it('after both faults: no crash, RSS bounded, nothing removed', async () => {
    expect(guard.child.exitCode).toBeUndefined();
    expect(reaper.child.exitCode).toBeUndefined();
    const after = { webhook: await webhookRss(), reaper: await reaperRss() };
    report(`RSS after the faults: webhook ${after.webhook} MiB (before ${rssBefore.webhook}), reaper ${after.reaper} MiB (before ${rssBefore.reaper})`);
    expect(after.webhook).toBeLessThan(rssBefore.webhook + 100);
    expect(after.reaper).toBeLessThan(rssBefore.reaper + 100);
    // No evictions or deletes of pods by anyone during the whole run (there was no victim).
    const audit = readFileSync(cp.auditLogPath, 'utf8');
    expect(audit).not.toContain('"subresource":"eviction"');
    expect(metricValue(await reaperMetrics(reaper.url), 'cmg_reaper_removals_total{action="evict",result="removed",reason="DuplicatePodIP"}') ?? 0).toBe(0);
    // No error-level line from the webhook other than the informers' own reports of the outage.
    const errors = guard
      .logs()
      .split('\n')
      .filter((l) => l.includes('"level":50') || l.includes('"level":"error"'))
      .filter((l) => !l.includes('informer failed; serving the last known cache'));
    expect(errors).toEqual([]);
  });
});
