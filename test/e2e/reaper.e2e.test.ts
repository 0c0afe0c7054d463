// The reaper against a real kube-apiserver (test/harness/controlplane.ts), with the GKE race
// reproduced the way it happens: workload pods of a Deployment run on a node (kwok gives them IPs,
// as the image's default CNI would); the node is then migrated (labelled cni=cilium), so the
// DaemonSet controller starts Cilium's agent there and it turns Ready AFTER those pods started;
// then a pod that starts once Cilium is ready gets the same IP from "Cilium" (status subresource,
// as the kubelet would report it) and its CiliumEndpoint, and the early pod gets none.
// kube-controller-manager does the rest as in a real cluster: the evicted early pod is replaced by
// its ReplicaSet, and evictions are checked against the status the disruption controller computed.
//
// Replicas run in-process (startReaperService), each with its own informers, Lease client and
// probe port. Who removed what is read from the API server's audit log and from Events.
// Waits are polls bounded at 30 s. Runs on the shared control plane (test/harness/shared.ts): no
// webhook here, its own nodes, and it deletes its nodes and its Cilium DaemonSet when done.

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { kubeconfigAccess, type KubeAccess } from '../../src/cluster/kube-config.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReport } from '../../src/commands/report.js';
import { parseConfig, type Config } from '../../src/config.js';
import { startReaperService, type ReaperService } from '../../src/reaper/service.js';
import { POD_CIDR, waitFor as harnessWaitFor, type ControlPlane } from '../harness/controlplane.js';
import { auditEvents, type AuditEvent } from '../harness/audit.js';
import { ciliumManages } from '../harness/cilium.js';
import { sharedControlPlane } from '../harness/shared.js';
import { applyDaemonSetFixture, podsOwnedBy } from '../harness/workloads.js';

const CRDS = ['ciliumnodes', 'ciliumendpoints'].map((name) => fileURLToPath(new URL(`./crds/${name}.yaml`, import.meta.url)));
/** Not migrated yet: race() migrates each one. */
const NODES = ['node-race-1', 'node-race-2', 'node-race-3', 'node-race-4'];
/** Migrated from the start, Cilium's agent runs there but has not registered its CiliumNode: not ready. */
const PENDING = 'node-race-pending';
const LEASE = { namespace: 'cilium-migration-guard', name: 'reaper-e2e' };
const within = { timeout: 30_000, interval: 200 };
const REAPER = { gracePeriodSeconds: 1, resyncSeconds: 5, debounceMs: 200 };

interface PodJson {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
    ownerReferences?: Array<{ kind: string; name: string; uid: string }>;
  };
  spec?: { nodeName?: string };
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('reaper against kube-apiserver + kwok', () => {
  let cp: ControlPlane | undefined;
  let kc: KubeAccess;
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
    return auditEvents(plane())
      .filter((e) => e.objectRef?.resource === 'pods' && e.objectRef.name === name && !/kwok/i.test(e.userAgent ?? ''))
      .filter((e) => (e.verb === 'create' && e.objectRef?.subresource === 'eviction') || (e.verb === 'delete' && !e.objectRef?.subresource));
  }

  /** The harness's bounded poll, with this file's bounds. */
  const waitFor = <T>(what: string, fn: () => Promise<T | undefined>): Promise<T> =>
    harnessWaitFor(what, fn, { timeoutMs: within.timeout, intervalMs: within.interval });

  const running = (pod: PodJson | undefined) =>
    pod?.status?.podIP && pod.status.startTime && pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? pod : undefined;

  /** The one live pod of Deployment `name` (through its ReplicaSet), once Running with an IP; not `except`. */
  async function deploymentPod(name: string, except: string[] = []): Promise<PodJson> {
    return waitFor(`a running pod of Deployment ${name}`, async () => {
      const sets = JSON.parse((await plane().api('GET', `/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3D${name}`)).body) as {
        items: PodJson[];
      };
      for (const rs of sets.items) {
        const pods = (await podsOwnedBy(plane(), 'default', 'ReplicaSet', rs.metadata.name)).filter((p) => !p.terminating && !except.includes(p.uid));
        for (const p of pods) {
          const pod = running(await getPod('default', p.name));
          if (pod) return pod;
        }
      }
      return undefined;
    });
  }

  /** A Deployment of one pod on `node` (kube-scheduler binds it there), labelled app=<name>. */
  async function deploy(name: string, node: string, replicas = 1) {
    await apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: 'default' },
      spec: {
        replicas,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { nodeSelector: { 'kubernetes.io/hostname': node }, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
        },
      },
    });
  }

  /**
   * A pod someone ran by hand (`kubectl run`): no controller owns it, which is what the tests of
   * owner-less pods are about. Placed on `node` by kube-scheduler.
   */
  async function runBarePod(name: string, node: string) {
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default', labels: { app: name } },
      spec: { nodeSelector: { 'kubernetes.io/hostname': node }, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
    });
    return waitFor(`pod default/${name} running`, async () => running(await getPod('default', name)));
  }

  /** The Cilium agent writes a CiliumEndpoint for every pod it manages, with the pod's IP. */
  let endpointIds = 1000;

  /**
   * The race on `node`: the `early` workloads' pods start first (a Deployment each, or a bare pod);
   * then the node is migrated and Cilium's agent (DaemonSet) turns Ready there; then, per early
   * pod, a pod of Deployment "<early>-after" starts, gets the early pod's IP and a CiliumEndpoint.
   */
  async function race(node: string, early: Array<{ name: string; bare?: boolean }>) {
    const victims: PodJson[] = [];
    for (const e of early) {
      if (e.bare) victims.push(await runBarePod(e.name, node));
      else {
        await deploy(e.name, node);
        victims.push(await deploymentPod(e.name));
      }
    }
    // Timestamps have second precision: make "started before Cilium was ready" unambiguous.
    const lastStart = Math.max(...victims.map((v) => Date.parse(v.status!.startTime!)));
    await sleep(Math.max(0, lastStart + 1_100 - Date.now()));
    await plane().kubectl(['label', 'node', node, 'cni=cilium']);
    const agent = await waitFor(`the Cilium agent (DaemonSet) Ready on ${node}`, async () => {
      const pods = (await podsOwnedBy(plane(), 'kube-system', 'DaemonSet', 'cilium')).filter((p) => p.node === node && !p.terminating);
      return pods[0] ? running(await getPod('kube-system', pods[0].name)) : undefined;
    });
    // What the agent writes when it starts (kwok runs no agent).
    await apply({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: node }, spec: { ipam: { podCIDRs: [POD_CIDR] } } });
    const readySince = agent.status!.conditions!.find((c) => c.type === 'Ready')!.lastTransitionTime!;
    expect(Date.parse(readySince)).toBeGreaterThan(lastStart);
    const managed: PodJson[] = [];
    for (const victim of victims) {
      const ip = victim.status!.podIP!;
      const name = `${victim.metadata.labels?.app ?? victim.metadata.name}-after`;
      await deploy(name, node);
      const pod = await deploymentPod(name);
      // kwok stands in for the CNI and gave it an IP of its own; Cilium's IPAM handed it the early
      // pod's IP, which is what the kubelet would report.
      await ciliumManages(plane(), pod.metadata, ip, endpointIds++);
      const patched = (await getPod('default', pod.metadata.name))!;
      managed.push(patched);
    }
    return { victims, managed, readySince, agent };
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
    cp = await sharedControlPlane({ log: (l) => process.stderr.write(`[controlplane] ${l}\n`) });
    await cp.addNodes([...NODES.map((name) => ({ name })), { name: PENDING, labels: { cni: 'cilium' } }]);
    for (const crd of CRDS) await cp.kubectl(['apply', '-f', crd]);
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/ciliumnodes.cilium.io', 'crd/ciliumendpoints.cilium.io']);
    await cp.createNamespace(LEASE.namespace);
    // Cilium's agent DaemonSet, with the node affinity the webhook gives it (cni In [cilium];
    // webhook.e2e.test.ts proves the webhook writes exactly this). No webhook runs in this file:
    // the race is pods that got onto a node before Cilium was ready there.
    await applyDaemonSetFixture(cp, 'cilium', {
      edit: (ds) => {
        ds.spec.template.spec.affinity = {
          ...ds.spec.template.spec.affinity,
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'cni', operator: 'In', values: ['cilium'] }] }] },
          },
        };
      },
    });
    kc = kubeconfigAccess([cp.kubeconfigPath], { explicit: true });
  }, 40 * 60_000);

  afterAll(async () => {
    if (cli && cli.exitCode === null) cli.kill('SIGKILL');
    for (const service of services.values()) await service.stop().catch((err: unknown) => process.stderr.write(`stopping a replica: ${String(err)}\n`));
    // Leave nothing cluster-wide behind on the shared control plane.
    await cp?.kubectl(['delete', 'daemonset', 'cilium', '-n', 'kube-system', '--ignore-not-found', '--wait=false'], { allowFail: true });
    await cp?.kubectl(['delete', 'node', ...NODES, PENDING, '--ignore-not-found', '--wait=false'], { allowFail: true });
    await cp?.stop();
  }, 60_000);

  let race1: Awaited<ReturnType<typeof race>>;
  /** race1's early pod of Deployment web, and the pod Cilium manages with the same IP. */
  let webEarly: PodJson;
  let webAfter: PodJson;

  it('reproduces the race, and `report` against the cluster shows it', async () => {
    race1 = await race(NODES[0]!, [{ name: 'web' }, { name: 'debug-early', bare: true }]);
    [webEarly, webAfter] = [race1.victims[0]!, race1.managed[0]!];
    expect(webEarly.metadata.ownerReferences?.[0]?.kind).toBe('ReplicaSet');
    await sleep(1_100); // past the 1 s grace period
    const configFile = join(plane().dir, 'reaper-config.yaml');
    writeFileSync(configFile, 'reaper:\n  gracePeriodSeconds: 1\n');
    const { report } = await runReport(['--kubeconfig', plane().kubeconfigPath, '--config', configFile, '-o', 'json', '--log-level', 'silent']);
    const node = report.nodes.find((n) => n.node === NODES[0])!;
    expect(node).toMatchObject({ ciliumReady: true, agentPod: `kube-system/${race1.agent.metadata.name}`, readySince: race1.readySince });
    expect(node.pods.map((p) => [p.name, p.verdict, p.reason])).toEqual([
      ['debug-early', 'report-only', 'DuplicatePodIP'],
      [webEarly.metadata.name, 'remove', 'DuplicatePodIP'],
    ]);
    const web = node.pods.find((p) => p.name === webEarly.metadata.name)!;
    expect(web.evidence).toMatchObject({
      ip: webEarly.status!.podIP,
      ciliumEndpoint: { found: false },
      sharedWith: [{ namespace: 'default', name: webAfter.metadata.name, node: NODES[0], managedByCilium: true }],
      controller: { kind: 'ReplicaSet', name: webEarly.metadata.ownerReferences![0]!.name },
    });
    // A migrated node whose agent runs but has not registered its CiliumNode: not ready, and said why.
    expect(report.nodes.find((n) => n.node === PENDING)).toMatchObject({ ciliumReady: false });
  });

  it('dry-run: records the findings as Events, removes nothing', async () => {
    await startReplica('dry-run', { dryRun: true, config: parseConfig({ reaper: REAPER }) });
    const dry = await waitFor('a DryRun Event on the early web pod', async () =>
      (await events('default', webEarly.metadata.name)).find((e) => e.action === 'DryRun'),
    );
    expect(dry).toMatchObject({
      type: 'Warning',
      reason: 'DuplicatePodIP',
      reportingInstance: 'dry-run',
      involvedObject: { kind: 'Pod', uid: webEarly.metadata.uid },
    });
    expect(dry.message).toContain(`IP ${webEarly.status!.podIP} also held by default/${webAfter.metadata.name}`);
    expect(dry.message).toContain('no CiliumEndpoint');
    await waitFor('a Report Event on debug-early', async () => (await events('default', 'debug-early')).find((e) => e.action === 'Report'));
    await waitFor('a DryRun Event on the node', async () =>
      (await events('default', NODES[0]!)).find((e) => e.action === 'DryRun' && e.involvedObject.kind === 'Node'),
    );
    await stopReplica('dry-run');
    expect((await getPod('default', webEarly.metadata.name))?.metadata.deletionTimestamp).toBeUndefined();
    expect(audit(webEarly.metadata.name)).toEqual([]);
  });

  it('two replicas: only the leader acts; the early pod is evicted once, the Cilium pod is untouched', async () => {
    const config = parseConfig({ reaper: REAPER });
    await Promise.all([startReplica('replica-a', { leaderElect: true, config }), startReplica('replica-b', { leaderElect: true, config })]);
    await waitFor('the early web pod removed', async () => {
      const pod = await getPod('default', webEarly.metadata.name);
      return !pod || pod.metadata.deletionTimestamp ? true : undefined;
    });
    const leaders = [...services.entries()].filter(([, s]) => s.isLeader()).map(([id]) => id);
    expect(leaders).toHaveLength(1);
    const evicted = await waitFor('an Evict Event on the early web pod', async () =>
      (await events('default', webEarly.metadata.name)).find((e) => e.action === 'Evict'),
    );
    expect(evicted.reportingInstance).toBe(leaders[0]);
    expect(evicted.message).toMatch(new RegExp(`^evicted by the reaper: IP \\S+ is also held by default/${webAfter.metadata.name}`));

    // The node got its own Event for this removal, naming the pod.
    const nodeEvent = await waitFor('an Evict Event on the node', async () =>
      (await events('default', NODES[0]!)).find((e) => e.involvedObject.kind === 'Node' && e.action === 'Evict' && e.related?.name === webEarly.metadata.name),
    );
    expect(nodeEvent.message).toMatch(new RegExp(`^pod default/${webEarly.metadata.name}: evicted by the reaper`));
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
    const writes = audit(webEarly.metadata.name);
    expect(writes.map((e) => [e.verb, e.objectRef?.subresource, e.responseStatus?.code])).toEqual([['create', 'eviction', 201]]);
    expect(writes[0]!.requestObject?.deleteOptions?.preconditions?.uid).toBe(webEarly.metadata.uid);

    // The Cilium-managed pod with the same IP, and the owner-less early pod: untouched.
    const managed = await getPod('default', webAfter.metadata.name);
    expect(managed?.metadata.uid).toBe(webAfter.metadata.uid);
    expect(managed?.metadata.deletionTimestamp).toBeUndefined();
    expect(audit(webAfter.metadata.name)).toEqual([]);
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

  it('the ReplicaSet replaces the evicted pod on the same node, and the reaper keeps the new pod', async () => {
    const leader = [...services.entries()].find(([, s]) => s.isLeader())![0];
    const replacement = await deploymentPod('web', [webEarly.metadata.uid]);
    expect(replacement.spec?.nodeName).toBe(NODES[0]);
    expect(replacement.metadata.ownerReferences?.[0]?.name).toBe(webEarly.metadata.ownerReferences![0]!.name);
    // Started after Cilium was ready: Cilium gives it its IP and writes its CiliumEndpoint.
    expect(Date.parse(replacement.status!.startTime!)).toBeGreaterThan(Date.parse(race1.readySince));
    await ciliumManages(plane(), replacement.metadata, replacement.status!.podIP!, endpointIds++);
    const base = await metricValue(leader, 'cmg_reaper_evaluations_total');
    await waitFor('two more evaluations on the leader', async () =>
      (await metricValue(leader, 'cmg_reaper_evaluations_total')) >= base + 2 ? true : undefined,
    );
    const now = await getPod('default', replacement.metadata.name);
    expect(now?.metadata.uid).toBe(replacement.metadata.uid);
    expect(now?.metadata.deletionTimestamp).toBeUndefined();
    expect(audit(replacement.metadata.name)).toEqual([]);
    expect(await metricValue(leader, 'cmg_reaper_removals_total{action="evict",result="removed",reason="DuplicatePodIP"}')).toBe(1);
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

    const race2 = await race(NODES[1]!, [{ name: 'api' }]);
    const early = race2.victims[0]!;
    const evicted = await waitFor('an Evict Event on the early api pod', async () =>
      (await events('default', early.metadata.name)).find((e) => e.action === 'Evict'),
    );
    expect(evicted.reportingInstance).toBe(follower);
    expect(audit(early.metadata.name).map((e) => e.requestObject?.deleteOptions?.preconditions?.uid)).toEqual([early.metadata.uid]);
    await stopReplica(follower);
  });

  it('delete action, removeUnowned: deletes with uid and resourceVersion preconditions', async () => {
    await startReplica('deleter', { config: parseConfig({ reaper: { ...REAPER, action: 'delete', removeUnowned: true } }) });
    const race3 = await race(NODES[2]!, [{ name: 'job-early', bare: true }]);
    await waitFor('job-early deleted', async () => ((await events('default', 'job-early')).some((e) => e.action === 'Delete') ? true : undefined));
    const deletes = audit('job-early');
    expect(deletes.map((e) => [e.verb, e.responseStatus?.code])).toEqual([['delete', 200]]);
    expect(deletes[0]!.requestObject?.preconditions).toMatchObject({ uid: race3.victims[0]!.metadata.uid });
    expect(deletes[0]!.requestObject?.preconditions?.resourceVersion).toMatch(/^\d+$/);
    // The owner-less early pod of the first race goes too, now that the option says so.
    await waitFor('debug-early deleted', async () => (audit('debug-early').length === 1 ? true : undefined));
    expect((await getPod('default', race3.managed[0]!.metadata.name))?.metadata.deletionTimestamp).toBeUndefined();
    await stopReplica('deleter');
    expect(logs.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
  });

  it('eviction follows the PodDisruptionBudget status the disruption controller computed: refused at 0 allowed, done once scaling allows one', async () => {
    await apply({
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'guarded', namespace: 'default' },
      spec: { minAvailable: 1, selector: { matchLabels: { app: 'guarded' } } },
    });
    await startReplica('pdb', { config: parseConfig({ reaper: REAPER }) });
    const race4 = await race(NODES[3]!, [{ name: 'guarded' }]);
    const early = race4.victims[0]!;
    const pdbStatus = async () =>
      JSON.parse((await plane().api('GET', '/apis/policy/v1/namespaces/default/poddisruptionbudgets/guarded')).body) as {
        metadata: { generation: number };
        status?: { observedGeneration?: number; currentHealthy?: number; desiredHealthy?: number; disruptionsAllowed?: number; expectedPods?: number };
      };
    const computed = await waitFor('the disruption controller to count the one healthy pod', async () => {
      const pdb = await pdbStatus();
      return pdb.status?.observedGeneration === pdb.metadata.generation && pdb.status.currentHealthy === 1 ? pdb.status : undefined;
    });
    expect(computed).toMatchObject({ currentHealthy: 1, desiredHealthy: 1, disruptionsAllowed: 0, expectedPods: 1 });

    const blocked = await waitFor('an EvictBlocked Event on the early guarded pod', async () =>
      (await events('default', early.metadata.name)).find((e) => e.action === 'EvictBlocked'),
    );
    // Which other pods hold the IP varies: kwok hands the IPs of pods removed by earlier tests to new
    // pods (as a CNI reuses freed IPs), and "Cilium-managed" pods above still hold copies of them.
    expect(blocked.message).toMatch(/^eviction refused by a PodDisruptionBudget, will retry: IP \S+ is also held by default\//);
    await waitFor('a refusal while the PDB allows no disruption', async () => (audit(early.metadata.name).length >= 1 ? true : undefined));
    const refused = audit(early.metadata.name);
    expect(refused.map((e) => [e.verb, e.objectRef?.subresource, e.responseStatus?.code])).toEqual(refused.map(() => ['create', 'eviction', 429]));
    expect(await metricValue('pdb', 'cmg_reaper_removals_total{action="evict",result="blocked",reason="DuplicatePodIP"}')).toBeGreaterThanOrEqual(1);
    expect(await metricValue('pdb', 'cmg_reaper_removals_total{action="evict",result="removed",reason="DuplicatePodIP"}')).toBe(0);
    expect((await getPod('default', early.metadata.name))?.metadata.deletionTimestamp).toBeUndefined();

    await stopReplica('pdb');

    // A second pod of the Deployment (started after Cilium, so kept): the disruption controller now
    // allows one disruption, and the reaper evicts the early pod. A fresh replica acts at once (the
    // stopped one would have retried 60 s after the refusal, src/reaper/actuator.ts).
    await plane().kubectl(['scale', 'deployment', 'guarded', '--replicas=2']);
    const allowing = await waitFor('the PDB to allow one disruption', async () => {
      const status = (await pdbStatus()).status;
      return status?.disruptionsAllowed === 1 ? status : undefined;
    });
    expect(allowing).toMatchObject({ currentHealthy: 2, desiredHealthy: 1, expectedPods: 2 });
    await startReplica('pdb-2', { config: parseConfig({ reaper: REAPER }) });
    await waitFor('an Evict Event on the early guarded pod', async () => (await events('default', early.metadata.name)).find((e) => e.action === 'Evict'));
    const attempts = audit(early.metadata.name).map((e) => e.responseStatus?.code);
    expect(attempts.at(-1)).toBe(201);
    expect(attempts.slice(0, -1).length).toBeGreaterThanOrEqual(1);
    expect(new Set(attempts.slice(0, -1))).toEqual(new Set([429]));
    expect(await metricValue('pdb-2', 'cmg_reaper_removals_total{action="evict",result="removed",reason="DuplicatePodIP"}')).toBe(1);
    // The eviction used up the one allowed disruption, until the ReplicaSet's replacement is Ready.
    await stopReplica('pdb-2');
  });

  it('the `reaper` command: probes on its port, and SIGTERM releases the Lease and exits 0', async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const lines: Array<Record<string, unknown>> = [];
    const proc = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli.ts',
        'reaper',
        `--kubeconfig=${plane().kubeconfigPath}`,
        `--lease-namespace=${LEASE.namespace}`,
        `--lease-name=${LEASE.name}`,
        '--identity=cli-replica',
        '--metrics-port=0',
        '--dry-run',
      ],
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
