// The readiness signals beyond "a Ready agent and a CiliumNode": Cilium's startup taint, reboots,
// the per-node CNI switch, and when Cilium FIRST became ready (the reaper's reference time).
// Objects are written the way the kubelet, cilium-operator and kubectl write them (see
// test/fixtures/SOURCES.md, "Readiness signals").

import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig, type Config } from '../../src/config.js';
import { decidePlacement } from '../../src/webhooks/pod-placement.js';
import { MAX_SIGHTINGS } from '../../src/cluster/history.js';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import { ciliumReadiness, describeGaps } from '../../src/cluster/readiness.js';
import type { NodeInfo, PodInfo, Taint } from '../../src/cluster/view.js';

const NODE = 'node-a';
const T = (minute: number): string => new Date(Date.parse('2025-06-02T09:00:00Z') + minute * 60_000).toISOString().replace(/\.000Z$/, 'Z');

interface NodeOpts {
  uid?: string;
  bootID?: string;
  taints?: Taint[];
  labelSetAt?: string;
  ciliumIsUp?: string;
}

function node(opts: NodeOpts = {}): NodeInfo {
  const conditions = opts.ciliumIsUp ? [{ type: 'NetworkUnavailable', status: 'False', reason: 'CiliumIsUp', lastTransitionTime: opts.ciliumIsUp }] : undefined;
  return {
    metadata: { name: NODE, uid: opts.uid ?? 'node-uid-1', labels: { cni: 'cilium' } },
    ...(opts.taints ? { spec: { taints: opts.taints } } : {}),
    ...(opts.bootID || conditions ? { status: { ...(opts.bootID ? { nodeInfo: { bootID: opts.bootID } } : {}), ...(conditions ? { conditions } : {}) } } : {}),
    ...(opts.labelSetAt ? { labelSetAt: { cni: opts.labelSetAt } } : {}),
  };
}

interface AgentOpts {
  uid?: string;
  name?: string;
  ready?: string | false;
  created?: string;
  configStarted?: string;
  agentStarted?: string;
  terminating?: boolean;
}

/** A Cilium agent pod as the kubelet reports it: the config init container, then cilium-agent. */
function agent(opts: AgentOpts = {}): PodInfo {
  const name = opts.name ?? 'cilium-abcde';
  return {
    metadata: {
      name,
      namespace: 'kube-system',
      uid: opts.uid ?? `uid-${name}`,
      labels: { 'k8s-app': 'cilium' },
      creationTimestamp: opts.created ?? T(0),
      ...(opts.terminating ? { deletionTimestamp: T(500) } : {}),
    },
    spec: { nodeName: NODE, hostNetwork: true },
    status: {
      phase: 'Running',
      conditions: [
        opts.ready === false
          ? { type: 'Ready', status: 'False', lastTransitionTime: T(1) }
          : { type: 'Ready', status: 'True', lastTransitionTime: opts.ready ?? T(1) },
      ],
      initContainerStatuses: [{ name: 'config', startedAt: opts.configStarted ?? opts.created ?? T(0) }],
      containerStatuses: [{ name: 'cilium-agent', startedAt: opts.agentStarted ?? opts.configStarted ?? opts.created ?? T(0), running: true }],
    },
  };
}

/** The view's clock: each read moves it on by a minute (updates in these tests are minutes apart). */
let clock = 0;
function view(n: NodeInfo = node(), agents: PodInfo[] = [agent()], config: Config = defaultConfig): MemoryClusterView {
  clock = Date.parse(T(1000));
  const v = new MemoryClusterView(config, { now: () => new Date((clock += 60_000)) });
  v.upsertNode(n);
  v.upsertCiliumNode({ metadata: { name: NODE } });
  for (const a of agents) v.upsertPod(a);
  return v;
}

describe("Cilium's startup taint", () => {
  it('not ready while the node carries node.cilium.io/agent-not-ready, whatever else the API shows; the message names the taint', () => {
    const v = view(node({ taints: [{ key: 'node.cilium.io/agent-not-ready', value: 'true', effect: 'NoExecute' }] }));
    const r = ciliumReadiness(v, NODE, defaultConfig);
    expect(r).toMatchObject({ ready: false, gaps: ['agent-not-ready-taint'], agentPod: 'kube-system/cilium-abcde' });
    expect(describeGaps(r, NODE)).toEqual([
      "the node still has Cilium's startup taint node.cilium.io/agent-not-ready (cilium-operator removes it once the agent is Ready)",
    ]);
  });

  it('reads the configured key (a key under ignore-taint.cluster-autoscaler.kubernetes.io/), and no other taint', () => {
    const key = 'ignore-taint.cluster-autoscaler.kubernetes.io/cilium-agent-not-ready';
    const config = parseConfig({ cilium: { agentNotReadyTaintKey: key } });
    const tainted = view(node({ taints: [{ key, effect: 'NoSchedule' }] }), [agent()], config);
    expect(ciliumReadiness(tainted, NODE, config).gaps).toEqual(['agent-not-ready-taint']);
    // The default key is not Cilium's startup taint any more under this configuration, nor is any other taint.
    const other = view(
      node({
        taints: [
          { key: 'node.cilium.io/agent-not-ready', effect: 'NoExecute' },
          { key: 'dedicated', effect: 'NoSchedule' },
        ],
      }),
      [agent()],
      config,
    );
    expect(ciliumReadiness(other, NODE, config)).toMatchObject({ ready: true, gaps: [] });
  });

  it('the denial shown by the webhook names the taint', () => {
    const v = view(node({ taints: [{ key: 'node.cilium.io/agent-not-ready', effect: 'NoExecute' }] }));
    const pod: PodInfo = { metadata: { name: 'web', namespace: 'default' }, spec: { nodeName: NODE } };
    const d = decidePlacement({ via: 'pod', namespace: 'default', name: 'web', node: NODE, pod }, { pod, node: v.node(NODE)! }, v, defaultConfig);
    expect(d.allowed).toBe(false);
    expect(d.message).toContain("Cilium is not ready there (the node still has Cilium's startup taint node.cilium.io/agent-not-ready");
    expect(d.audit?.reason).toBe('agent-not-ready-taint');
  });
});

describe('reboots (status.nodeInfo.bootID changes)', () => {
  it('not ready after the boot ID changes, until the agent turns Ready again; the message says the node rebooted', () => {
    const v = view(node({ bootID: 'boot-1' }));
    expect(ciliumReadiness(v, NODE, defaultConfig).ready).toBe(true);

    // The kubelet's first status update after the reboot: new boot ID, the agent pod still shows its old Ready.
    v.upsertNode(node({ bootID: 'boot-2' }));
    const r = ciliumReadiness(v, NODE, defaultConfig);
    expect(r).toMatchObject({ ready: false, gaps: ['rebooted'], agentPod: 'kube-system/cilium-abcde', detail: { bootID: 'boot-2', rebootSeenAt: T(1002) } });
    expect(describeGaps(r, NODE)[0]).toMatch(
      /^the node rebooted \(boot ID now boot-2\) and Cilium agent pod kube-system\/cilium-abcde has not turned Ready since/,
    );
    const pod: PodInfo = { metadata: { name: 'web', namespace: 'default' }, spec: { nodeName: NODE } };
    const d = decidePlacement({ via: 'binding', namespace: 'default', name: 'web', node: NODE }, { pod, node: v.node(NODE)! }, v, defaultConfig);
    expect(d.message).toContain('the node rebooted (boot ID now boot-2)');

    // The kubelet syncs the pod: its containers died with the boot, Ready=False ...
    v.upsertPod(agent({ ready: false }));
    expect(ciliumReadiness(v, NODE, defaultConfig).gaps).toEqual(['agent-not-ready']);
    // ... then the agent is up again: a new Ready transition.
    v.upsertPod(agent({ ready: T(1005), configStarted: T(1003) }));
    expect(ciliumReadiness(v, NODE, defaultConfig)).toMatchObject({ ready: true, gaps: [], readySince: T(1005) });
  });

  it('a new agent pod after the reboot counts as Ready after it', () => {
    const v = view(node({ bootID: 'boot-1' }));
    v.upsertNode(node({ bootID: 'boot-2' }));
    v.deletePod('kube-system', 'cilium-abcde');
    v.upsertPod(agent({ name: 'cilium-fghij', ready: T(1002), created: T(1001) }));
    expect(ciliumReadiness(v, NODE, defaultConfig)).toMatchObject({ ready: true, agentPod: 'kube-system/cilium-fghij' });
  });

  it('is not fooled by the first boot ID a node reports, a node re-created under the same name, or a status update that keeps the boot ID', () => {
    const v = view(node({}));
    v.upsertNode(node({ bootID: 'boot-1' })); // the kubelet's first report
    v.upsertNode(node({ bootID: 'boot-1', ciliumIsUp: T(1) })); // a heartbeat-like update
    expect(ciliumReadiness(v, NODE, defaultConfig).ready).toBe(true);
    v.upsertNode(node({ uid: 'node-uid-2', bootID: 'boot-9' })); // deleted and re-created: another Node
    expect(ciliumReadiness(v, NODE, defaultConfig).ready).toBe(true);
  });

  it('an agent Ready that arrived just before the boot ID change (watches delivered out of order) counts as after the reboot', () => {
    let now = Date.parse(T(1000));
    const v = new MemoryClusterView(defaultConfig, { now: () => new Date(now) });
    v.upsertNode(node({ bootID: 'boot-1' }));
    v.upsertCiliumNode({ metadata: { name: NODE } });
    v.upsertPod(agent({ ready: T(2) }));
    now += 600_000;
    // After a broken watch, the relist hands over the agent's post-reboot Ready first, then the new boot ID.
    v.upsertPod(agent({ ready: T(1009), configStarted: T(1005) }));
    now += 200;
    v.upsertNode(node({ bootID: 'boot-2' }));
    expect(ciliumReadiness(v, NODE, defaultConfig)).toMatchObject({ ready: true, ciliumSince: T(1009), ciliumSinceFrom: 'first-ready-after-reboot' });
    // Whereas a Ready state seen minutes before the boot ID change is pre-reboot.
    now += 600_000;
    v.upsertNode(node({ bootID: 'boot-3' }));
    expect(ciliumReadiness(v, NODE, defaultConfig).gaps).toEqual(['rebooted']);
  });

  it('a view started after the reboot does not know of it (per-process memory, documented)', () => {
    const fresh = view(node({ bootID: 'boot-2' }));
    expect(ciliumReadiness(fresh, NODE, defaultConfig).ready).toBe(true);
  });
});

describe('per-node CNI switch: the agent must be configured after the migration label was set', () => {
  const label = T(100);

  it('not ready when the agent pod was created and configured before the label; the message says to restart it', () => {
    const r = ciliumReadiness(view(node({ labelSetAt: label }), [agent({ created: T(0) })]), NODE, defaultConfig);
    expect(r).toMatchObject({
      ready: false,
      gaps: ['agent-predates-label'],
      detail: { label: 'cni=cilium', labelSetAt: label, agentCreated: T(0), agentConfiguredAt: T(0) },
    });
    expect(describeGaps(r, NODE)).toEqual([
      `Cilium agent pod kube-system/cilium-abcde was configured before the node got the label cni=cilium at ${label} ` +
        `(pod created ${T(0)}, config built ${T(0)}); Cilium applies its per-node CNI config only when its agent pod restarts`,
    ]);
  });

  it('ready once a new agent pod is created after the label (the migration guide deletes the pod)', () => {
    expect(ciliumReadiness(view(node({ labelSetAt: label }), [agent({ created: T(101), ready: T(102) })]), NODE, defaultConfig)).toMatchObject({ ready: true });
    // Same second as the label (second precision): counted as after.
    expect(ciliumReadiness(view(node({ labelSetAt: label }), [agent({ created: label })]), NODE, defaultConfig).ready).toBe(true);
  });

  it('ready when the same pod re-ran its config init container after the label (a reboot recreates the sandbox)', () => {
    const agentPods = [agent({ created: T(0), configStarted: T(150), ready: T(152) })];
    expect(ciliumReadiness(view(node({ labelSetAt: label }), agentPods), NODE, defaultConfig).ready).toBe(true);
  });

  it('still not ready when only the agent container restarted after the label: the config built by the init container is the old one', () => {
    const restarted = [agent({ created: T(0), configStarted: T(0), agentStarted: T(150), ready: T(152) })];
    const r = ciliumReadiness(view(node({ labelSetAt: label }), restarted), NODE, defaultConfig);
    expect(r.gaps).toEqual(['agent-predates-label']);
  });

  it('an agent without init containers: its container start counts', () => {
    const pod = agent({ created: T(0) });
    const noInit: PodInfo = {
      ...pod,
      status: { ...pod.status!, initContainerStatuses: [], containerStatuses: [{ name: 'cilium-agent', startedAt: T(150), running: true }] },
    };
    expect(ciliumReadiness(view(node({ labelSetAt: label }), [noInit]), NODE, defaultConfig).ready).toBe(true);
  });

  it("the label's time moving later (the same field manager changed another label) does not un-ready an agent this view saw pass", () => {
    const v = view(node({ labelSetAt: label }), [agent({ created: T(101), ready: T(102) })]);
    expect(ciliumReadiness(v, NODE, defaultConfig).ready).toBe(true);
    // `kubectl label node … team=x` an hour later: the kubectl-label entry (owner of f:cni too) gets a new time.
    v.upsertNode(node({ labelSetAt: T(160) }));
    expect(ciliumReadiness(v, NODE, defaultConfig).ready).toBe(true);
    // A view started after that cannot tell (per-process memory, documented): it asks for an agent restart.
    expect(ciliumReadiness(view(node({ labelSetAt: T(160) }), [agent({ created: T(101), ready: T(102) })]), NODE, defaultConfig).gaps).toEqual([
      'agent-predates-label',
    ]);
  });

  it('skipped when no managedFields entry owns the label (nothing to compare with)', () => {
    expect(ciliumReadiness(view(node({}), [agent({ created: T(0) })]), NODE, defaultConfig).ready).toBe(true);
  });

  it('uses the configured label key', () => {
    const config = parseConfig({ nodeLabel: 'io.cilium.migration/cilium-default=true' });
    const n: NodeInfo = { ...node(), labelSetAt: { 'io.cilium.migration/cilium-default': label, cni: T(999) } };
    expect(ciliumReadiness(view(n, [agent({ created: T(0) })], config), NODE, config).gaps).toEqual(['agent-predates-label']);
    expect(ciliumReadiness(view(n, [agent({ created: T(200) })], config), NODE, config).ready).toBe(true);
  });
});

describe('ciliumSince: when Cilium FIRST became ready on the node since its boot (the reaper reads it)', () => {
  it("cilium-operator's CiliumIsUp condition wins over the agent's latest Ready: an agent upgrade does not move it", () => {
    const r = ciliumReadiness(view(node({ ciliumIsUp: T(2) }), [agent({ name: 'cilium-new', created: T(300), ready: T(301) })]), NODE, defaultConfig);
    expect(r).toMatchObject({ ready: true, readySince: T(301), ciliumSince: T(2), ciliumSinceFrom: 'cilium-is-up' });
  });

  it('without the condition: the earliest Ready the view has seen, kept across agent restarts', () => {
    const v = view(node({}), [agent({ name: 'cilium-old', ready: T(2) })]);
    v.deletePod('kube-system', 'cilium-old');
    v.upsertPod(agent({ name: 'cilium-new', created: T(300), ready: T(301) }));
    expect(ciliumReadiness(v, NODE, defaultConfig)).toMatchObject({ readySince: T(301), ciliumSince: T(2), ciliumSinceFrom: 'first-ready-seen' });
  });

  it('a reboot moves it: the first Ready after the reboot, even with CiliumIsUp from before', () => {
    const v = view(node({ bootID: 'boot-1', ciliumIsUp: T(2) }), [agent({ ready: T(2) })]);
    v.upsertNode(node({ bootID: 'boot-2', ciliumIsUp: T(2) }));
    v.upsertPod(agent({ ready: T(1005), configStarted: T(1003) }));
    v.deletePod('kube-system', 'cilium-abcde');
    v.upsertPod(agent({ name: 'cilium-upgraded', created: T(1100), ready: T(1101) }));
    expect(ciliumReadiness(v, NODE, defaultConfig)).toMatchObject({ ready: true, ciliumSince: T(1005), ciliumSinceFrom: 'first-ready-after-reboot' });
  });

  it('after the per-node switch: the first Ready of an agent configured after the label, not the CiliumIsUp from before it', () => {
    const v = view(node({ ciliumIsUp: T(2), labelSetAt: T(100) }), [agent({ name: 'cilium-switched', created: T(110), ready: T(112) })]);
    v.deletePod('kube-system', 'cilium-switched');
    v.upsertPod(agent({ name: 'cilium-upgraded', created: T(400), ready: T(402) }));
    expect(ciliumReadiness(v, NODE, defaultConfig)).toMatchObject({ ready: true, ciliumSince: T(112), ciliumSinceFrom: 'first-ready-after-label' });
  });

  it('keeps a bounded number of Ready sightings per node, the earliest first', () => {
    const v = view(node({}), [agent({ name: 'cilium-0', ready: T(2) })]);
    for (let i = 1; i <= 3 * MAX_SIGHTINGS; i++) {
      v.deletePod('kube-system', `cilium-${i - 1}`);
      v.upsertPod(agent({ name: `cilium-${i}`, created: T(10 * i), ready: T(10 * i + 1) }));
    }
    expect(v.nodeMemory(NODE)!.readySeen).toHaveLength(MAX_SIGHTINGS);
    expect(ciliumReadiness(v, NODE, defaultConfig).ciliumSince).toBe(T(2));
  });
});
