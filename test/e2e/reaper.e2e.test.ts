// The reaper against a real kube-apiserver (test/harness/controlplane.ts), with the GKE race
// reproduced the way it happens: on a kwok node labelled cni=cilium, workload pods start (kwok
// gives them IPs, as the image's default CNI would) BEFORE the Cilium agent pod turns Ready;
// then "Cilium" starts a pod, gives it the same IP (status subresource) and writes its
// CiliumEndpoint, and writes none for the early pod.
//
// Replicas run in-process (startReaperService), each with its own informers, Lease client and
// probe port. Who removed what is read from the API server's audit log and from Events.
// Waits are polls bounded at 30 s.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReport } from '../../src/commands/report.js';
import { parseConfig, type Config } from '../../src/config.js';
import { startReaperService, type ReaperService } from '../../src/reaper/service.js';
import { POD_CIDR, startControlPlane, type ControlPlane } from '../harness/controlplane.js';

const CRDS = ['ciliumnodes', 'ciliumendpoints'].map((name) => fileURLToPath(new URL(`./crds/${name}.yaml`, import.meta.url)));
const NODES = ['node-race-1', 'node-race-2', 'node-race-3', 'node-race-4'];
const LEASE = { namespace: 'cilium-migration-guard', name: 'reaper-e2e' };
const within = { timeout: 30_000, interval: 200 };
const REAPER = { gracePeriodSeconds: 1, resyncSeconds: 5, debounceMs: 200 };

interface PodJson {
  metadata: { name: string; namespace: string; uid: string; deletionTimestamp?: string };
  status?: { podIP?: string; startTime?: string; conditions?: Array<{ type: string; status: string; lastTransitionTime?: string }> };
}
interface EventJson {
  reason: string;
  action: string;
  type: string;
  message: string;
  reportingComponent: string;
  reportingInstance: string;
  involvedObject: { kind: string; name: string; uid?: string };
  related?: { kind: string; namespace?: string; name: string; uid?: string };
}
interface AuditEvent {
  verb: string;
  userAgent?: string;
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
  requestObject?: { preconditions?: { uid?: string; resourceVersion?: string }; deleteOptions?: { preconditions?: { uid?: string } } };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('reaper against kube-apiserver + kwok', () => {
  let cp: ControlPlane | undefined;
  let kc: KubeConfig;
  let replicaSetUid = '';
  const services = new Map<string, ReaperService>();
  let cli: ChildProcess | undefined;
  const logs: Array<Record<string, unknown>> = [];

  const plane = (): ControlPlane => {
    if (!cp) throw new Error('control plane not started');
    return cp;
  };
  const apply = (obj: unknown) => plane().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });

  async function getPod(namespace: string, name: string): Promise<PodJson | undefined> {
    const r = await plane().api('GET', `/api/v1/namespaces/${namespace}/pods/${name}`);
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new Error(`GET pod ${namespace}/${name}: HTTP ${r.status} ${r.body}`);
    return JSON.parse(r.body) as PodJson;
  }

  async function events(namespace: string, name: string): Promise<EventJson[]> {
    const r = await plane().api('GET', `/api/v1/namespaces/${namespace}/events?fieldSelector=involvedObject.name%3D${encodeURIComponent(name)}`);
    return (JSON.parse(r.body) as { items: EventJson[] }).items.filter((e) => e.reportingComponent === 'cilium-migration-guard');
  }

  /** Audit events of writes to one pod by anyone but kwok (which finishes deletions on its nodes). */
  function audit(name: string): AuditEvent[] {
    return readFileSync(plane().auditLogPath, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as AuditEvent)
      .filter((e) => e.objectRef?.resource === 'pods' && e.objectRef.name === name && !/kwok/i.test(e.userAgent ?? ''))
      .filter((e) => (e.verb === 'create' && e.objectRef?.subresource === 'eviction') || (e.verb === 'delete' && !e.objectRef?.subresource));
  }

  async function waitFor<T>(what: string, fn: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + within.timeout;
    for (let i = 0; Date.now() < deadline && i < 1000; i++) {
      const v = await fn();
      if (v !== undefined) return v;
      await sleep(within.interval);
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  /** A pod bound to `node` directly (no scheduler), Running with an IP from kwok. */
  async function runPod(name: string, node: string, owned: boolean, extra: { namespace?: string; labels?: Record<string, string>; hostNetwork?: boolean } = {}) {
    const namespace = extra.namespace ?? 'default';
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace,
        labels: extra.labels ?? { app: 'web' },
        ...(owned ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web', uid: replicaSetUid, controller: true }] } : {}),
      },
      spec: { nodeName: node, ...(extra.hostNetwork ? { hostNetwork: true } : {}), containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
    });
    return waitFor(`pod ${namespace}/${name} running`, async () => {
      const pod = await getPod(namespace, name);
      const ready = pod?.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True');
      return pod?.status?.podIP && pod.status.startTime && ready ? pod : undefined;
    });
  }

  /**
   * The race on `node`: `early` pods start first; then the Cilium agent turns Ready; then a
   * Cilium-managed pod "<early>-cilium" gets each early pod's IP and a CiliumEndpoint.
   */
  async function race(node: string, early: Array<{ name: string; owned: boolean; labels?: Record<string, string> }>) {
    await apply({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: node }, spec: { ipam: { podCIDRs: [POD_CIDR] } } });
    const victims = await Promise.all(early.map((p) => runPod(p.name, node, p.owned, p.labels ? { labels: p.labels } : {})));
    // Timestamps have second precision: make "started before Cilium was ready" unambiguous.
    const lastStart = Math.max(...victims.map((v) => Date.parse(v.status!.startTime!)));
    await sleep(Math.max(0, lastStart + 1_100 - Date.now()));
    const agent = await runPod(`cilium-${node}`, node, false, { namespace: 'kube-system', labels: { 'k8s-app': 'cilium' }, hostNetwork: true });
    const readySince = agent.status!.conditions!.find((c) => c.type === 'Ready')!.lastTransitionTime!;
    expect(Date.parse(readySince)).toBeGreaterThan(lastStart);
    const managed = [];
    for (const victim of victims) {
      const ip = victim.status!.podIP!;
      const name = `${victim.metadata.name}-cilium`;
      await runPod(name, node, true);
      await plane().kubectl([
        'patch', 'pod', name, '-n', 'default', '--subresource=status', '--type=merge',
        '-p', JSON.stringify({ status: { podIP: ip, podIPs: [{ ip }] } }),
      ]);
      await apply({
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumEndpoint',
        metadata: { name, namespace: 'default' },
        status: { id: 1000 + managed.length, state: 'ready', networking: { node: '10.255.0.1', addressing: [{ ipv4: ip }] } },
      });
      managed.push((await getPod('default', name))!);
    }
    return { victims, managed, readySince };
  }

  function logger(identity: string) {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        const line = JSON.parse(chunk.toString()) as Record<string, unknown>;
        logs.push({ ...line, replica: identity });
        if ((line.level as string) === 'error' || (line.level as string) === 'fatal') process.stderr.write(`[${identity}] ${chunk.toString()}`);
        done();
      },
    });
    return pino({ level: 'info', formatters: { level: (label) => ({ level: label }) } }, sink);
  }

  async function startReplica(identity: string, options: { dryRun?: boolean; leaderElect?: boolean; config: Config }) {
    const service = await startReaperService({
      kc,
      config: options.config,
      log: logger(identity),
      identity,
      dryRun: options.dryRun ?? false,
      ...(options.leaderElect ? { lease: LEASE } : {}),
      probe: { host: '127.0.0.1', port: 0 },
      defaultMetrics: false,
    });
    services.set(identity, service);
    await waitFor(`${identity} ready`, async () => ((await fetch(`${service.probe.url}/readyz`)).status === 200 ? true : undefined));
    return service;
  }

  /** A sample's value on a replica's /metrics (0 when absent). */
  async function metricValue(identity: string, sample: string): Promise<number> {
    const text = await (await fetch(`${services.get(identity)!.probe.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
    return line ? Number(line.slice(sample.length + 1)) : 0;
  }

  async function stopReplica(identity: string) {
    await services.get(identity)?.stop();
    services.delete(identity);
  }

  beforeAll(async () => {
    cp = await startControlPlane({
      nodes: NODES.map((name) => ({ name, labels: { cni: 'cilium' } })),
      log: (l) => process.stderr.write(`[controlplane] ${l}\n`),
    });
    for (const crd of CRDS) await cp.kubectl(['apply', '-f', crd]);
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/ciliumnodes.cilium.io', 'crd/ciliumendpoints.cilium.io']);
    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: LEASE.namespace } });
    // The owner of the workload pods. Nothing reconciles it (no controller-manager): it only has to exist.
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
    kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
  }, 40 * 60_000);

  afterAll(async () => {
    if (cli && cli.exitCode === null) cli.kill('SIGKILL');
    for (const service of services.values()) await service.stop().catch((err: unknown) => process.stderr.write(`stopping a replica: ${String(err)}\n`));
    await cp?.stop();
  }, 60_000);

  let race1: Awaited<ReturnType<typeof race>>;

  it('reproduces the race, and `report` against the cluster shows it', async () => {
    race1 = await race(NODES[0]!, [
      { name: 'web-early', owned: true },
      { name: 'debug-early', owned: false },
    ]);
    await sleep(1_100); // past the 1 s grace period
    const configFile = join(plane().dir, 'reaper-config.yaml');
    writeFileSync(configFile, 'reaper:\n  gracePeriodSeconds: 1\n');
    const { report } = await runReport(['--kubeconfig', plane().kubeconfigPath, '--config', configFile, '-o', 'json', '--log-level', 'silent']);
    const node = report.nodes.find((n) => n.node === NODES[0])!;
    expect(node).toMatchObject({ ciliumReady: true, agentPod: `kube-system/cilium-${NODES[0]}`, readySince: race1.readySince });
    expect(node.pods.map((p) => [p.name, p.verdict, p.reason])).toEqual([
      ['debug-early', 'report-only', 'DuplicatePodIP'],
      ['web-early', 'remove', 'DuplicatePodIP'],
    ]);
    const web = node.pods.find((p) => p.name === 'web-early')!;
    expect(web.evidence).toMatchObject({
      ip: race1.victims[0]!.status!.podIP,
      ciliumEndpoint: { found: false },
      sharedWith: [{ namespace: 'default', name: 'web-early-cilium', node: NODES[0], managedByCilium: true }],
      controller: { kind: 'ReplicaSet', name: 'web' },
    });
    // Nodes without the agent yet: not ready, and said why.
    expect(report.nodes.find((n) => n.node === NODES[1])).toMatchObject({ ciliumReady: false });
  });

  it('dry-run: records the findings as Events, removes nothing', async () => {
    await startReplica('dry-run', { dryRun: true, config: parseConfig({ reaper: REAPER }) });
    const dry = await waitFor('a DryRun Event on web-early', async () => (await events('default', 'web-early')).find((e) => e.action === 'DryRun'));
    expect(dry).toMatchObject({ type: 'Warning', reason: 'DuplicatePodIP', reportingInstance: 'dry-run', involvedObject: { kind: 'Pod', uid: race1.victims[0]!.metadata.uid } });
    expect(dry.message).toContain(`IP ${race1.victims[0]!.status!.podIP} also held by default/web-early-cilium`);
    expect(dry.message).toContain('no CiliumEndpoint');
    await waitFor('a Report Event on debug-early', async () => (await events('default', 'debug-early')).find((e) => e.action === 'Report'));
    await waitFor('a DryRun Event on the node', async () => (await events('default', NODES[0]!)).find((e) => e.action === 'DryRun' && e.involvedObject.kind === 'Node'));
    await stopReplica('dry-run');
    expect((await getPod('default', 'web-early'))?.metadata.deletionTimestamp).toBeUndefined();
    expect(audit('web-early')).toEqual([]);
  });

  it('two replicas: only the leader acts; the early pod is evicted once, the Cilium pod is untouched', async () => {
    const config = parseConfig({ reaper: REAPER });
    await Promise.all([startReplica('replica-a', { leaderElect: true, config }), startReplica('replica-b', { leaderElect: true, config })]);
    await waitFor('web-early removed', async () => {
      const pod = await getPod('default', 'web-early');
      return !pod || pod.metadata.deletionTimestamp ? true : undefined;
    });
    const leaders = [...services.entries()].filter(([, s]) => s.isLeader()).map(([id]) => id);
    expect(leaders).toHaveLength(1);
    const evicted = await waitFor('an Evict Event on web-early', async () => (await events('default', 'web-early')).find((e) => e.action === 'Evict'));
    expect(evicted.reportingInstance).toBe(leaders[0]);
    expect(evicted.message).toMatch(/^evicted by the reaper: IP \S+ is also held by default\/web-early-cilium/);

    // The node got its own Event for this removal, naming the pod.
    const nodeEvent = await waitFor('an Evict Event on the node', async () =>
      (await events('default', NODES[0]!)).find((e) => e.involvedObject.kind === 'Node' && e.action === 'Evict' && e.related?.name === 'web-early'),
    );
    expect(nodeEvent.message).toMatch(/^pod default\/web-early: evicted by the reaper/);
    expect(nodeEvent.reportingInstance).toBe(leaders[0]);

    // Exactly one eviction, with the uid precondition, and no delete — checked only after BOTH
    // replicas have evaluated the cluster twice more since the eviction: each of those passes was
    // a chance for a second actor (the follower, or the leader again) to evict it.
    const follower = [...services.keys()].find((id) => id !== leaders[0])!;
    const evaluations = (id: string) => metricValue(id, 'cmg_reaper_evaluations_total');
    const base = { leader: await evaluations(leaders[0]!), follower: await evaluations(follower) };
    await waitFor('two more evaluations on each replica', async () =>
      (await evaluations(leaders[0]!)) >= base.leader + 2 && (await evaluations(follower)) >= base.follower + 2 ? true : undefined,
    );
    expect(services.get(follower)!.isLeader()).toBe(false);
    const writes = audit('web-early');
    expect(writes.map((e) => [e.verb, e.objectRef?.subresource, e.responseStatus?.code])).toEqual([['create', 'eviction', 201]]);
    expect(writes[0]!.requestObject?.deleteOptions?.preconditions?.uid).toBe(race1.victims[0]!.metadata.uid);

    // The Cilium-managed pod with the same IP, and the owner-less early pod: untouched.
    const managed = await getPod('default', 'web-early-cilium');
    expect(managed?.metadata.uid).toBe(race1.managed[0]!.metadata.uid);
    expect(managed?.metadata.deletionTimestamp).toBeUndefined();
    expect(audit('web-early-cilium')).toEqual([]);
    expect((await getPod('default', 'debug-early'))?.metadata.deletionTimestamp).toBeUndefined();
    expect(audit('debug-early')).toEqual([]);

    const lease = JSON.parse((await plane().api('GET', `/apis/coordination.k8s.io/v1/namespaces/${LEASE.namespace}/leases/${LEASE.name}`)).body) as {
      spec: { holderIdentity?: string; leaseDurationSeconds?: number };
    };
    expect(lease.spec).toMatchObject({ holderIdentity: leaders[0], leaseDurationSeconds: 15 });
    const metrics = await (await fetch(`${services.get(leaders[0]!)!.probe.url}/metrics`)).text();
    expect(metrics).toContain('cmg_reaper_removals_total{action="evict",result="removed",reason="DuplicatePodIP"} 1');
    expect(metrics).toContain('cmg_reaper_leader 1');
  });

  it('hands over on shutdown: the leader releases the Lease, the other replica takes over and acts', async () => {
    const leader = [...services.entries()].find(([, s]) => s.isLeader())![0];
    const follower = [...services.keys()].find((id) => id !== leader)!;
    const stoppedAt = Date.now();
    await stopReplica(leader);
    await waitFor(`${follower} leading`, async () => (services.get(follower)!.isLeader() ? true : undefined));
    // Released, so no wait for expiry: the follower's next retry (every 2 s) takes it. Taking it
    // over by expiry instead would need the full lease duration (15 s) from the last renewal.
    expect(Date.now() - stoppedAt).toBeLessThan(15_000);

    const race2 = await race(NODES[1]!, [{ name: 'api-early', owned: true }]);
    const evicted = await waitFor('an Evict Event on api-early', async () => (await events('default', 'api-early')).find((e) => e.action === 'Evict'));
    expect(evicted.reportingInstance).toBe(follower);
    expect(audit('api-early').map((e) => e.requestObject?.deleteOptions?.preconditions?.uid)).toEqual([race2.victims[0]!.metadata.uid]);
    await stopReplica(follower);
  });

  it('delete action, removeUnowned: deletes with uid and resourceVersion preconditions', async () => {
    await startReplica('deleter', { config: parseConfig({ reaper: { ...REAPER, action: 'delete', removeUnowned: true } }) });
    const race3 = await race(NODES[2]!, [{ name: 'job-early', owned: false }]);
    await waitFor('job-early deleted', async () => ((await events('default', 'job-early')).some((e) => e.action === 'Delete') ? true : undefined));
    const deletes = audit('job-early');
    expect(deletes.map((e) => [e.verb, e.responseStatus?.code])).toEqual([['delete', 200]]);
    expect(deletes[0]!.requestObject?.preconditions).toMatchObject({ uid: race3.victims[0]!.metadata.uid });
    expect(deletes[0]!.requestObject?.preconditions?.resourceVersion).toMatch(/^\d+$/);
    // The owner-less early pod of the first race goes too, now that the option says so.
    await waitFor('debug-early deleted', async () => (audit('debug-early').length === 1 ? true : undefined));
    expect((await getPod('default', 'job-early-cilium'))?.metadata.deletionTimestamp).toBeUndefined();
    await stopReplica('deleter');
    expect(logs.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
  });

  it('a PodDisruptionBudget refuses the eviction: the pod stays, EvictBlocked is recorded and counted', async () => {
    // No kube-controller-manager here: the PDB's status is never computed (observedGeneration 0 <
    // generation 1), and kube-apiserver refuses every eviction of a pod it selects with 429 and a
    // DisruptionBudget cause ("still being processed") — the same answer as disruptionsAllowed 0.
    await apply({
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'guarded', namespace: 'default' },
      spec: { minAvailable: 1, selector: { matchLabels: { app: 'guarded' } } },
    });
    await startReplica('pdb', { config: parseConfig({ reaper: REAPER }) });
    const race4 = await race(NODES[3]!, [{ name: 'guarded-early', owned: true, labels: { app: 'guarded' } }]);
    const blocked = await waitFor('an EvictBlocked Event on guarded-early', async () => (await events('default', 'guarded-early')).find((e) => e.action === 'EvictBlocked'));
    expect(blocked.message).toMatch(/^eviction refused by a PodDisruptionBudget, will retry: IP \S+ is also held by .*default\/guarded-early-cilium/);
    const refused = audit('guarded-early');
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused.map((e) => [e.verb, e.objectRef?.subresource, e.responseStatus?.code])).toEqual(refused.map(() => ['create', 'eviction', 429]));
    expect(await metricValue('pdb', 'cmg_reaper_removals_total{action="evict",result="blocked",reason="DuplicatePodIP"}')).toBeGreaterThanOrEqual(1);
    expect(await metricValue('pdb', 'cmg_reaper_removals_total{action="evict",result="removed",reason="DuplicatePodIP"}')).toBe(0);
    const pod = await getPod('default', 'guarded-early');
    expect(pod?.metadata.uid).toBe(race4.victims[0]!.metadata.uid);
    expect(pod?.metadata.deletionTimestamp).toBeUndefined();
    await stopReplica('pdb');
  });

  it('the `reaper` command: probes on its port, and SIGTERM releases the Lease and exits 0', async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const lines: Array<Record<string, unknown>> = [];
    const proc = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', 'reaper', `--kubeconfig=${plane().kubeconfigPath}`, `--lease-namespace=${LEASE.namespace}`,
        `--lease-name=${LEASE.name}`, '--identity=cli-replica', '--metrics-port=0', '--dry-run'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: '' } },
    );
    cli = proc;
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      for (const line of d.split('\n').filter(Boolean)) {
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          process.stderr.write(`[cli] ${line}\n`);
        }
      }
    });
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => process.stderr.write(`[cli] ${d}`));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));

    const url = await waitFor('the reaper started line', async () => lines.find((l) => l.msg === 'reaper started')?.probe as string | undefined);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    await waitFor('/readyz 200', async () => ((await fetch(`${url}/readyz`)).status === 200 ? true : undefined));
    await waitFor('cli-replica leading', async () => (lines.some((l) => String(l.msg).startsWith('became the leader')) ? true : undefined));
    expect(await (await fetch(`${url}/metrics`)).text()).toContain('cmg_reaper_leader 1');

    proc.kill('SIGTERM');
    expect(await Promise.race([exited, sleep(20_000).then(() => 'timeout')])).toBe(0);
    const lease = JSON.parse((await plane().api('GET', `/apis/coordination.k8s.io/v1/namespaces/${LEASE.namespace}/leases/${LEASE.name}`)).body) as {
      spec: { holderIdentity?: string };
    };
    expect(lease.spec.holderIdentity).toBeUndefined();
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['released the lease', 'cluster view stopped', 'reaper stopped']));
  });
});
