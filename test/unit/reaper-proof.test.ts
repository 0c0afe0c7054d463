// The reaper's proof on real clusters: "started before Cilium" against when Cilium FIRST became
// ready (agent restarts do not move it, a reboot does), IPAM owners of restored endpoints,
// no CiliumEndpoints at all, and which reaper.target fits the cluster.

import { describe, expect, it } from 'vitest';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import type { NodeInfo, PodInfo } from '../../src/cluster/view.js';
import { defaultConfig, type Config } from '../../src/config.js';
import { adviseTarget, detect } from '../../src/reaper/detect.js';
import { buildReport, formatReportTable } from '../../src/reaper/report-format.js';
import { at, cep, ciliumNode, configWith, LATER, pod } from '../support/reaper-world.js';

function node(extra: Partial<NodeInfo> & { bootID?: string; ciliumIsUp?: number } = {}): NodeInfo {
  const { bootID, ciliumIsUp, ...rest } = extra;
  return {
    metadata: { name: 'node-a', uid: 'uid-node-a', labels: { cni: 'cilium' } },
    ...(bootID || ciliumIsUp !== undefined
      ? {
          status: {
            ...(bootID ? { nodeInfo: { bootID } } : {}),
            ...(ciliumIsUp !== undefined
              ? { conditions: [{ type: 'NetworkUnavailable', status: 'False', reason: 'CiliumIsUp', lastTransitionTime: at(ciliumIsUp) }] }
              : {}),
          },
        }
      : {}),
    ...rest,
  };
}

function agent(name: string, readyAt: number | false, created = 0): PodInfo {
  return {
    metadata: { name, namespace: 'kube-system', uid: `uid-${name}`, labels: { 'k8s-app': 'cilium' }, creationTimestamp: at(created) },
    spec: { nodeName: 'node-a', hostNetwork: true },
    status: {
      phase: 'Running',
      conditions: [readyAt === false ? { type: 'Ready', status: 'False' } : { type: 'Ready', status: 'True', lastTransitionTime: at(readyAt) }],
      initContainerStatuses: [{ name: 'config', startedAt: at(created) }],
    },
  };
}

/** An early-looking pod sharing its IP with a Cilium-managed one: a victim if it started before Cilium. */
function duplicate(view: MemoryClusterView, name: string, start: number, ip: string): void {
  view.upsertPod(pod({ name, start, ip }));
  view.upsertPod(pod({ name: `${name}-cilium`, start: start + 1, ip }));
  view.upsertCiliumEndpoint(cep('default', `${name}-cilium`, [ip]));
}

function viewWith(n: NodeInfo, agents: PodInfo[], config: Config = defaultConfig): MemoryClusterView {
  let clock = Date.parse(at(5000));
  const view = new MemoryClusterView(config, { synced: true, now: () => new Date((clock += 60_000)) });
  view.upsertNode(n);
  view.upsertCiliumNode(ciliumNode('node-a', { spec: { ipam: { podCIDRs: ['10.244.0.0/16'] } } }));
  for (const a of agents) view.upsertPod(a);
  return view;
}

const verdictOf = (view: MemoryClusterView, name: string, config: Config = defaultConfig) =>
  detect(view, config, LATER).nodes[0]!.unmanaged.find((a) => a.pod.name === name);

describe('"started before Cilium" compares with when Cilium FIRST became ready on the node', () => {
  it('an agent upgrade (new pod, new Ready) does not make pods Cilium started look early: CiliumIsUp', () => {
    // Cilium ready at +30 s (CiliumIsUp); the pod started at +100 s; the agent was upgraded at +600 s.
    const view = viewWith(node({ ciliumIsUp: 30 }), [agent('cilium-upgraded', 600, 590)]);
    duplicate(view, 'web', 100, '10.244.1.5');
    const a = verdictOf(view, 'web')!;
    expect(a).toMatchObject({ verdict: 'keep' });
    expect(a.why).toBe(`started at ${at(100)}, after Cilium became ready at ${at(30)}: not an early pod`);
    expect(a.evidence).toMatchObject({ ciliumReadySince: at(30), ciliumReadySource: "cilium-operator's NetworkUnavailable=False/CiliumIsUp condition" });
  });

  it('without CiliumIsUp: the first Ready the reaper has seen, kept across the agent restart', () => {
    const view = viewWith(node(), [agent('cilium-old', 30)]);
    view.deletePod('kube-system', 'cilium-old');
    view.upsertPod(agent('cilium-new', 600, 590));
    duplicate(view, 'web', 100, '10.244.1.5');
    expect(verdictOf(view, 'web')).toMatchObject({ verdict: 'keep', evidence: { ciliumReadySince: at(30), ciliumReadySource: 'the first agent Ready seen' } });
  });

  it('compared with the latest Ready instead, the same pod would have been removed (what this guards against)', () => {
    const view = viewWith(node(), [agent('cilium-new', 600, 590)]);
    duplicate(view, 'web', 100, '10.244.1.5');
    expect(verdictOf(view, 'web')?.verdict).toBe('remove');
  });

  it('a reboot moves it: a pod started after the reboot but before the agent was Ready again is early', () => {
    const view = viewWith(node({ bootID: 'boot-1', ciliumIsUp: 30 }), [agent('cilium-a', 30)]);
    view.upsertNode(node({ bootID: 'boot-2', ciliumIsUp: 30 }));
    // Before the agent turns Ready again after the boot, the node is not ready: the pod waits.
    duplicate(view, 'web', 900, '10.244.1.5');
    expect(verdictOf(view, 'web')).toMatchObject({ verdict: 'wait' });
    expect(verdictOf(view, 'web')!.why).toContain('the node rebooted (boot ID now boot-2)');
    view.upsertPod(agent('cilium-a', 950, 0));
    expect(verdictOf(view, 'web')).toMatchObject({
      verdict: 'remove',
      evidence: { ciliumReadySince: at(950), ciliumReadySource: 'the first agent Ready seen after the reboot' },
    });
  });
});

describe('IPAM owners of endpoints the agent restored after a restart', () => {
  it('"namespace/name [restored]" (and the older IPv4 spelling without the space) counts as Cilium managing the pod', () => {
    const view = viewWith(node(), [agent('cilium-a', 30)]);
    view.upsertCiliumNode(
      ciliumNode('node-a', {
        status: { ipam: { used: { '10.244.1.5': { owner: 'default/web [restored]' }, '10.244.1.6': { owner: 'default/other [restored]' } } } },
      }),
    );
    view.upsertPod(pod({ name: 'web', start: 0, ip: '10.244.1.5' }));
    view.upsertPod(pod({ name: 'web-twin', start: 0, ip: '10.244.1.5' }));
    let d = detect(view, configWith({ target: 'any-unmanaged' }), LATER);
    let names = d.nodes[0]!.unmanaged.map((a) => a.pod.name);
    expect(names).not.toContain('web');
    view.upsertCiliumNode(ciliumNode('node-a', { status: { ipam: { used: { '10.244.1.5': { owner: 'default/web[restored]' } } } } }));
    d = detect(view, configWith({ target: 'any-unmanaged' }), LATER);
    names = d.nodes[0]!.unmanaged.map((a) => a.pod.name);
    expect(names).not.toContain('web');
    view.upsertCiliumNode(ciliumNode('node-a', { status: { ipam: { used: { '10.244.1.5': { owner: 'default/web [restored]' } } } } }));
    d = detect(view, configWith({ target: 'any-unmanaged' }), LATER);
    names = d.nodes[0]!.unmanaged.map((a) => a.pod.name);
    // The other pod holding the IP is not its owner, restored or not.
    expect(names).toContain('web-twin');
    expect(d.findings.map((f) => f.pod.name)).toEqual(['web-twin']);
  });
});

describe('no CiliumEndpoints (disable-endpoint-crd: "true" in cilium-config)', () => {
  it('acts on nothing and says why (detection, report)', () => {
    const view = viewWith(node(), [agent('cilium-a', 30)]);
    duplicate(view, 'web', 0, '10.244.1.5');
    expect(detect(view, defaultConfig, LATER).findings).toHaveLength(1);

    view.setCiliumConfig({ endpointCRDDisabled: true });
    const d = detect(view, defaultConfig, LATER);
    expect(d.findings).toEqual([]);
    expect(d.nodes[0]).toMatchObject({ node: 'node-a', readiness: { ready: true }, unmanaged: [] });
    expect(d.inactive).toEqual({
      reason: 'ciliumendpoints-disabled',
      message:
        'Cilium is configured not to create CiliumEndpoints (disable-endpoint-crd: "true" in ConfigMap kube-system/cilium-config): every pod would look unmanaged, so the reaper removes nothing',
    });
    const report = buildReport(d, defaultConfig, 'test');
    expect(report.inactive?.reason).toBe('ciliumendpoints-disabled');
    expect(formatReportTable(report)).toContain('The reaper acts on nothing here: Cilium is configured not to create CiliumEndpoints');
  });
});

describe('which reaper.target fits (separate-CIDR migrations)', () => {
  it("pod IPs outside Cilium's pod CIDRs on migrated nodes: separate ranges, any-unmanaged fits", () => {
    const view = viewWith(node(), [agent('cilium-a', 30)]);
    view.upsertCiliumNode(ciliumNode('node-a', { spec: { ipam: { podCIDRs: ['10.245.0.0/24'] } } }));
    view.upsertPod(pod({ name: 'old-cni', start: 0, ip: '172.16.3.4' }));
    view.upsertPod(pod({ name: 'cilium-pod', start: 100, ip: '10.245.0.9' }));
    view.upsertPod(pod({ name: 'host', start: 0, ip: '10.0.0.5', hostNetwork: true }));
    const advice = adviseTarget(view, defaultConfig, ['node-a']);
    expect(advice).toMatchObject({
      fits: 'any-unmanaged',
      configured: 'duplicate-ip',
      inside: 1,
      outside: 1,
      outsideExamples: ['default/old-cni 172.16.3.4 on node-a'],
    });
    const text = formatReportTable(buildReport(detect(view, defaultConfig, LATER), defaultConfig, 'test'));
    expect(text).toContain('reaper.target: duplicate-ip; any-unmanaged fits this cluster — consider changing it: 1 pod IP(s) on migrated nodes lie outside');
  });

  it('every pod IP inside the ranges: shared range, duplicate-ip fits', () => {
    const view = viewWith(node(), [agent('cilium-a', 30)]);
    view.upsertPod(pod({ name: 'a', start: 0, ip: '10.244.1.4' }));
    expect(adviseTarget(view, defaultConfig, ['node-a'])).toMatchObject({ fits: 'duplicate-ip', inside: 1, outside: 0 });
  });

  it('nothing to judge by (no pod CIDRs listed, or no pods): no advice', () => {
    const view = viewWith(node(), [agent('cilium-a', 30)]);
    view.upsertCiliumNode(ciliumNode('node-a'));
    view.upsertPod(pod({ name: 'a', start: 0, ip: '172.16.3.4' }));
    expect(adviseTarget(view, defaultConfig, ['node-a']).fits).toBeUndefined();
  });
});

describe('metrics', () => {
  it('cmg_reaper_inactive{reason="ciliumendpoints-disabled"} follows the last evaluation', async () => {
    const { Metrics } = await import('../../src/metrics.js');
    const { ReaperMetrics } = await import('../../src/reaper/reaper-metrics.js');
    const metrics = new Metrics({ defaultMetrics: false });
    const reaper = new ReaperMetrics(metrics);
    const view = viewWith(node(), [agent('cilium-a', 30)]);
    reaper.observeDetection(detect(view, defaultConfig, LATER));
    expect(await metrics.text()).toContain('cmg_reaper_inactive{reason="ciliumendpoints-disabled"} 0');
    view.setCiliumConfig({ endpointCRDDisabled: true });
    reaper.observeDetection(detect(view, defaultConfig, LATER));
    expect(await metrics.text()).toContain('cmg_reaper_inactive{reason="ciliumendpoints-disabled"} 1');
  });
});
