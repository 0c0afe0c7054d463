import { describe, expect, it } from 'vitest';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import type { PodInfo } from '../../src/cluster/view.js';
import { parseConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ProgressMetrics } from '../../src/progress/metrics.js';
import { migrationProgress } from '../../src/progress/progress.js';

const config = parseConfig({});
const T0 = Date.parse('2026-11-24T10:00:00Z');
const iso = (s: number) => new Date(T0 + s * 1000).toISOString();

function agent(node: string, readyAt: number): PodInfo {
  return {
    metadata: { name: `cilium-${node}`, namespace: 'kube-system', labels: { 'k8s-app': 'cilium' }, creationTimestamp: iso(readyAt - 10) },
    spec: { nodeName: node, hostNetwork: true },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: iso(readyAt) }] },
  };
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('migration progress, after a scripted sequence of node and pod changes', () => {
  it('counts nodes by state, the oldest waiting node, time-to-ready, unmanaged pods and legacy agents', async () => {
    const view = new MemoryClusterView(config);
    let now = T0 + 600_000; // 10 min in
    const metrics = new Metrics({ defaultMetrics: false });
    const progress = new ProgressMetrics(
      metrics,
      () => migrationProgress(view, config, new Date(now)),
      () => now,
    );

    view.upsertNode({ metadata: { name: 'legacy-1', creationTimestamp: iso(0) } });
    view.upsertNode({ metadata: { name: 'm-1', labels: { cni: 'cilium' }, creationTimestamp: iso(0) } }); // waiting 600 s
    view.upsertNode({ metadata: { name: 'm-2', labels: { cni: 'cilium' }, creationTimestamp: iso(300) } }); // waiting 300 s
    // An old-CNI agent on m-2 (a pod of DaemonSet aws-node), and a pod with an IP Cilium does not manage.
    view.upsertPod({
      metadata: {
        name: 'aws-node-x',
        namespace: 'kube-system',
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'aws-node', uid: 'u', controller: true }],
      },
      spec: { nodeName: 'm-2', hostNetwork: true },
    });
    view.upsertPod({
      metadata: { name: 'web', namespace: 'default', creationTimestamp: iso(400) },
      spec: { nodeName: 'm-2' },
      status: { phase: 'Running', podIP: '10.0.0.7', startTime: iso(400) },
    });

    let text = await metrics.text();
    expect(value(text, 'cmg_migration_nodes{state="legacy"}')).toBe(1);
    expect(value(text, 'cmg_migration_nodes{state="migrated-not-ready"}')).toBe(2);
    expect(value(text, 'cmg_migration_nodes{state="migrated-ready"}')).toBe(0);
    expect(value(text, 'cmg_migration_oldest_waiting_node_seconds')).toBe(600);
    expect(value(text, 'cmg_migration_legacy_agents_on_migrated_nodes')).toBe(1);
    expect(value(text, 'cmg_migration_unmanaged_pods')).toBe(1);
    expect(value(text, 'cmg_migration_node_time_to_ready_seconds_count')).toBe(0);

    // Cilium becomes ready on m-1 at 15 min; seen at 16 min.
    view.upsertCiliumNode({ metadata: { name: 'm-1' } });
    view.upsertPod(agent('m-1', 900));
    now = T0 + 960_000;
    progress.update();
    text = await metrics.text();
    expect(value(text, 'cmg_migration_nodes{state="migrated-ready"}')).toBe(1);
    expect(value(text, 'cmg_migration_nodes{state="migrated-not-ready"}')).toBe(1);
    expect(value(text, 'cmg_migration_oldest_waiting_node_seconds')).toBe(660); // m-2, since 300 s
    expect(value(text, 'cmg_migration_node_time_to_ready_seconds_count')).toBe(1);
    expect(value(text, 'cmg_migration_node_time_to_ready_seconds_sum')).toBe(900); // label (creation) at 0, ready at 900 s
    expect(value(text, 'cmg_migration_node_time_to_ready_seconds_bucket{le="600"}')).toBe(0);
    expect(value(text, 'cmg_migration_node_time_to_ready_seconds_bucket{le="1200"}')).toBe(1);

    // Seen again: not counted twice. The legacy agent goes; m-2 leaves the migration (label removed).
    view.deletePod('kube-system', 'aws-node-x');
    view.upsertNode({ metadata: { name: 'm-2', labels: {}, creationTimestamp: iso(300) } });
    now += 60_000;
    progress.update();
    text = await metrics.text();
    expect(value(text, 'cmg_migration_node_time_to_ready_seconds_count')).toBe(1);
    expect(value(text, 'cmg_migration_nodes{state="legacy"}')).toBe(2);
    expect(value(text, 'cmg_migration_oldest_waiting_node_seconds')).toBe(0);
    expect(value(text, 'cmg_migration_legacy_agents_on_migrated_nodes')).toBe(0);
    expect(value(text, 'cmg_migration_unmanaged_pods')).toBe(0);
  });
});
