import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadSnapshot } from '../../src/cluster/snapshot.js';
import type { NodeInfo, PodInfo } from '../../src/cluster/view.js';
import { defaultConfig, parseConfig } from '../../src/config.js';
import { detect, type Assessment } from '../../src/reaper/detect.js';
import { agent, at, cep, ciliumNode, configWith, LATER, pod, T0, world } from '../support/reaper-world.js';

const RACE = fileURLToPath(new URL('../../examples/migration-race.yaml', import.meta.url));

const verdicts = (assessments: Assessment[]) => Object.fromEntries(assessments.map((a) => [`${a.pod.namespace}/${a.pod.name}`, a.verdict]));

describe('detect() on the example race (examples/migration-race.yaml)', () => {
  const { view } = loadSnapshot(RACE, defaultConfig);
  const now = new Date('2025-06-03T12:00:00Z');

  it('removes the early duplicate, reports the owner-less one, keeps the rest', () => {
    const d = detect(view, defaultConfig, now);
    expect(d.nodes.map((n) => n.node)).toEqual(['node-gke-cilium-1']);
    expect(verdicts(d.nodes[0]!.unmanaged)).toEqual({
      'default/debug-shell': 'report-only',
      'default/web-7d4b9c-ab12c': 'remove',
      'kube-system/coredns-6f7b9-q2xlp': 'keep',
    });
    expect(d.findings.map((f) => [f.pod.name, f.verdict, f.reason])).toEqual([
      ['debug-shell', 'report-only', 'DuplicatePodIP'],
      ['web-7d4b9c-ab12c', 'remove', 'DuplicatePodIP'],
    ]);
  });

  it('gives the evidence: the other pod, the times, the IP, the CEP, the CIDR', () => {
    const victim = detect(view, defaultConfig, now).findings.find((f) => f.pod.name === 'web-7d4b9c-ab12c')!;
    expect(victim.pod).toEqual({ namespace: 'default', name: 'web-7d4b9c-ab12c', node: 'node-gke-cilium-1', uid: '9a1d7c4e-2b6f-4e83-a0d5-6c3e8f1b2a01' });
    expect(victim.evidence).toEqual({
      ip: '10.244.3.7',
      podStartTime: '2025-06-03T10:00:05Z',
      ciliumReadySince: '2025-06-03T10:00:30Z',
      ciliumReadySource: 'the first agent Ready seen',
      agentPod: 'kube-system/cilium-g5t2w',
      ciliumEndpoint: { found: false },
      inCiliumPodCIDRs: true,
      sharedWith: [{ namespace: 'default', name: 'api-5f6d8b-zz9q1', node: 'node-gke-cilium-1', managedByCilium: true }],
      controller: { kind: 'ReplicaSet', name: 'web-7d4b9c' },
    });
  });

  it('with target any-unmanaged, also removes the early pod nobody shares an IP with', () => {
    const d = detect(view, configWith({ target: 'any-unmanaged' }), now);
    expect(d.findings.find((f) => f.pod.name === 'coredns-6f7b9-q2xlp')).toMatchObject({ verdict: 'remove', reason: 'UnmanagedByCilium' });
  });

  it('with removeUnowned, removes the owner-less pod too', () => {
    const d = detect(view, configWith({ removeUnowned: true }), now);
    expect(d.findings.find((f) => f.pod.name === 'debug-shell')?.verdict).toBe('remove');
  });

  it('does not count a Succeeded pod that still shows the IP as a duplicate (cilium/cilium#43353)', () => {
    const d = detect(view, configWith({ target: 'duplicate-ip' }), now);
    expect(d.nodes[0]!.unmanaged.map((a) => a.pod.name)).not.toContain('report-job-28471-5wz8n');
    expect(d.nodes[0]!.unmanaged.map((a) => a.pod.name)).not.toContain('web-7d4b9c-9xk3p');
  });
});

describe('detect(): one pod, one rule at a time', () => {
  // The early pod A (started T0+5, Cilium Ready at T0+30) and the Cilium pod B with the same IP.
  const A = { name: 'a', ip: '10.0.0.7', start: 5 };
  const B = pod({ name: 'b', ip: '10.0.0.7', start: 60 });
  const cepB = cep('default', 'b', ['10.0.0.7']);

  const cases: Array<{
    title: string;
    pods: PodInfo[];
    ceps?: ReturnType<typeof cep>[];
    nodes?: Parameters<typeof world>[0]['nodes'];
    config?: Record<string, unknown>;
    now?: Date;
    want: string | undefined;
  }> = [
    { title: 'early, unmanaged, duplicate, owned → remove', pods: [pod(A), B], ceps: [cepB], want: 'remove' },
    { title: 'managed by its CEP → not assessed', pods: [pod(A), B], ceps: [cepB, cep('default', 'a', ['10.0.0.7'])], want: undefined },
    { title: 'CEP with another IP → still unmanaged', pods: [pod(A), B], ceps: [cepB, cep('default', 'a', ['10.0.9.9'])], want: 'remove' },
    {
      title: 'CiliumNode ipam.used names the pod as owner → managed',
      pods: [pod(A), B],
      ceps: [cepB],
      nodes: [{ name: 'node-a', ciliumNode: ciliumNode('node-a', { status: { ipam: { used: { '10.0.0.7': { owner: 'default/a' } } } } }) }],
      want: undefined,
    },
    { title: 'started after Cilium became ready → keep', pods: [pod({ ...A, start: 40 }), B], ceps: [cepB], want: 'keep' },
    { title: 'started in the same second Cilium became ready → keep', pods: [pod({ ...A, start: 30 }), B], ceps: [cepB], want: 'keep' },
    { title: 'no start time → keep', pods: [pod({ name: 'a', ip: '10.0.0.7' }), B], ceps: [cepB], want: 'keep' },
    { title: 'no other pod holds the IP (duplicate-ip) → keep', pods: [pod(A)], want: 'keep' },
    { title: 'no other pod holds the IP (any-unmanaged) → remove', pods: [pod(A)], config: { target: 'any-unmanaged' }, want: 'remove' },
    { title: 'no controller owner → report-only', pods: [pod({ ...A, owner: false }), B], ceps: [cepB], want: 'report-only' },
    { title: 'within the grace period (pod age) → wait', pods: [pod(A), B], ceps: [cepB], now: new Date(T0 + 40_000), want: 'wait' },
    {
      title: 'within the grace period (Cilium ready for less) → wait',
      pods: [pod(A), B],
      ceps: [cepB],
      config: { gracePeriodSeconds: 20 },
      now: new Date(T0 + 45_000),
      want: 'wait',
    },
    { title: 'agent not Ready now → wait', pods: [pod(A), B], ceps: [cepB], nodes: [{ name: 'node-a', agentReadyAt: undefined }], want: 'wait' },
    { title: 'no CiliumNode → wait', pods: [pod(A), B], ceps: [cepB], nodes: [{ name: 'node-a', ciliumNode: false }], want: 'wait' },
    { title: 'node not migrated → not assessed', pods: [pod(A), B], ceps: [cepB], nodes: [{ name: 'node-a', migrated: false }], want: undefined },
    { title: 'terminating → not assessed', pods: [pod({ ...A, terminating: true }), B], ceps: [cepB], want: undefined },
    { title: 'Failed → not assessed', pods: [pod({ ...A, phase: 'Failed' }), B], ceps: [cepB], want: undefined },
    { title: 'host network → not assessed', pods: [pod({ ...A, hostNetwork: true }), B], ceps: [cepB], want: undefined },
    { title: 'mirror pod → not assessed', pods: [pod({ ...A, annotations: { 'kubernetes.io/config.mirror': 'x' } }), B], ceps: [cepB], want: undefined },
    { title: 'exempt label → not assessed', pods: [pod({ ...A, labels: { 'cilium-migration-guard.io/exempt': 'true' } }), B], ceps: [cepB], want: undefined },
    {
      title: 'own pod → not assessed',
      pods: [pod({ ...A, namespace: 'cilium-migration-guard', labels: { 'app.kubernetes.io/name': 'cilium-migration-guard' } }), B],
      ceps: [cepB],
      want: undefined,
    },
    { title: 'no IP → not assessed', pods: [pod({ name: 'a', start: 5 }), B], ceps: [cepB], want: undefined },
    { title: 'the other holder is terminating → keep', pods: [pod(A), pod({ name: 'b', ip: '10.0.0.7', start: 60, terminating: true })], want: 'keep' },
  ];

  it.each(cases)('$title', ({ pods, ceps, nodes, config, now, want }) => {
    const cfg = config ? configWith(config) : defaultConfig;
    const d = detect(world({ pods, ...(ceps ? { ceps } : {}), ...(nodes ? { nodes } : {}) }, cfg), cfg, now ?? LATER);
    const a = d.nodes.flatMap((n) => n.unmanaged).find((x) => x.pod.name === 'a');
    expect(a?.verdict).toBe(want);
    // B is Cilium's: never assessed, whatever happens to A.
    expect(d.nodes.flatMap((n) => n.unmanaged).find((x) => x.pod.name === 'b' && ceps?.includes(cepB))).toBeUndefined();
  });

  describe('dual-stack and IPv6 (audit item 9)', () => {
    const dual = (name: string, v4: string, v6: string, start: number): PodInfo => {
      const p = pod({ name, ip: v4, start });
      return { ...p, status: { ...p.status, podIP: v4, podIPs: [{ ip: v4 }, { ip: v6 }] } };
    };
    const cep6 = (name: string, addressing: Array<{ ipv4?: string; ipv6?: string }>) => ({
      metadata: { name, namespace: 'default' },
      status: { state: 'ready', networking: { addressing } },
    });

    it('a dual-stack pod whose CEP holds both families (ipv4 and ipv6 in one entry) is managed', () => {
      const a = dual('a', '10.0.0.7', 'fd00::7', 5);
      const d = detect(world({ pods: [a, B], ceps: [cepB, cep6('a', [{ ipv4: '10.0.0.7', ipv6: 'fd00::7' }])] }), defaultConfig, LATER);
      expect(d.nodes[0]!.unmanaged.map((x) => x.pod.name)).not.toContain('a');
    });

    it('a dual-stack pod whose CEP lists only its IPv6 address is managed', () => {
      const a = dual('a', '10.0.0.7', 'fd00::7', 5);
      const d = detect(world({ pods: [a, B], ceps: [cepB, cep6('a', [{ ipv6: 'fd00::7' }])] }), defaultConfig, LATER);
      expect(d.nodes[0]!.unmanaged.map((x) => x.pod.name)).not.toContain('a');
    });

    it("compares IPs canonically: fd00:0:0::1 in the CEP is the pod's fd00::1", () => {
      const a = dual('a', '10.0.0.7', 'fd00::1', 5);
      const d = detect(world({ pods: [a, B], ceps: [cepB, cep6('a', [{ ipv6: 'fd00:0:0::1' }])] }), defaultConfig, LATER);
      expect(d.nodes[0]!.unmanaged.map((x) => x.pod.name)).not.toContain('a');
    });

    it('compares IPs canonically for ipam.used owners and for duplicates', () => {
      const a = pod({ name: 'a', ip: 'fd00:0::a', start: 5 });
      const other = pod({ name: 'b', ip: 'FD00::A', start: 60 });
      const owned = detect(
        world({
          pods: [a],
          nodes: [{ name: 'node-a', ciliumNode: ciliumNode('node-a', { status: { ipam: { used: { 'fd00:0:0:0::a': { owner: 'default/a' } } } } }) }],
        }),
        defaultConfig,
        LATER,
      );
      expect(owned.nodes[0]!.unmanaged).toEqual([]);
      const dup = detect(world({ pods: [a, other], ceps: [cep6('b', [{ ipv6: 'fd00::a' }])] }), defaultConfig, LATER);
      expect(dup.findings.map((f) => [f.pod.name, f.reason])).toEqual([['a', 'DuplicatePodIP']]);
    });
  });

  it('finds duplicates across nodes (overlapping pod CIDRs)', () => {
    const view = world({
      nodes: [{ name: 'node-a' }, { name: 'node-b', migrated: false }],
      pods: [pod(A), pod({ name: 'b', node: 'node-b', ip: '10.0.0.7', start: 1 })],
    });
    const finding = detect(view, defaultConfig, LATER).findings[0]!;
    expect(finding.evidence.sharedWith).toEqual([{ namespace: 'default', name: 'b', node: 'node-b', managedByCilium: false }]);
  });

  it('records CiliumNode ipam.used and pod-CIDR evidence when the CiliumNode has them', () => {
    const cn = ciliumNode('node-a', { spec: { ipam: { podCIDRs: ['10.1.0.0/24'] } }, status: { ipam: { used: { '10.0.0.7': { owner: 'default/b' } } } } });
    const d = detect(world({ nodes: [{ name: 'node-a', ciliumNode: cn }], pods: [pod(A), B], ceps: [cepB] }), defaultConfig, LATER);
    expect(d.findings[0]!.evidence).toMatchObject({ ipamUsedBy: 'default/b', inCiliumPodCIDRs: false });
  });

  it('evaluates only the nodes asked for', () => {
    const view = world({ nodes: [{ name: 'node-a' }, { name: 'node-b' }], pods: [pod(A), B], ceps: [cepB] });
    expect(detect(view, defaultConfig, LATER, { nodes: new Set(['node-b']) }).nodes.map((n) => n.node)).toEqual(['node-b']);
  });
});

describe('property: a Cilium-managed pod is never a victim, whatever else is true', () => {
  // Managed: its own CiliumEndpoint (namespace/name) holds one of its IPs, or (crd/eni/azure IPAM)
  // its node's CiliumNode records one of its IPs as used by it, `[restored]` forms included. The
  // worlds also vary every readiness signal (startup taint, CiliumIsUp, the label's time, a reboot
  // seen by the view), which decide whether a node counts as ready, never whether a pod is managed.
  const IPS = ['10.0.0.1', '10.0.0.2', '10.0.0.3', 'fd00::1'];
  const NODES = ['n1', 'n2'];
  /** Mostly `usual`, sometimes anything: random worlds must often reach a victim for the property to bite. */
  const mostly = <T>(usual: T, others: fc.Arbitrary<T>) => fc.oneof({ arbitrary: fc.constant(usual), weight: 4 }, { arbitrary: others, weight: 1 });
  const podArb = fc.record({
    namespace: mostly('default', fc.constantFrom('kube-system', 'cilium-migration-guard')),
    name: fc.constantFrom('p1', 'p2', 'p3', 'p4', 'p5', 'cilium-x'),
    node: fc.constantFrom(...NODES),
    ip: fc.option(fc.constantFrom(...IPS), { nil: undefined }),
    start: fc.option(fc.integer({ min: -100, max: 200 }), { nil: undefined }),
    owner: mostly(true, fc.boolean()),
    phase: mostly('Running', fc.constantFrom('Pending', 'Succeeded', 'Failed')),
    hostNetwork: mostly(false, fc.boolean()),
    terminating: mostly(false, fc.boolean()),
    labels: fc.option(fc.constantFrom<Record<string, string>>({ 'k8s-app': 'cilium' }, { 'cilium-migration-guard.io/exempt': 'true' }, { app: 'web' }), {
      nil: undefined,
      freq: 2,
    }),
    cep: fc.constantFrom('none', 'own-ip', 'other-ip', 'empty'),
  });
  const worldArb = fc.record({
    pods: fc.array(podArb, { maxLength: 10 }),
    nodes: fc.tuple(
      ...NODES.map((name) =>
        fc.record({
          name: fc.constant(name),
          migrated: mostly(true, fc.boolean()),
          hasCiliumNode: mostly(true, fc.boolean()),
          agentReadyAt: fc.option(fc.integer({ min: -50, max: 150 }), { nil: undefined }),
          used: fc.dictionary(
            fc.constantFrom(...IPS),
            fc.record({ owner: fc.constantFrom('default/p1', 'default/p2', 'default/p3 [restored]', 'default/p4[restored]', 'kube-system/p1', 'router') }),
            { maxKeys: 3 },
          ),
          taint: mostly(false, fc.boolean()),
          ciliumIsUpAt: mostly<number | undefined>(undefined, fc.integer({ min: -50, max: 150 })),
          labelSetAt: mostly<number | undefined>(undefined, fc.integer({ min: -200, max: 100 })),
          /** The view sees the boot ID change: before any pod arrives, or after (the agent's Ready is then stale). */
          reboot: mostly<'none' | 'before-pods' | 'after-pods'>('none', fc.constantFrom('before-pods', 'after-pods')),
        }),
      ),
    ),
    reaper: fc.record({
      target: fc.constantFrom('duplicate-ip', 'any-unmanaged'),
      removeUnowned: fc.boolean(),
      gracePeriodSeconds: mostly(0, fc.integer({ min: 0, max: 120 })),
    }),
    nowOffset: mostly(400, fc.integer({ min: -10, max: 400 })),
  });

  it('holds for random worlds', () => {
    let victims = 0;
    let managedPods = 0;
    let ipamManaged = 0;
    const readiness = { ready: 0, notReady: 0 };
    fc.assert(
      fc.property(worldArb, (w) => {
        const config = parseConfig({ reaper: w.reaper });
        const pods = w.pods.map((p) => pod({ ...p, ...(p.labels ? { labels: p.labels } : {}) }));
        const ceps = w.pods.flatMap((p, i) => {
          if (p.cep === 'none') return [];
          const ip = p.cep === 'own-ip' ? pods[i]!.status?.podIP : p.cep === 'other-ip' ? '10.9.9.9' : undefined;
          return [cep(p.namespace, p.name, ip ? [ip] : [])];
        });
        const view = world(
          {
            nodes: w.nodes.map((n) => ({
              name: n.name,
              migrated: n.migrated,
              ciliumNode: n.hasCiliumNode ? ciliumNode(n.name, { status: { ipam: { used: n.used } } }) : false,
              agentReadyAt: n.agentReadyAt,
            })),
          },
          config,
        );
        // The node signals, as the informers would feed them (a reboot = the same node with a new boot ID).
        const nodeInfo = (n: (typeof w.nodes)[number], bootID: string): NodeInfo => ({
          metadata: { name: n.name, uid: `uid-${n.name}`, labels: n.migrated ? { cni: 'cilium' } : {} },
          ...(n.taint ? { spec: { taints: [{ key: 'node.cilium.io/agent-not-ready', effect: 'NoExecute' }] } } : {}),
          status: {
            nodeInfo: { bootID },
            ...(n.ciliumIsUpAt !== undefined
              ? { conditions: [{ type: 'NetworkUnavailable', status: 'False', reason: 'CiliumIsUp', lastTransitionTime: at(n.ciliumIsUpAt) }] }
              : {}),
          },
          ...(n.labelSetAt !== undefined && n.migrated ? { labelSetAt: { cni: at(n.labelSetAt) } } : {}),
        });
        for (const n of w.nodes) view.upsertNode(nodeInfo(n, n.reboot === 'before-pods' ? 'boot-2' : 'boot-1'));
        for (const n of w.nodes) if (n.reboot === 'before-pods') view.upsertNode(nodeInfo(n, 'boot-3'));
        for (const p of pods) view.upsertPod(p);
        for (const c of ceps) view.upsertCiliumEndpoint(c);
        for (const n of w.nodes) if (n.reboot === 'after-pods') view.upsertNode(nodeInfo(n, 'boot-2'));
        const d = detect(view, config, new Date(T0 + w.nowOffset * 1000));
        victims += d.findings.length;
        managedPods += w.pods.filter((p) => p.cep === 'own-ip' && p.ip).length;
        ipamManaged += w.pods.filter((p, i) => {
          const used = w.nodes.find((n) => n.name === p.node)?.used ?? {};
          const ip = pods[i]!.status?.podIP;
          return p.cep !== 'own-ip' && ip !== undefined && (used[ip]?.owner ?? '').replace(/ ?\[restored\]$/, '') === `${p.namespace}/${p.name}`;
        }).length;
        for (const n of d.nodes) readiness[n.readiness.ready ? 'ready' : 'notReady'] += 1;
        // Oracle, written independently of detect(): the pod's own CEP holds one of its IPs, or its
        // node's CiliumNode records one of its IPs as used by it (plain or restored).
        const managed = (namespace: string, name: string): boolean => {
          const live = view
            .podsOn('n1')
            .concat(view.podsOn('n2'))
            .find((p) => p.metadata.namespace === namespace && p.metadata.name === name);
          const ips = (live?.status?.podIPs ?? []).map((x) => x.ip);
          const held = (view.ciliumEndpoint(namespace, name)?.status?.networking?.addressing ?? []).map((x) => x.ipv4 ?? x.ipv6);
          const used = live?.spec.nodeName ? (view.ciliumNode(live.spec.nodeName)?.status?.ipam?.used ?? {}) : {};
          const owners = [`${namespace}/${name}`, `${namespace}/${name} [restored]`, `${namespace}/${name}[restored]`];
          return ips.some((ip) => held.includes(ip) || owners.includes(used[ip]?.owner ?? ''));
        };
        for (const a of d.nodes.flatMap((n) => n.unmanaged)) {
          expect(managed(a.pod.namespace, a.pod.name), `${a.pod.namespace}/${a.pod.name} is managed but was assessed ${a.verdict}`).toBe(false);
        }
        for (const f of d.findings) {
          const node = d.nodes.find((n) => n.node === f.pod.node)!;
          expect(node.readiness.ready).toBe(true);
          expect(Date.parse(f.evidence.podStartTime!)).toBeLessThan(Date.parse(f.evidence.ciliumReadySince!));
        }
      }),
      { numRuns: 1_000 },
    );
    // The generator must reach both sides, or the property says nothing.
    expect(victims).toBeGreaterThan(50);
    expect(managedPods).toBeGreaterThan(50);
    expect(ipamManaged).toBeGreaterThan(20);
    expect(readiness.ready).toBeGreaterThan(100);
    expect(readiness.notReady).toBeGreaterThan(100);
  });
});

describe('agent readiness used by detect()', () => {
  it('takes the Ready agent pod transition time as "Cilium ready since"', () => {
    const view = world({ nodes: [{ name: 'node-a', agentReadyAt: null }], pods: [agent('node-a', 12), pod({ name: 'a', ip: '10.0.0.7', start: 5 })] });
    const a = detect(view, configWith({ target: 'any-unmanaged' }), LATER).findings[0]!;
    expect(a.evidence.ciliumReadySince).toBe(at(12));
  });
});
