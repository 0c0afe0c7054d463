// Nodes waiting on Cilium's startup taint, and the stuck-taint guard: the pure judgement and the
// periodic check of `serve` on a fake clock (warning log once per episode, gauge at scrape time).

import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import { StartupTaintMonitor } from '../../src/cluster/startup-taint-monitor.js';
import { describeStartupTaint, formatDuration, startupTaintStatus, startupTaintStatuses } from '../../src/cluster/startup-taint.js';
import type { NodeInfo, PodInfo, Taint } from '../../src/cluster/view.js';
import { FakeClock } from '../support/fake-clock.js';

const config = parseConfig({ nodeTaint: { stuckAfterSeconds: 600 } });
const KEY = 'node.cilium.io/agent-not-ready';
const T0 = Date.parse('2026-06-01T10:00:00Z');
const iso = (secondsAfterT0: number) => new Date(T0 + secondsAfterT0 * 1000).toISOString().replace('.000Z', 'Z');
const at = (secondsAfterT0: number) => new Date(T0 + secondsAfterT0 * 1000);

function node(name: string, taints: Taint[] | undefined, labels: Record<string, string> = { cni: 'cilium' }): NodeInfo {
  return { metadata: { name, labels, creationTimestamp: iso(0) }, ...(taints ? { spec: { taints } } : {}) };
}

function agent(nodeName: string, ready: boolean, readySince = iso(60), name = `cilium-${nodeName}`): PodInfo {
  return {
    metadata: { name, namespace: 'kube-system', labels: { 'k8s-app': 'cilium' } },
    spec: { nodeName, hostNetwork: true },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: readySince }] },
  };
}

const taint: Taint = { key: KEY, value: 'true', effect: 'NoExecute' };

function viewWith(nodes: NodeInfo[], pods: PodInfo[] = []): MemoryClusterView {
  const view = new MemoryClusterView(config);
  for (const n of nodes) view.upsertNode(n);
  for (const p of pods) view.upsertPod(p);
  return view;
}

describe('startupTaintStatus', () => {
  it('a node without the taint is not listed', () => {
    const view = viewWith([node('a', undefined), node('b', [{ key: 'other', effect: 'NoSchedule' }])]);
    expect(startupTaintStatuses(view.nodes(), view, config, at(10))).toEqual([]);
  });

  it('waiting: tainted, no agent pod yet; its age counts from the node creation when the taint has no timeAdded', () => {
    const view = viewWith([node('a', [taint])]);
    const status = startupTaintStatus(view.node('a')!, view, config, at(125))!;
    expect(status).toMatchObject({ node: 'a', migrated: true, state: 'waiting', since: iso(0), sinceSource: 'creationTimestamp', taintedSeconds: 125 });
    expect(describeStartupTaint(status)).toBe('tainted for 2m05s, waiting for a Ready Cilium agent pod on the node');
  });

  it('waiting: an agent pod that is not Ready does not count', () => {
    const view = viewWith([node('a', [taint])], [agent('a', false)]);
    expect(startupTaintStatus(view.node('a')!, view, config, at(5000))!.state).toBe('waiting');
  });

  it("uses the taint's timeAdded when it has one", () => {
    const view = viewWith([node('a', [{ ...taint, timeAdded: iso(100) }])]);
    expect(startupTaintStatus(view.node('a')!, view, config, at(160))).toMatchObject({ since: iso(100), sinceSource: 'timeAdded', taintedSeconds: 60 });
  });

  it('agent-ready, then stuck once the taint outlives the Ready agent by stuckAfterSeconds', () => {
    const view = viewWith([node('a', [taint])], [agent('a', true, iso(60))]);
    const soon = startupTaintStatus(view.node('a')!, view, config, at(60 + 599))!;
    expect(soon).toMatchObject({ state: 'agent-ready', agentPod: 'kube-system/cilium-a', agentReadySince: iso(60), overdueSeconds: 599 });
    const late = startupTaintStatus(view.node('a')!, view, config, at(60 + 600))!;
    expect(late).toMatchObject({ state: 'stuck', overdueSeconds: 600 });
    expect(describeStartupTaint(late)).toContain('taint still there 10m00s after agent kube-system/cilium-a turned Ready');
    expect(describeStartupTaint(late)).toContain('--agent-not-ready-taint-key (Helm agentNotReadyTaintKey) is node.cilium.io/agent-not-ready');
    expect(describeStartupTaint(late)).toContain('kubectl taint node a node.cilium.io/agent-not-ready-');
  });

  it('a taint added after the agent turned Ready is overdue only from when it was added', () => {
    const view = viewWith([node('a', [{ ...taint, timeAdded: iso(1000) }])], [agent('a', true, iso(60))]);
    expect(startupTaintStatus(view.node('a')!, view, config, at(1000 + 30))).toMatchObject({ state: 'agent-ready', overdueSeconds: 30 });
  });

  it('follows the configured key, lists unlabelled nodes too, and sorts by name', () => {
    const custom = parseConfig({ cilium: { agentNotReadyTaintKey: 'ignore-taint.cluster-autoscaler.kubernetes.io/cilium' } });
    const view = viewWith([
      node('z', [{ key: 'ignore-taint.cluster-autoscaler.kubernetes.io/cilium', effect: 'NoSchedule' }], {}),
      node('m', [taint]),
      node('b', [{ key: 'ignore-taint.cluster-autoscaler.kubernetes.io/cilium', effect: 'NoExecute' }]),
    ]);
    const statuses = startupTaintStatuses(view.nodes(), view, custom, at(1));
    expect(statuses.map((s) => [s.node, s.migrated])).toEqual([
      ['b', true],
      ['z', false],
    ]);
  });

  it('formatDuration', () => {
    expect([0, 42, 65, 3600, 3725 + 3600, 47 * 3600, 3 * 86_400 + 4 * 3600 + 5].map(formatDuration)).toEqual([
      '0s',
      '42s',
      '1m05s',
      '1h00m',
      '2h02m',
      '47h00m',
      '3d04h',
    ]);
  });
});

describe('StartupTaintMonitor', () => {
  let monitor: StartupTaintMonitor | undefined;
  afterEach(async () => monitor?.stop());

  function setup(view: MemoryClusterView, synced = () => true) {
    const lines: any[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    });
    const clock = new FakeClock(T0);
    const registry = new Registry();
    const cfg = parseConfig({ nodeTaint: { stuckAfterSeconds: 300, checkIntervalSeconds: 30 } });
    monitor = new StartupTaintMonitor({ view, config: cfg, logger: createLogger({ destination }), registry, clock, synced });
    const gauge = async () => {
      const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'cmg_startup_taint_nodes')!;
      return Object.fromEntries(metric.values.map((v) => [v.labels.state, v.value]));
    };
    return { lines, clock, gauge };
  }

  it('warns once when a taint becomes stuck, says when it clears, and the gauge follows at every scrape', async () => {
    const view = viewWith([node('a', [taint]), node('b', [taint])], [agent('a', true, iso(0))]);
    const { lines, clock, gauge } = setup(view);
    monitor!.start();
    expect(await gauge()).toEqual({ waiting: 1, 'agent-ready': 1, stuck: 0 });

    await clock.advance(30_000 * 10); // 300 s: the check at 300 s sees it stuck
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ node: 'a', taint: KEY, agentPod: 'kube-system/cilium-a', component: 'startup-taint' });
    expect(warnings[0].msg).toContain("Cilium's startup taint is stuck on node a: taint still there 5m00s after agent kube-system/cilium-a turned Ready");
    expect(await gauge()).toEqual({ waiting: 1, 'agent-ready': 0, stuck: 1 });

    await clock.advance(30_000 * 4); // still stuck: no second warning
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);

    // cilium-operator finally removes it.
    view.upsertNode(node('a', []));
    await clock.advance(30_000);
    expect(lines.filter((l) => l.level === 'info' && l.node === 'a').at(-1).msg).toContain('is no longer stuck');
    expect(await gauge()).toEqual({ waiting: 1, 'agent-ready': 0, stuck: 0 });
  });

  it('judges nothing before the caches have synced', async () => {
    const view = viewWith([node('a', [taint])], [agent('a', true, iso(-10_000))]);
    let synced = false;
    const { lines, clock, gauge } = setup(view, () => synced);
    monitor!.start();
    await clock.advance(600_000); // stuck by then, but the caches have not listed

    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(0);
    expect(await gauge()).toEqual({});
    synced = true;
    await clock.advance(30_000);
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
  });

  it('stop() ends the loop', async () => {
    const view = viewWith([node('a', [taint])], [agent('a', true, iso(-10_000))]);
    const { lines, clock } = setup(view);
    monitor!.start();
    await monitor!.stop();
    await clock.advance(120_000);
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(0);
    expect(clock.pending).toBe(0);
  });
});

describe('report: nodes waiting on the startup taint', () => {
  const snapshot = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: { name: node-new, creationTimestamp: "2025-06-03T10:00:00Z", labels: { cni: cilium } }
  spec:
    taints:
    - { key: dedicated, value: gpu, effect: NoSchedule }
    - { key: node.cilium.io/agent-not-ready, value: "true", effect: NoExecute }
- apiVersion: v1
  kind: Node
  metadata: { name: node-stuck, creationTimestamp: "2025-06-03T09:00:00Z", labels: { cni: cilium } }
  spec:
    taints:
    - { key: node.cilium.io/agent-not-ready, value: "true", effect: NoExecute }
- apiVersion: v1
  kind: Node
  metadata: { name: node-pool-tainted, creationTimestamp: "2025-06-03T09:00:00Z" }
  spec:
    taints:
    - { key: node.cilium.io/agent-not-ready, value: "true", effect: NoSchedule, timeAdded: "2025-06-03T09:30:00Z" }
- apiVersion: v1
  kind: Node
  metadata: { name: node-done, creationTimestamp: "2025-06-03T09:00:00Z", labels: { cni: cilium } }
- apiVersion: v1
  kind: Pod
  metadata: { name: cilium-stuck, namespace: kube-system, labels: { k8s-app: cilium } }
  spec: { nodeName: node-stuck, hostNetwork: true }
  status:
    phase: Running
    conditions:
    - { type: Ready, status: "True", lastTransitionTime: "2025-06-03T09:01:00Z" }
`;

  it('lists every tainted node with its state, age and where the age comes from; STUCK says how to fix it', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { runReport } = await import('../../src/commands/report.js');
    const file = join(mkdtempSync(join(tmpdir(), 'cmg-taint-')), 'state.yaml');
    writeFileSync(file, snapshot);

    const { text } = await runReport(['--cluster-state', file, '--log-level', 'silent']);
    expect(text).toContain("Nodes waiting on Cilium's startup taint node.cilium.io/agent-not-ready (stuck after 600s of a Ready agent):");
    expect(text).toMatch(
      /node-new\s+waiting\s+\S+\s+2025-06-03T10:00:00Z \(creationTimestamp\)\s+tainted for \S+, waiting for a Ready Cilium agent pod on the node/,
    );
    expect(text).toMatch(/node-pool-tainted\s+waiting\s+\S+\s+2025-06-03T09:30:00Z \(timeAdded\)/);
    expect(text).toMatch(
      /node-stuck\s+STUCK\s+.*after agent kube-system\/cilium-stuck turned Ready.*kubectl taint node node-stuck node.cilium.io\/agent-not-ready-/,
    );
    expect(text).not.toMatch(/^node-done\s+(waiting|STUCK)/m);

    const { report } = await runReport(['--cluster-state', file, '-o', 'json', '--log-level', 'silent']);
    expect(report.startupTaint?.nodes.map((n) => [n.node, n.state, n.migrated])).toEqual([
      ['node-new', 'waiting', true],
      ['node-pool-tainted', 'waiting', false],
      ['node-stuck', 'stuck', true],
    ]);
  });
});
