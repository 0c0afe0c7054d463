import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runReport } from '../../src/commands/report.js';
import { cidrsContain } from '../../src/reaper/cidr.js';
import { startProbeServer } from '../../src/reaper/http.js';
import { Metrics } from '../../src/metrics.js';
import { pino } from 'pino';

const RACE = fileURLToPath(new URL('../../examples/migration-race.yaml', import.meta.url));

describe('report command on a snapshot', () => {
  it('-o json: per node readiness and the pods the reaper would act on, with evidence', async () => {
    const { text } = await runReport(['--cluster-state', RACE, '-o', 'json', '--log-level', 'silent']);
    const parsed = JSON.parse(text) as Awaited<ReturnType<typeof runReport>>['report'];
    expect(parsed.source).toBe(`snapshot ${RACE}`);
    expect(parsed.summary).toEqual({ nodes: 1, ciliumNotReady: 0, remove: 1, 'report-only': 1, wait: 0, keep: 1 });
    const node = parsed.nodes[0]!;
    expect(node).toMatchObject({
      node: 'node-gke-cilium-1',
      ciliumReady: true,
      notReadyBecause: [],
      agentPod: 'kube-system/cilium-g5t2w',
      readySince: '2025-06-03T10:00:30Z',
    });
    expect(node.pods.map((p) => [p.namespace, p.name, p.ip, p.verdict, p.reason ?? null])).toEqual([
      ['default', 'debug-shell', '10.244.3.9', 'report-only', 'DuplicatePodIP'],
      ['default', 'web-7d4b9c-ab12c', '10.244.3.7', 'remove', 'DuplicatePodIP'],
      ['kube-system', 'coredns-6f7b9-q2xlp', '10.244.3.4', 'keep', null],
    ]);
    expect(node.pods[1]!.evidence.sharedWith).toEqual([{ namespace: 'default', name: 'api-5f6d8b-zz9q1', node: 'node-gke-cilium-1', managedByCilium: true }]);
  });

  it('table: readable, and says why a node is not ready', async () => {
    const { text } = await runReport([
      '--cluster-state',
      fileURLToPath(new URL('../../examples/cluster-state.yaml', import.meta.url)),
      '--log-level',
      'silent',
    ]);
    expect(text).toMatch(
      /node-cilium-pending\s+NOT READY\s+the node still has Cilium's startup taint node\.cilium\.io\/agent-not-ready \(cilium-operator removes it once the agent is Ready\); no CiliumNode "node-cilium-pending" exists yet; Cilium agent pod kube-system\/cilium-q9z4m is not Ready/,
    );
    expect(text).toMatch(/node-cilium-ready\s+ready\s+since 2025-06-02T09:14:41Z/);
    expect(text).toContain('Summary: 2 migrated node(s), 1 without a ready Cilium;');
  });

  it('applies --node-label', async () => {
    const { report } = await runReport([
      '--cluster-state',
      RACE,
      '--node-label',
      'cloud.google.com/gke-nodepool=default-pool',
      '-o',
      'json',
      '--log-level',
      'silent',
    ]);
    expect(report.nodes).toEqual([]);
  });

  it('rejects an unknown output format', async () => {
    await expect(runReport(['--cluster-state', RACE, '-o', 'yaml'])).rejects.toThrow('-o must be table or json');
  });
});

describe('cidrsContain', () => {
  it.each([
    [['10.244.3.0/24'], '10.244.3.7', true],
    [['10.244.3.0/24'], '10.244.4.7', false],
    [['10.0.0.0/8', 'fd00::/64'], 'fd00::1', true],
    [['fd00::/64'], '10.0.0.1', false],
    [['not-a-cidr', '10.0.0.0/99'], '10.0.0.1', false],
    [['10.0.0.0/8'], 'garbage', false],
  ])('%j contains %s: %s', (cidrs, ip, want) => {
    expect(cidrsContain(cidrs, ip)).toBe(want);
  });
});

describe('probe server', () => {
  it('serves /healthz, /readyz (503 until synced) and /metrics', async () => {
    let ready = false;
    const metrics = new Metrics({ defaultMetrics: false });
    const server = await startProbeServer({
      host: '127.0.0.1',
      port: 0,
      metrics,
      readiness: () => ({ ready, detail: { pods: ready } }),
      log: pino({ level: 'silent' }),
    });
    try {
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      const notReady = await fetch(`${server.url}/readyz`);
      expect(notReady.status).toBe(503);
      expect(await notReady.json()).toEqual({ ready: false, detail: { pods: false } });
      ready = true;
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      expect(await (await fetch(`${server.url}/metrics`)).text()).toContain('cmg_cache_synced');
      expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
