// The migration's progress metrics on the reaper's /metrics, after a scripted sequence of node and
// pod changes written to a real kube-apiserver (kwok runs the nodes and the pods' status).

import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROLLERS, httpGet, startControlPlane, waitFor, type ControlPlane } from '../harness/controlplane.js';
import { installCiliumCrds, startReaper, type ReaperProcess } from '../harness/guard.js';

let cp: ControlPlane;
let reaper: ReaperProcess;

const apply = (obj: unknown) => cp.kubectl(['apply', '-f', '-'], { input: stringify(obj) });

async function metric(series: string): Promise<number | undefined> {
  const text = (await httpGet(`${reaper.url}/metrics`)).body;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

/** Waits until every series has the wanted value; fails naming the ones that differ. */
async function expectMetrics(wanted: Record<string, number>) {
  let last: Record<string, number | undefined> = {};
  try {
    await waitFor(
      `metrics ${JSON.stringify(wanted)}`,
      async () => {
        last = Object.fromEntries(await Promise.all(Object.keys(wanted).map(async (k) => [k, await metric(k)] as const)));
        return Object.entries(wanted).every(([k, v]) => last[k] === v) ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500 },
    );
  } catch {
    expect(last).toEqual(wanted);
  }
}

const dsPod = (name: string, node: string, owner: string, labels: Record<string, string>, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name,
    namespace: 'kube-system',
    labels,
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: owner, uid: '00000000-0000-0000-0000-000000000001', controller: true }],
  },
  spec: { nodeName: node, tolerations: [{ operator: 'Exists' }], containers: [{ name: 'c', image: 'x' }], ...extra },
});

beforeAll(async () => {
  cp = await startControlPlane({
    nodes: [{ name: 'kwok-legacy-1' }, { name: 'kwok-cilium-1', labels: { cni: 'cilium' } }, { name: 'kwok-cilium-2', labels: { cni: 'cilium' } }],
    log: (line) => process.stderr.write(`[controlplane] ${line}\n`),
    // The script places agent pods on chosen nodes at chosen steps, owned by DaemonSets that do not
    // exist (what the metrics read to call a pod a node agent). The garbage collector would delete
    // them for their missing owner, so it is left out here; every other controller runs.
    controllers: CONTROLLERS.filter((c) => c !== 'garbage-collector-controller'),
  });
  await installCiliumCrds(cp);
  reaper = await startReaper(cp, { args: ['--dry-run'] });
}, 600_000);

afterAll(async () => {
  await reaper?.stop();
  await cp?.stop();
});

describe('progress metrics after a scripted sequence', () => {
  it('1. two migrated nodes waiting, one legacy', async () => {
    await expectMetrics({
      'cmg_migration_nodes{state="legacy"}': 1,
      'cmg_migration_nodes{state="migrated-not-ready"}': 2,
      'cmg_migration_nodes{state="migrated-ready"}': 0,
      cmg_migration_unmanaged_pods: 0,
      cmg_migration_legacy_agents_on_migrated_nodes: 0,
      cmg_migration_node_time_to_ready_seconds_count: 0,
    });
    expect(await metric('cmg_migration_oldest_waiting_node_seconds')).toBeGreaterThanOrEqual(0);
  });

  it('2. an aws-node pod and an ordinary pod with an IP land on kwok-cilium-2', async () => {
    await apply(dsPod('aws-node-c2', 'kwok-cilium-2', 'aws-node', { 'k8s-app': 'aws-node' }, { hostNetwork: true }));
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', namespace: 'default' },
      spec: { nodeName: 'kwok-cilium-2', containers: [{ name: 'c', image: 'nginx' }] },
    });
    await expectMetrics({ cmg_migration_legacy_agents_on_migrated_nodes: 1, cmg_migration_unmanaged_pods: 1 });
  });

  it('3. Cilium becomes ready on kwok-cilium-1: one node ready, time-to-ready observed once', async () => {
    await apply({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: 'kwok-cilium-1' }, spec: { ipam: { podCIDRs: ['10.245.0.0/24'] } } });
    await apply(dsPod('cilium-c1', 'kwok-cilium-1', 'cilium', { 'k8s-app': 'cilium' }, { hostNetwork: true }));
    await expectMetrics({
      'cmg_migration_nodes{state="migrated-ready"}': 1,
      'cmg_migration_nodes{state="migrated-not-ready"}': 1,
      cmg_migration_node_time_to_ready_seconds_count: 1,
    });
    const sum = await metric('cmg_migration_node_time_to_ready_seconds_sum');
    expect(sum).toBeGreaterThanOrEqual(0);
    expect(sum).toBeLessThan(300); // the node was created moments ago
  });

  it('4. kwok-legacy-1 is labelled for Cilium; the aws-node pod goes', async () => {
    await cp.kubectl(['label', 'node', 'kwok-legacy-1', 'cni=cilium']);
    await cp.kubectl(['delete', 'pod', '-n', 'kube-system', 'aws-node-c2', '--grace-period=0', '--force']);
    await expectMetrics({
      'cmg_migration_nodes{state="legacy"}': 0,
      'cmg_migration_nodes{state="migrated-not-ready"}': 2,
      'cmg_migration_nodes{state="migrated-ready"}': 1,
      cmg_migration_legacy_agents_on_migrated_nodes: 0,
      cmg_migration_node_time_to_ready_seconds_count: 1,
    });
  });
});
