// "Cilium is ready on node N" and the reaper's proof, on a real kube-apiserver with kwok nodes.
// Every signal is written through the API the way its real writer does (test/fixtures/SOURCES.md,
// section 3): the startup taint by a node pool and removed by cilium-operator's JSON patch; the boot
// ID through nodes/status as the kubelet does (after kwok's initialize stage, which then leaves it
// alone); the migration label with `kubectl label` (its time read back from managedFields); pod
// conditions through pods/status as the kubelet does; the CiliumIsUp condition through nodes/status
// as cilium-operator does; CiliumNode IPAM owners through ciliumnodes/status; cilium-config as a
// ConfigMap in Cilium's namespace.
//
// One control plane for the file. The webhook (the real CLI) answers the placement checks with a
// server-side dry run; the reaper runs in-process (startReaperService) so its own view — with its
// memory of reboots — can be read directly, and `report` runs as a separate fresh view.

import { Writable } from 'node:stream';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kubeconfigAccess, type KubeAccess } from '../../src/cluster/kube-config.js';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReport } from '../../src/commands/report.js';
import { MISORDER_WINDOW_MS } from '../../src/cluster/history.js';
import { parseConfig } from '../../src/config.js';
import { CONFIGURATION_NAME } from '../../src/registration.js';
import { detect } from '../../src/reaper/detect.js';
import { startReaperService, type ReaperService } from '../../src/reaper/service.js';
import { CONTROLLERS, POD_CIDR, sleep, startControlPlane, waitFor, type ControlPlane } from '../harness/controlplane.js';
import { ciliumManages } from '../harness/cilium.js';
import { installCiliumCrds, startGuard, type Guard } from '../harness/guard.js';

const TAINTED = 'rd-taint';
const REBOOTED = 'rd-reboot';
const SWITCHED = 'rd-switch';
const UPGRADED = 'rp-upgrade';
const REBOOTED_2 = 'rp-reboot';
const RESTORED = 'rp-restored';
const NO_CEPS = 'rp-no-ceps';
const SEPARATE = 'rp-separate';
const SHARED = 'rp-shared';
const TAINT = 'node.cilium.io/agent-not-ready';
const within = { timeoutMs: 30_000, intervalMs: 250 };

let cp: ControlPlane;
let guard: Guard | undefined;
let kc: KubeAccess;
const services: ReaperService[] = [];
const logs: Array<Record<string, unknown>> = [];

interface PodJson {
  metadata: { name: string; namespace: string; uid: string; creationTimestamp: string; deletionTimestamp?: string };
  status?: { podIP?: string; startTime?: string; conditions?: Array<{ type: string; status: string; lastTransitionTime?: string }> };
}

const kubectl = (args: string[], input?: string) => cp.kubectl(args, { ...(input !== undefined ? { input } : {}) });
const apply = (obj: unknown) => kubectl(['apply', '-f', '-'], stringify(obj));
const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

async function getPod(namespace: string, name: string): Promise<PodJson | undefined> {
  const r = await cp.api('GET', `/api/v1/namespaces/${namespace}/pods/${name}`);
  if (r.status === 404) return undefined;
  if (r.status !== 200) throw new Error(`GET pod ${namespace}/${name}: HTTP ${r.status} ${r.body}`);
  return JSON.parse(r.body) as PodJson;
}

async function getNode(name: string): Promise<any> {
  return JSON.parse((await cp.api('GET', `/api/v1/nodes/${name}`)).body);
}

/** A pod bound to `node` (no scheduler), Running with an IP from kwok (pod-ready stage). */
async function runPod(name: string, node: string, opts: { namespace?: string; labels?: Record<string, string>; hostNetwork?: boolean; owned?: boolean } = {}) {
  const namespace = opts.namespace ?? 'default';
  await apply({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      labels: opts.labels ?? { app: 'web' },
      ...(opts.owned
        ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web', uid: '6d1c3b8e-0000-4000-8000-000000000001', controller: true }] }
        : {}),
    },
    spec: {
      nodeName: node,
      ...(opts.hostNetwork ? { hostNetwork: true } : {}),
      tolerations: [{ operator: 'Exists' }],
      containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }],
    },
  });
  return waitFor(
    `pod ${namespace}/${name} running`,
    async () => {
      const pod = await getPod(namespace, name);
      return pod?.status?.podIP && pod.status.startTime && pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? pod : undefined;
    },
    within,
  );
}

/** A Cilium agent pod as the DaemonSet controller creates it (with the chart's `config` init container). */
async function runAgent(node: string, name = `cilium-${node}`) {
  await apply({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'kube-system', labels: { 'k8s-app': 'cilium', 'app.kubernetes.io/part-of': 'cilium' } },
    spec: {
      nodeName: node,
      hostNetwork: true,
      tolerations: [{ operator: 'Exists' }],
      initContainers: [{ name: 'config', image: 'quay.io/cilium/cilium:v1.18.4', command: ['cilium-dbg', 'build-config'] }],
      containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium:v1.18.4' }],
    },
  });
  return waitFor(
    `agent ${name} Ready`,
    async () => {
      const pod = await getPod('kube-system', name);
      return pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? pod : undefined;
    },
    within,
  );
}

async function deletePod(namespace: string, name: string) {
  await kubectl(['delete', 'pod', '-n', namespace, name, '--grace-period=0', '--force', '--wait=false']);
  await waitFor(`pod ${namespace}/${name} gone`, async () => ((await getPod(namespace, name)) ? undefined : true), within);
}

const ciliumNode = (node: string, podCIDRs = [POD_CIDR]) => ({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNode',
  metadata: { name: node },
  spec: { ipam: { podCIDRs } },
});

/** What the kubelet writes into the agent pod's status when its Ready condition flips. */
async function setAgentReady(name: string, ready: boolean, at: number) {
  const t = rfc3339(at);
  const status = ready ? 'True' : 'False';
  await kubectl([
    'patch',
    'pod',
    name,
    '-n',
    'kube-system',
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({
      status: {
        conditions: [
          { type: 'Initialized', status: 'True', lastTransitionTime: t },
          { type: 'Ready', status, lastTransitionTime: t },
          { type: 'ContainersReady', status, lastTransitionTime: t },
        ],
      },
    }),
  ]);
}

/** The kubelet's node status sync reporting the machine's boot ID. */
async function setBootID(node: string, bootID: string) {
  await kubectl(['patch', 'node', node, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { nodeInfo: { bootID } } })]);
}

/** cilium-operator's setNodeNetworkUnavailableFalse: a strategic-merge PatchStatus with the condition. */
async function setCiliumIsUp(node: string, at: number) {
  const t = rfc3339(at);
  await kubectl([
    'patch',
    'node',
    node,
    '--subresource=status',
    '-p',
    JSON.stringify({
      status: {
        conditions: [
          {
            type: 'NetworkUnavailable',
            status: 'False',
            reason: 'CiliumIsUp',
            message: 'Cilium is running on this node',
            lastTransitionTime: t,
            lastHeartbeatTime: t,
          },
        ],
      },
    }),
  ]);
}

/** A pod that "Cilium" started with the same IP as `ip`, and its CiliumEndpoint. */
async function ciliumTwin(name: string, node: string, ip: string) {
  await runPod(name, node);
  await ciliumManages(cp, { name }, ip, 4000);
}

/** The placement webhook's answer for a pod created on `node`, without creating it (server-side dry run). */
async function placement(node: string): Promise<{ allowed: boolean; text: string }> {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'probe', namespace: 'default' },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'x' }] },
  };
  const r = await cp.kubectl(['create', '--dry-run=server', '-f', '-'], { input: stringify(pod), allowFail: true });
  return { allowed: r.code === 0, text: `${r.stdout}${r.stderr}` };
}

const waitPlacement = (what: string, node: string, want: (p: { allowed: boolean; text: string }) => boolean) =>
  waitFor(
    what,
    async () => {
      const p = await placement(node);
      return want(p) ? p : undefined;
    },
    within,
  );

function logger(identity: string) {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const line = JSON.parse(chunk.toString()) as Record<string, unknown>;
      logs.push({ ...line, replica: identity });
      done();
    },
  });
  return pino({ level: 'info', formatters: { level: (label) => ({ level: label }) } }, sink);
}

async function startReaper(identity: string, config: ReturnType<typeof parseConfig>, dryRun: boolean): Promise<ReaperService> {
  const service = await startReaperService({
    kc,
    config,
    log: logger(identity),
    identity,
    dryRun,
    probe: { host: '127.0.0.1', port: 0 },
    defaultMetrics: false,
  });
  services.push(service);
  await waitFor(`${identity} ready`, async () => ((await fetch(`${service.probe.url}/readyz`)).status === 200 ? true : undefined), within);
  return service;
}

const REAPER = { gracePeriodSeconds: 1, resyncSeconds: 5, debounceMs: 200 };

beforeAll(async () => {
  const migrated = { cni: 'cilium' };
  cp = await startControlPlane({
    nodes: [
      { name: TAINTED, labels: migrated },
      { name: REBOOTED, labels: migrated },
      { name: SWITCHED }, // labelled during the test
      { name: UPGRADED, labels: migrated },
      { name: REBOOTED_2, labels: migrated },
      { name: RESTORED, labels: migrated },
      { name: NO_CEPS, labels: { cni: 'cilium-no-ceps' } },
      { name: SEPARATE, labels: { pool: 'separate' } },
      { name: SHARED, labels: { pool: 'shared' } },
    ],
    log: (line) => process.stderr.write(`[controlplane] ${line}\n`),
    // These tests are about exact start times: workload pods started before, during and after the
    // agent's readiness, and agent pods replaced the way a DaemonSet upgrade or a reboot would. No
    // controller can be told to start a pod at such a moment, so the tests write those pods
    // themselves, owned (ownerReferences) by a ReplicaSet or DaemonSet that does not exist — what
    // the reaper reads to know something would recreate a pod. The garbage collector would delete
    // them for their missing owner, so it is left out here; every other controller runs.
    controllers: CONTROLLERS.filter((c) => c !== 'garbage-collector-controller'),
  });
  await installCiliumCrds(cp);
  kc = kubeconfigAccess([cp.kubeconfigPath], { explicit: true });
  guard = await startGuard(cp);
  await guard.register();
}, 40 * 60_000);

afterAll(async () => {
  for (const s of services) await s.stop().catch((err: unknown) => process.stderr.write(`stopping a reaper: ${String(err)}\n`));
  await guard?.stop();
  await cp?.stop();
}, 60_000);

describe('"Cilium is ready on node N", through the webhook', () => {
  it("Cilium's startup taint: denied while the node carries it, naming it; admitted once cilium-operator removes it", async () => {
    await apply(ciliumNode(TAINTED));
    await runAgent(TAINTED);
    await waitPlacement('admitted on a ready node', TAINTED, (p) => p.allowed);

    // A node pool's taint (Cilium's docs: NoExecute).
    await kubectl(['taint', 'nodes', TAINTED, `${TAINT}=true:NoExecute`]);
    const denied = await waitPlacement('denied while tainted', TAINTED, (p) => !p.allowed);
    expect(denied.text).toContain(
      `cannot be placed on node ${TAINTED} yet: the node is labelled cni=cilium but Cilium is not ready there (the node still has Cilium's startup taint ${TAINT} (cilium-operator removes it once the agent is Ready))`,
    );

    // cilium-operator's removeNodeTaint: JSON patch, test + replace of /spec/taints.
    const taints = (await getNode(TAINTED)).spec.taints;
    await kubectl([
      'patch',
      'node',
      TAINTED,
      '--type=json',
      '-p',
      JSON.stringify([
        { op: 'test', path: '/spec/taints', value: taints },
        { op: 'replace', path: '/spec/taints', value: taints.filter((t: any) => t.key !== TAINT) },
      ]),
    ]);
    await waitPlacement('admitted once the taint is gone', TAINTED, (p) => p.allowed);
  });

  it('a reboot (new status.nodeInfo.bootID): denied, saying so, until the agent turns Ready again', async () => {
    await apply(ciliumNode(REBOOTED));
    await runAgent(REBOOTED);
    await setBootID(REBOOTED, 'boot-1');
    await waitPlacement('admitted before the reboot', REBOOTED, (p) => p.allowed);
    // kwok's stages leave a boot ID written after the node is Ready alone (SOURCES.md section 3).
    expect((await getNode(REBOOTED)).status.nodeInfo.bootID).toBe('boot-1');

    // The kubelet after the reboot: new boot ID first; the agent pod still shows its pre-reboot Ready.
    // (A Ready state seen less than MISORDER_WINDOW_MS before the change counts as post-reboot: wait past it, as a real reboot does.)
    await sleep(MISORDER_WINDOW_MS + 500);
    await setBootID(REBOOTED, 'boot-2');
    const denied = await waitPlacement('denied after the reboot', REBOOTED, (p) => !p.allowed);
    expect(denied.text).toContain(`the node rebooted (boot ID now boot-2) and Cilium agent pod kube-system/cilium-${REBOOTED} has not turned Ready since`);
    expect((await getNode(REBOOTED)).status.nodeInfo.bootID).toBe('boot-2');

    // The kubelet syncs the agent pod: not Ready (its containers died with the boot), then Ready again.
    await setAgentReady(`cilium-${REBOOTED}`, false, Date.now());
    const notReady = await waitPlacement('denied while the agent is not Ready', REBOOTED, (p) => p.text.includes('is not Ready'));
    expect(notReady.allowed).toBe(false);
    await sleep(1_100); // a new Ready lastTransitionTime (second precision)
    await setAgentReady(`cilium-${REBOOTED}`, true, Date.now());
    await waitPlacement('admitted once the agent is Ready after the boot', REBOOTED, (p) => p.allowed);
  });

  it('per-node CNI switch: an agent configured before the label is not ready, across a webhook restart; a restarted agent is', async () => {
    await apply(ciliumNode(SWITCHED));
    const before = await runAgent(SWITCHED, 'cilium-switch-old');
    await sleep(Math.max(0, Date.parse(before.metadata.creationTimestamp) + 1_100 - Date.now()));
    await kubectl(['label', 'node', SWITCHED, 'cni=cilium']);
    // The label's time, as the API records it: the managedFields entry of `kubectl label`.
    const node = await getNode(SWITCHED);
    const owner = node.metadata.managedFields.find((e: any) => e.fieldsV1?.['f:metadata']?.['f:labels']?.['f:cni']);
    expect(owner).toMatchObject({ manager: 'kubectl-label', operation: 'Update' });
    expect(Date.parse(owner.time)).toBeGreaterThan(Date.parse(before.metadata.creationTimestamp));

    const message = `Cilium agent pod kube-system/cilium-switch-old was configured before the node got the label cni=cilium at ${owner.time}`;
    expect((await waitPlacement('denied: agent predates the label', SWITCHED, (p) => !p.allowed)).text).toContain(message);

    // A new webhook process knows nothing from memory: the label's time comes from the API.
    await guard!.stop();
    guard = await startGuard(cp);
    await guard.register();
    const again = await placement(SWITCHED);
    expect(again.allowed).toBe(false);
    expect(again.text).toContain(message);
    expect(again.text).toContain('Cilium applies its per-node CNI config only when its agent pod restarts');

    // The migration guide: delete the node's agent pod; the DaemonSet creates a new one.
    await deletePod('kube-system', 'cilium-switch-old');
    await runAgent(SWITCHED, 'cilium-switch-new');
    await waitPlacement('admitted once the agent restarted after the label', SWITCHED, (p) => p.allowed);
  });

  it('(the webhook steps aside for the reaper tests, which need pods placed before Cilium is ready)', async () => {
    await kubectl(['delete', `validatingwebhookconfiguration/${CONFIGURATION_NAME}`, `mutatingwebhookconfiguration/${CONFIGURATION_NAME}`]);
    await guard!.stop();
    guard = undefined;
    await runPod('probe-after-unregister', REBOOTED);
  });
});

describe("the reaper's proof", () => {
  let dry: ReaperService;

  it('an agent upgrade does not make pods Cilium started look early (CiliumIsUp), in the running reaper and in a fresh `report`', async () => {
    await apply(ciliumNode(UPGRADED));
    const first = await runAgent(UPGRADED, 'cilium-up-1');
    const readyAt = Date.parse(first.status!.conditions!.find((c) => c.type === 'Ready')!.lastTransitionTime!);
    await setCiliumIsUp(UPGRADED, readyAt);
    await setBootID(UPGRADED, 'boot-1');
    await setBootID(REBOOTED_2, 'boot-1');
    dry = await startReaper('dry', parseConfig({ reaper: REAPER }), true);

    await sleep(1_100);
    const pod = await runPod('started-by-cilium', UPGRADED, { owned: true });
    await ciliumTwin('started-by-cilium-twin', UPGRADED, pod.status!.podIP!);
    // Upgrade: a new agent pod, Ready well after the pod started.
    await sleep(1_100);
    await deletePod('kube-system', 'cilium-up-1');
    const second = await runAgent(UPGRADED, 'cilium-up-2');
    expect(Date.parse(second.status!.conditions!.find((c) => c.type === 'Ready')!.lastTransitionTime!)).toBeGreaterThan(Date.parse(pod.status!.startTime!));

    const assessed = await waitFor(
      'the reaper to see the new agent Ready',
      async () => {
        // The agent pod's creation and its Ready status arrive as two watch events: wait for both.
        const n = detect(dry.view, parseConfig({ reaper: REAPER }), new Date()).nodes.find((x) => x.node === UPGRADED);
        return n?.readiness.agentPod === 'kube-system/cilium-up-2' && n.readiness.ready
          ? n.unmanaged.find((a) => a.pod.name === 'started-by-cilium')
          : undefined;
      },
      within,
    );
    expect(assessed).toMatchObject({
      verdict: 'keep',
      evidence: { ciliumReadySince: rfc3339(readyAt), ciliumReadySource: "cilium-operator's NetworkUnavailable=False/CiliumIsUp condition" },
    });
    expect(assessed.why).toContain('after Cilium became ready at');

    // A fresh process (as after a reaper restart): the condition is read from the API.
    const { report } = await runReport(['--kubeconfig', cp.kubeconfigPath, '-o', 'json', '--log-level', 'silent']);
    const node = report.nodes.find((n) => n.node === UPGRADED)!;
    expect(node).toMatchObject({ ciliumReady: true, agentPod: 'kube-system/cilium-up-2', ciliumSince: rfc3339(readyAt) });
    expect(node.pods.find((p) => p.name === 'started-by-cilium')?.verdict).toBe('keep');
  });

  it('a reboot moves it: a pod started after the reboot, before the agent was Ready again, is early', async () => {
    await apply(ciliumNode(REBOOTED_2));
    const agent = await runAgent(REBOOTED_2, 'cilium-rb');
    await setCiliumIsUp(REBOOTED_2, Date.parse(agent.status!.conditions!.find((c) => c.type === 'Ready')!.lastTransitionTime!));
    await waitFor(
      'the reaper to see Cilium ready',
      async () => (detect(dry.view, parseConfig({ reaper: REAPER }), new Date()).nodes.find((n) => n.node === REBOOTED_2)?.readiness.ready ? true : undefined),
      within,
    );

    await sleep(MISORDER_WINDOW_MS + 500);
    await setBootID(REBOOTED_2, 'boot-2');
    await waitFor('the reaper to see the reboot', async () => (dry.view.nodeMemory?.(REBOOTED_2)?.rebootSeenAt ? true : undefined), within);
    await setAgentReady('cilium-rb', false, Date.now());
    const early = await runPod('after-reboot', REBOOTED_2, { owned: true });
    await ciliumTwin('after-reboot-twin', REBOOTED_2, early.status!.podIP!);
    await sleep(1_100);
    const readyAgain = Date.now();
    await setAgentReady('cilium-rb', true, readyAgain);

    const assessed = await waitFor(
      'the early pod to be a victim',
      async () => {
        const n = detect(dry.view, parseConfig({ reaper: REAPER }), new Date()).nodes.find((x) => x.node === REBOOTED_2);
        const a = n?.unmanaged.find((x) => x.pod.name === 'after-reboot');
        return a?.verdict === 'remove' ? a : undefined;
      },
      within,
    );
    expect(assessed.evidence).toMatchObject({ ciliumReadySince: rfc3339(readyAgain), ciliumReadySource: 'the first agent Ready seen after the reboot' });
    // The dry-run reaper records it as it would act.
    const events = await waitFor(
      'a DryRun Event on the early pod',
      async () => {
        const r = JSON.parse((await cp.api('GET', '/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dafter-reboot')).body);
        return r.items.find((e: any) => e.action === 'DryRun');
      },
      within,
    );
    expect(events.reason).toBe('DuplicatePodIP');
  });

  it('IPAM owners "namespace/name [restored]" count as Cilium managing the pod', async () => {
    await apply(ciliumNode(RESTORED));
    await runAgent(RESTORED);
    await sleep(1_100);
    const pod = await runPod('restored', RESTORED, { owned: true });
    const ip = pod.status!.podIP!;
    await ciliumTwin('restored-twin', RESTORED, ip);
    const config = join(cp.dir, 'any-unmanaged.yaml');
    writeFileSync(config, 'reaper:\n  target: any-unmanaged\n  gracePeriodSeconds: 1\n');
    const unmanaged = async () =>
      (await runReport(['--kubeconfig', cp.kubeconfigPath, '--config', config, '-o', 'json', '--log-level', 'silent'])).report.nodes
        .find((n) => n.node === RESTORED)!
        .pods.map((p) => p.name);
    // No CiliumEndpoint and no IPAM owner: unmanaged.
    expect(await unmanaged()).toEqual(['restored']);
    // In crd/eni/azure IPAM the agent records each IP's owner; endpoints it restored after a restart get " [restored]".
    await kubectl([
      'patch',
      'ciliumnode',
      RESTORED,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { ipam: { used: { [ip]: { owner: 'default/restored [restored]', resource: 'default/restored' } } } } }),
    ]);
    expect(await unmanaged()).toEqual([]);
  });

  it('no CiliumEndpoints (disable-endpoint-crd in cilium-config): acts on nothing and says why in log, metrics, /readyz and report; acts once it is off', async () => {
    const config = parseConfig({ nodeLabel: 'cni=cilium-no-ceps', reaper: { ...REAPER, removeUnowned: true } });
    await apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cilium-config', namespace: 'kube-system' },
      data: { 'disable-endpoint-crd': 'true', ipam: 'cluster-pool' },
    });
    await apply(ciliumNode(NO_CEPS));
    const victim = await runPod('no-ceps-early', NO_CEPS, { owned: true });
    await sleep(1_100);
    await runAgent(NO_CEPS);
    await ciliumTwin('no-ceps-twin', NO_CEPS, victim.status!.podIP!);
    const acting = await startReaper('acting', config, false);

    const metric = async () => (await (await fetch(`${acting.probe.url}/metrics`)).text()).split('\n').find((l) => l.startsWith('cmg_reaper_inactive{'));
    await waitFor(
      'cmg_reaper_inactive 1',
      async () => ((await metric()) === 'cmg_reaper_inactive{reason="ciliumendpoints-disabled"} 1' ? true : undefined),
      within,
    );
    const readyz = await fetch(`${acting.probe.url}/readyz`);
    expect(readyz.status).toBe(200);
    expect(((await readyz.json()) as { detail: Record<string, unknown> }).detail.notActing).toContain(
      'disable-endpoint-crd: "true" in ConfigMap kube-system/cilium-config',
    );
    expect(
      logs.some(
        (l) =>
          l.replica === 'acting' && l.level === 'warn' && String(l.msg).startsWith('not removing anything: Cilium is configured not to create CiliumEndpoints'),
      ),
    ).toBe(true);
    const { text } = await runReport(['--kubeconfig', cp.kubeconfigPath, '--node-label', 'cni=cilium-no-ceps', '--log-level', 'silent']);
    expect(text).toContain('The reaper acts on nothing here: Cilium is configured not to create CiliumEndpoints');
    // Several passes later, the early pod is still there.
    const evaluations = async () => Number((await (await fetch(`${acting.probe.url}/metrics`)).text()).match(/^cmg_reaper_evaluations_total (\d+)/m)?.[1] ?? 0);
    const base = await evaluations();
    await waitFor('two more evaluations', async () => ((await evaluations()) >= base + 2 ? true : undefined), within);
    expect((await getPod('default', 'no-ceps-early'))?.metadata.deletionTimestamp).toBeUndefined();

    // Cilium writes CiliumEndpoints again: the reaper acts by itself.
    await kubectl([
      'patch',
      'configmap',
      'cilium-config',
      '-n',
      'kube-system',
      '--type=merge',
      '-p',
      JSON.stringify({ data: { 'disable-endpoint-crd': 'false' } }),
    ]);
    await waitFor(
      'the early pod removed',
      async () => {
        const pod = await getPod('default', 'no-ceps-early');
        return !pod || pod.metadata.deletionTimestamp ? true : undefined;
      },
      within,
    );
    expect(await metric()).toBe('cmg_reaper_inactive{reason="ciliumendpoints-disabled"} 0');
    expect((await getPod('default', 'no-ceps-twin'))?.metadata.deletionTimestamp).toBeUndefined();
  });

  it('separate-CIDR migrations: `report` says any-unmanaged fits; with a shared range, duplicate-ip', async () => {
    // Cilium's migration guide gives Cilium its own range; kwok hands out the "old CNI's" IPs from another.
    await apply(ciliumNode(SEPARATE, ['10.245.0.0/24']));
    await apply(ciliumNode(SHARED, [POD_CIDR]));
    const old = await runPod('separate-old-cni', SEPARATE);
    await runPod('shared-old-cni', SHARED);
    const separate = await runReport(['--kubeconfig', cp.kubeconfigPath, '--node-label', 'pool=separate', '-o', 'json', '--log-level', 'silent']);
    expect(separate.report.targetAdvice).toMatchObject({
      fits: 'any-unmanaged',
      configured: 'duplicate-ip',
      outside: 1,
      outsideExamples: [`default/separate-old-cni ${old.status!.podIP} on ${SEPARATE}`],
    });
    const table = await runReport(['--kubeconfig', cp.kubeconfigPath, '--node-label', 'pool=separate', '--log-level', 'silent']);
    expect(table.text).toContain('reaper.target: duplicate-ip; any-unmanaged fits this cluster — consider changing it');
    const shared = await runReport(['--kubeconfig', cp.kubeconfigPath, '--node-label', 'pool=shared', '-o', 'json', '--log-level', 'silent']);
    expect(shared.report.targetAdvice).toMatchObject({ fits: 'duplicate-ip', outside: 0 });
    expect(logs.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
  });
});
