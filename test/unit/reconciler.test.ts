import jsonpatch from 'fast-json-patch';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { JsonPatchOp } from '../../src/admission/types.js';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import { parseConfig, SKIP_AFFINITY_ANNOTATION, type Config } from '../../src/config.js';
import { MODE_LABEL } from '../../src/modes/mode.js';
import type { PatchOutcome, ReconcilerApi } from '../../src/reconciler/api.js';
import { agentPlacement, daemonSetFindings, type DaemonSetObject } from '../../src/reconciler/findings.js';
import { DaemonSetReconciler } from '../../src/reconciler/reconciler.js';
import { decideDaemonSetAffinity } from '../../src/webhooks/daemonset-affinity.js';
import { daemonSet } from '../support/fixtures.js';
import { daemonSetRequest } from '../support/reviews.js';
import { FakeClock } from '../support/fake-clock.js';

const config = parseConfig({});

function listed(name: string, rv = '10', mutate: (ds: any) => void = () => {}): DaemonSetObject {
  const ds = structuredClone(daemonSet(name));
  ds.metadata.uid = `uid-${name}`;
  ds.metadata.resourceVersion = rv;
  mutate(ds);
  return ds;
}

const conflicting = () =>
  listed('kube-flannel-ds', '11', (ds) => {
    ds.metadata.namespace = 'kube-system';
    ds.spec.template.spec.affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'cni', operator: 'In', values: ['cilium'] }] }] },
      },
    };
  });

describe('daemonSetFindings', () => {
  const view = new MemoryClusterView(config);

  it('lists a DaemonSet written without its affinity, with exactly the patch the webhook makes', () => {
    const aws = listed('aws-node');
    const [finding, ...rest] = daemonSetFindings([aws], view, config);
    expect(rest).toEqual([]);
    expect(finding).toMatchObject({
      namespace: 'kube-system',
      name: 'aws-node',
      state: 'out-of-line',
      role: 'legacy',
      rule: 'aws-node',
      requirement: 'cni NotIn [cilium]',
      resourceVersion: '10',
    });
    const webhook = decideDaemonSetAffinity(daemonSetRequest(aws, 'UPDATE'), view, config);
    expect(finding!.state === 'out-of-line' && finding!.patch).toEqual(webhook.patch);
  });

  it("lists Cilium's agent written unpatched while the webhook was down (its entry fails open), with In [cilium]", () => {
    const [finding] = daemonSetFindings([listed('cilium')], view, config);
    expect(finding).toMatchObject({ name: 'cilium', state: 'out-of-line', role: 'cilium', requirement: 'cni In [cilium]' });
    // With confineCilium: false (Cilium's own migration guide), Cilium's agent has no role: nothing to do.
    expect(daemonSetFindings([listed('cilium')], view, parseConfig({ confineCilium: false }))).toEqual([]);
  });

  it('is empty once the patch is applied, for DaemonSets no rule matches, and for opted-out ones', () => {
    const aws = listed('aws-node');
    const [finding] = daemonSetFindings([aws], view, config);
    const fixed = jsonpatch.applyPatch(structuredClone(aws), (finding as { patch: JsonPatchOp[] }).patch as jsonpatch.Operation[]).newDocument;
    const optedOut = listed('weave-net', '12', (ds) => (ds.metadata.annotations = { [SKIP_AFFINITY_ANNOTATION]: 'true' }));
    expect(daemonSetFindings([fixed, listed('node-exporter'), optedOut], view, config)).toEqual([]);
  });

  it("lists nothing where a cloud runs the cluster's Cilium (GKE anetd seen among the agent pods): the webhook would patch nothing", () => {
    const managed = new MemoryClusterView(config);
    managed.upsertPod({
      metadata: {
        name: 'anetd-x',
        namespace: 'kube-system',
        labels: { 'k8s-app': 'cilium' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'anetd', uid: 'u', controller: true }],
      },
      spec: { nodeName: 'n1', hostNetwork: true },
    });
    expect(daemonSetFindings([listed('calico-node'), listed('aws-node')], managed, config)).toEqual([]);
  });

  it('reports a conflicting DaemonSet as a conflict, with no patch', () => {
    const [finding] = daemonSetFindings([conflicting()], view, config);
    expect(finding).toMatchObject({ name: 'kube-flannel-ds', state: 'conflict' });
    expect(finding).not.toHaveProperty('patch');
    expect((finding as { detail: string }).detail).toContain('cni In [cilium]');
  });
});

describe('agentPlacement', () => {
  it('finds legacy-agent pods on migrated nodes and migrated nodes with no Cilium agent', () => {
    const view = new MemoryClusterView(config);
    view.upsertNode({ metadata: { name: 'migrated-1', labels: { cni: 'cilium' } } });
    view.upsertNode({ metadata: { name: 'migrated-2', labels: { cni: 'cilium' } } });
    view.upsertNode({ metadata: { name: 'legacy-1', labels: {} } });
    const dsPod = (name: string, node: string, owner: string, labels: Record<string, string> = {}) => ({
      metadata: {
        name,
        namespace: 'kube-system',
        labels,
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: owner, uid: 'u', controller: true }],
      },
      spec: { nodeName: node },
    });
    view.upsertPod(dsPod('aws-node-abc', 'migrated-1', 'aws-node'));
    view.upsertPod(dsPod('aws-node-def', 'legacy-1', 'aws-node'));
    view.upsertPod(dsPod('node-exporter-x', 'migrated-1', 'node-exporter'));
    // A legacy agent known only by its pod labels (the DaemonSet is not in the list).
    view.upsertPod(dsPod('renamed-calico-1', 'migrated-2', 'renamed-calico', { 'k8s-app': 'calico-node' }));
    view.upsertPod(dsPod('cilium-1', 'migrated-2', 'cilium', { 'k8s-app': 'cilium' }));
    const found = agentPlacement(view, [listed('aws-node')], config);
    expect(found.legacyOnMigrated.map((p) => `${p.node}:${p.name}:${p.rule}`)).toEqual([
      'migrated-1:aws-node-abc:aws-node',
      'migrated-2:renamed-calico-1:calico-node-labels',
    ]);
    expect(found.ciliumMissing).toEqual(['migrated-1']);
  });
});

class FakeApi implements ReconcilerApi {
  patches: Array<{ namespace: string; name: string; patch: JsonPatchOp[] }> = [];
  events: CoreV1Event[] = [];
  outcome: PatchOutcome = 'patched';
  constructor(
    public daemonSets: DaemonSetObject[],
    public labels: Record<string, string> = {},
  ) {}
  async listDaemonSets() {
    return structuredClone(this.daemonSets);
  }
  async listModeLabels() {
    return { ...this.labels };
  }
  async patchDaemonSet(namespace: string, name: string, patch: JsonPatchOp[]) {
    this.patches.push({ namespace, name, patch });
    return this.outcome;
  }
  async createEvent(event: CoreV1Event) {
    this.events.push(event);
  }
  eventPatches: string[] = [];
  async patchEvent(_namespace: string, name: string) {
    this.eventPatches.push(name);
  }
}

function reconciler(api: FakeApi, overrides: { config?: Config; dryRun?: boolean; clock?: FakeClock } = {}) {
  const cfg = overrides.config ?? config;
  return new DaemonSetReconciler({
    api,
    view: new MemoryClusterView(cfg),
    config: cfg,
    log: pino({ level: 'silent' }),
    identity: 'test',
    dryRun: overrides.dryRun ?? false,
    isLeader: () => true,
    synced: () => true,
    clock: overrides.clock ?? new FakeClock(),
  });
}

describe('DaemonSetReconciler.pass', () => {
  it('patches an out-of-line DaemonSet with a resourceVersion test first, records an Event, and never touches a conflicting one', async () => {
    const api = new FakeApi([listed('aws-node', '42'), conflicting(), listed('node-exporter')]);
    const results = await reconciler(api).pass();
    expect(results).toEqual([
      { namespace: 'kube-system', name: 'aws-node', outcome: 'patched', mode: 'enforce' },
      { namespace: 'kube-system', name: 'kube-flannel-ds', outcome: 'conflict', mode: 'enforce' },
    ]);
    expect(api.patches).toHaveLength(1);
    const patch = api.patches[0]!.patch;
    expect(patch[0]).toEqual({ op: 'test', path: '/metadata/resourceVersion', value: '42' });
    expect(patch.slice(1).every((op) => op.op === 'add')).toBe(true);
    const byObject = Object.fromEntries(api.events.map((e) => [e.involvedObject.name, e]));
    expect(byObject['aws-node']).toMatchObject({
      type: 'Normal',
      reason: 'AffinityReconciled',
      involvedObject: { apiVersion: 'apps/v1', kind: 'DaemonSet', namespace: 'kube-system' },
    });
    expect(byObject['kube-flannel-ds']).toMatchObject({ type: 'Warning', reason: 'AffinityConflict' });
  });

  it('in dry-run, or where the namespace puts the DaemonSet webhook in warn or audit, patches nothing', async () => {
    const dry = new FakeApi([listed('aws-node')]);
    expect((await reconciler(dry, { dryRun: true }).pass()).map((r) => r.outcome)).toEqual(['dry-run']);
    expect(dry.patches).toEqual([]);
    expect(dry.events[0]).toMatchObject({ reason: 'AffinityOutOfLine', action: 'DryRun' });

    const warned = new FakeApi([listed('aws-node')], { 'kube-system': 'warn' });
    expect(await reconciler(warned).pass()).toEqual([{ namespace: 'kube-system', name: 'aws-node', outcome: 'mode', mode: 'warn' }]);
    expect(warned.patches).toEqual([]);

    const auditCluster = new FakeApi([listed('aws-node')]);
    const cfg = parseConfig({ modes: { daemonsets: 'audit' } });
    expect((await reconciler(auditCluster, { config: cfg }).pass()).map((r) => r.outcome)).toEqual(['mode']);
    // ...unless the namespace enforces.
    const enforcedNs = new FakeApi([listed('aws-node')], { 'kube-system': 'enforce' });
    expect((await reconciler(enforcedNs, { config: cfg }).pass()).map((r) => r.outcome)).toEqual(['patched']);
    expect(MODE_LABEL).toBe('cilium-migration-guard.io/mode');
  });

  it('writes a report-only Event once per DaemonSet version, not at every pass', async () => {
    const api = new FakeApi([conflicting(), listed('aws-node')]);
    const r = reconciler(api, { dryRun: true });
    await r.pass();
    await r.pass();
    expect(api.events.map((e) => e.reason).sort()).toEqual(['AffinityConflict', 'AffinityOutOfLine']);
    expect(api.eventPatches).toEqual([]);
    api.daemonSets = [conflicting(), listed('aws-node', '99')]; // aws-node written again, still out of line
    await r.pass();
    // The same Event again (count 2), for aws-node only.
    expect(api.eventPatches).toEqual([api.events.find((e) => e.reason === 'AffinityOutOfLine')!.metadata.name]);
  });

  it('keeps to perMinute: the rest is deferred, and a changed DaemonSet does not use up the budget', async () => {
    const cfg = parseConfig({ reconciler: { enabled: true, perMinute: 1 } });
    const clock = new FakeClock();
    const api = new FakeApi([listed('aws-node'), listed('weave-net'), listed('kube-router')]);
    api.outcome = 'changed';
    const r = reconciler(api, { config: cfg, clock });
    expect((await r.pass()).map((x) => x.outcome)).toEqual(['changed', 'changed', 'changed']);
    api.outcome = 'patched';
    expect((await r.pass()).map((x) => x.outcome)).toEqual(['patched', 'deferred', 'deferred']);
    expect(api.patches).toHaveLength(4);
    await clock.advance(60_001);
    expect((await r.pass()).map((x) => x.outcome)).toEqual(['patched', 'deferred', 'deferred']);
  });
});
