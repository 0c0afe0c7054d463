// Fault suite, part 3 (issue 9): the reaper's leader killed (SIGKILL) mid-run. Two `reaper` CLI
// processes elect a leader on a Lease; the GKE race (test/e2e/reaper.e2e.test.ts) is reproduced on
// three migrated kwok nodes with 5 victims, under a cluster-wide rate limit of 3 removals a
// minute: the leader evicts 3 and waits for its window, and is killed while it waits. Nothing
// releases the Lease: the other replica must wait for it to expire (15 s, measured on its own
// clock), then finish the run. Who evicted what is read from the API server's audit log (every
// eviction request, with its uid precondition and answer) and from the Events.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROLLERS, POD_CIDR, sleep, startControlPlane, waitFor, type ControlPlane } from '../harness/controlplane.js';
import { auditEvents, type AuditEvent } from '../harness/audit.js';
import { ciliumManages } from '../harness/cilium.js';
import { installCiliumCrds, OWN_NAMESPACE, startReaper, type ReaperProcess } from '../harness/guard.js';
import { kill, metricValue, reaperMetrics } from '../harness/faults.js';

const NODES = ['kwok-race-1', 'kwok-race-2', 'kwok-race-3'];
const LEASE = 'reaper-faults';
const VICTIMS: Array<[string, string]> = [
  ['web-a1', NODES[0]!],
  ['web-a2', NODES[0]!],
  ['web-b1', NODES[1]!],
  ['web-b2', NODES[1]!],
  ['web-c1', NODES[2]!],
];

interface PodJson {
  metadata: { name: string; namespace: string; uid: string; deletionTimestamp?: string };
  status?: { podIP?: string; startTime?: string; conditions?: Array<{ type: string; status: string; lastTransitionTime?: string }> };
}

let cp: ControlPlane;
const replicas = new Map<string, ReaperProcess>();
let replicaSetUid = '';
const measured: string[] = [];
const report = (line: string) => {
  measured.push(line);
  process.stderr.write(`[faults] ${line}\n`);
};

const apply = (obj: unknown) => cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });

async function getPod(namespace: string, name: string): Promise<PodJson | undefined> {
  const r = await cp.api('GET', `/api/v1/namespaces/${namespace}/pods/${name}`);
  if (r.status === 404) return undefined;
  return JSON.parse(r.body) as PodJson;
}

async function runPod(name: string, node: string, opts: { owned: boolean; namespace?: string; labels?: Record<string, string>; hostNetwork?: boolean }) {
  const namespace = opts.namespace ?? 'default';
  await apply({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      labels: opts.labels ?? { app: 'web' },
      ...(opts.owned ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web', uid: replicaSetUid, controller: true }] } : {}),
    },
    spec: { nodeName: node, ...(opts.hostNetwork ? { hostNetwork: true } : {}), containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
  });
  return waitFor(
    `pod ${namespace}/${name} running`,
    async () => {
      const pod = await getPod(namespace, name);
      return pod?.status?.podIP && pod.status.startTime && pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? pod : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
}

/** Every eviction or delete request for pods, by anyone but kwok (which finishes deletions on its nodes). */
function removals(): AuditEvent[] {
  return auditEvents(cp)
    .filter((e) => e.objectRef?.resource === 'pods' && !/kwok/i.test(e.userAgent ?? ''))
    .filter((e) => (e.verb === 'create' && e.objectRef?.subresource === 'eviction') || (e.verb === 'delete' && !e.objectRef?.subresource));
}

async function leaseHolder(): Promise<string | undefined> {
  const r = await cp.api('GET', `/apis/coordination.k8s.io/v1/namespaces/${OWN_NAMESPACE}/leases/${LEASE}`);
  if (r.status !== 200) return undefined;
  return (JSON.parse(r.body) as { spec: { holderIdentity?: string } }).spec.holderIdentity || undefined;
}

describe('faults: the reaper leader killed mid-run', () => {
  const victims = new Map<string, PodJson>();
  const keep = new Map<string, PodJson>(); // pods that must never be removed

  beforeAll(async () => {
    cp = await startControlPlane({
      nodes: NODES.map((name) => ({ name, labels: { cni: 'cilium' } })),
      log: (l) => process.stderr.write(`[controlplane] ${l}\n`),
      // The race needs pods started at chosen moments on chosen nodes, before the agent is Ready, so
      // the test writes them itself, owned by a ReplicaSet of 0 replicas (what the reaper reads to
      // know something recreates them). The ReplicaSet controller would delete such extra pods, and
      // nothing here is about their replacement (test/e2e/reaper.e2e.test.ts covers that with a real
      // Deployment), so it is left out with the garbage collector; every other controller runs.
      controllers: CONTROLLERS.filter((c) => c !== 'replicaset-controller' && c !== 'garbage-collector-controller'),
    });
    await installCiliumCrds(cp);
    await cp.kubectl(['create', 'namespace', OWN_NAMESPACE]);
    await apply({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] } },
      },
    });
    replicaSetUid = (JSON.parse((await cp.api('GET', '/apis/apps/v1/namespaces/default/replicasets/web')).body) as PodJson).metadata.uid;

    // The race on every node: early pods first, then the agent turns Ready, then a Cilium-managed
    // pod gets each early pod's IP (and a CiliumEndpoint). An owner-less early pod on the last node
    // is reported, never removed (removeUnowned is false).
    for (const node of NODES)
      await apply({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: node }, spec: { ipam: { podCIDRs: [POD_CIDR] } } });
    const early = await Promise.all([
      ...VICTIMS.map(([name, node]) => runPod(name, node, { owned: true })),
      runPod('debug-early', NODES[2]!, { owned: false }),
    ]);
    for (const pod of early) (pod.metadata.name === 'debug-early' ? keep : victims).set(pod.metadata.name, pod);
    const lastStart = Math.max(...early.map((p) => Date.parse(p.status!.startTime!)));
    await sleep(Math.max(0, lastStart + 1_100 - Date.now())); // second-precision timestamps
    for (const node of NODES) {
      const agentPod = await runPod(`cilium-${node}`, node, { owned: false, namespace: 'kube-system', labels: { 'k8s-app': 'cilium' }, hostNetwork: true });
      keep.set(agentPod.metadata.name, agentPod);
    }
    let id = 1000;
    for (const pod of early) {
      const ip = pod.status!.podIP!;
      const name = `${pod.metadata.name}-cilium`;
      const node = pod.metadata.name === 'debug-early' ? NODES[2]! : VICTIMS.find(([n]) => n === pod.metadata.name)![1];
      await runPod(name, node, { owned: true });
      await ciliumManages(cp, { name }, ip, id++);
      keep.set(name, (await getPod('default', name))!);
    }
  }, 40 * 60_000);

  afterAll(async () => {
    for (const r of replicas.values()) await r.stop();
    await cp?.stop();
    if (measured.length > 0) process.stderr.write(`[faults] summary:\n${measured.map((l) => `  ${l}`).join('\n')}\n`);
  }, 120_000);

  it('the follower takes over after the Lease expires and finishes the run: each victim evicted once, nothing else touched', async () => {
    const configFile = join(cp.dir, 'reaper-faults.yaml');
    writeFileSync(
      configFile,
      'reaper:\n  gracePeriodSeconds: 1\n  resyncSeconds: 5\n  debounceMs: 200\n  rateLimit:\n    perMinute: 3\n    perNodePerMinute: 2\n',
    );
    for (const identity of ['reaper-a', 'reaper-b']) {
      const dir = join(cp.dir, identity);
      mkdirSync(dir, { recursive: true });
      replicas.set(identity, await startReaper(cp, { dir, args: ['--identity', identity, '--lease-name', LEASE, '--config', configFile] }));
    }

    // The leader evicts 3 (the cluster-wide limit) and waits for its window.
    const evicted = () => removals().filter((e) => e.responseStatus?.code === 201);
    await waitFor('3 evictions', async () => (evicted().length >= 3 ? true : undefined), { timeoutMs: 60_000, intervalMs: 200 });
    const leader = (await leaseHolder())!;
    const follower = [...replicas.keys()].find((id) => id !== leader)!;
    expect(replicas.has(leader)).toBe(true);
    const leaderLog = () => readFileSync(replicas.get(leader)!.logPath, 'utf8');
    await waitFor('the leader waiting on its rate limit', async () => (leaderLog().includes('rate limit reached') ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    const byLeader = evicted().length;
    expect(byLeader).toBe(3);

    // Killed mid-run: no shutdown, no Lease release.
    const killedAt = Date.now();
    await kill(replicas.get(leader)!.child, 'SIGKILL');
    replicas.delete(leader);
    expect(await leaseHolder()).toBe(leader);

    const b = replicas.get(follower)!;
    const tookOverMs = await waitFor(
      `${follower} leading`,
      async () => (metricValue(await reaperMetrics(b.url), 'cmg_reaper_leader') === 1 ? Date.now() - killedAt : undefined),
      {
        timeoutMs: 40_000,
        intervalMs: 200,
        children: [b.child],
      },
    );
    // Not before the Lease expired (15 s from the leader's last renewal, which was at most one
    // retry period, 2 s, before the kill), and not long after (its retry period is 2 s).
    expect(tookOverMs).toBeGreaterThan(12_000);
    expect(tookOverMs).toBeLessThan(25_000);
    expect(await leaseHolder()).toBe(follower);
    await waitFor('all 5 victims evicted', async () => (evicted().length >= VICTIMS.length ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 200,
      children: [b.child],
    });
    const doneMs = Date.now() - killedAt;

    // Let the new leader evaluate twice more: each pass is a chance to remove something again.
    const evaluations = async () => metricValue(await reaperMetrics(b.url), 'cmg_reaper_evaluations_total') ?? 0;
    const base = await evaluations();
    await waitFor('two more evaluations', async () => ((await evaluations()) >= base + 2 ? true : undefined), { timeoutMs: 30_000, intervalMs: 300 });

    // Per pod uid: every victim exactly one eviction request (answered 201), no delete; no request for any other pod.
    const all = removals();
    const perUid = new Map<string, AuditEvent[]>();
    for (const e of all) {
      const uid = e.requestObject?.deleteOptions?.preconditions?.uid ?? e.requestObject?.preconditions?.uid ?? `no-uid:${e.objectRef?.name}`;
      perUid.set(uid, [...(perUid.get(uid) ?? []), e]);
    }
    for (const [name, pod] of victims) {
      const writes = perUid.get(pod.metadata.uid) ?? [];
      expect(
        writes.map((e) => [e.objectRef?.name, e.verb, e.objectRef?.subresource, e.responseStatus?.code]),
        name,
      ).toEqual([[name, 'create', 'eviction', 201]]);
    }
    expect(all).toHaveLength(VICTIMS.length);
    for (const [name, pod] of keep) {
      const now = await getPod(pod.metadata.namespace, name);
      expect(now?.metadata.uid, name).toBe(pod.metadata.uid);
      expect(now?.metadata.deletionTimestamp, name).toBeUndefined();
    }
    // The Events agree: 3 evictions by the killed leader, 2 by the follower.
    const events = JSON.parse((await cp.api('GET', '/api/v1/namespaces/default/events')).body) as {
      items: Array<{ action: string; reportingInstance: string; involvedObject: { kind: string; name: string } }>;
    };
    const evictEvents = events.items.filter((e) => e.action === 'Evict' && e.involvedObject.kind === 'Pod');
    const byInstance = (id: string) => evictEvents.filter((e) => e.reportingInstance === id).length;
    expect(byInstance(follower)).toBe(VICTIMS.length - byLeader);
    expect(byInstance(leader)).toBeLessThanOrEqual(byLeader); // the last Event may have died with it
    expect(new Set(evictEvents.map((e) => e.involvedObject.name)).size).toBe(evictEvents.length);
    report(
      `reaper leader (${leader}) SIGKILLed after ${byLeader} of ${VICTIMS.length} evictions, waiting on its rate limit: ${follower} leading after ` +
        `${(tookOverMs / 1000).toFixed(1)} s (Lease 15 s, not released), run finished ${(doneMs / 1000).toFixed(1)} s after the kill; ` +
        `${all.length} eviction requests for ${VICTIMS.length} victims, 0 for the ${keep.size} pods that must stay`,
    );
  });
});
