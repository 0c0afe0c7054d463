// The live cluster view against a real kube-apiserver (test/harness/controlplane.ts): sync with
// the CiliumNode CRD missing, then install it; node label changes, CiliumNodes, Cilium agent pods
// (Ready, terminating, deleted) and unscheduled pods (bound through pods/binding) show up in the
// view within a bounded time.
//
// Agent pod status is set by hand with `kubectl patch --subresource=status`, so those pods go to
// a node that kwok does not manage (kwok would mark them Ready by itself).

import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { kubeconfigAccess } from '../../src/cluster/kube-config.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config.js';
import { startLiveView, type LiveView } from '../../src/cluster/informers.js';
import { ciliumReadiness } from '../../src/cluster/readiness.js';
import { isSynced } from '../../src/cluster/view.js';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';

const CRD = fileURLToPath(new URL('./crds/ciliumnodes.yaml', import.meta.url));
const UNMANAGED = 'node-manual';
/** Bound on every "the view reflects it" wait. */
const within = { timeout: 20_000, interval: 100 };

describe('live cluster view (informers) against kube-apiserver', () => {
  let cp: ControlPlane | undefined;
  let live: LiveView | undefined;
  const logs: Array<Record<string, unknown>> = [];

  const plane = (): ControlPlane => {
    if (!cp) throw new Error('control plane not started');
    return cp;
  };
  const view = () => {
    if (!live) throw new Error('live view not started');
    return live.view;
  };
  const apply = (obj: unknown) => plane().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });

  beforeAll(async () => {
    cp = await startControlPlane({
      nodes: [{ name: 'node-legacy' }, { name: 'node-cilium', labels: { cni: 'cilium' } }],
      log: (l) => process.stderr.write(`[controlplane] ${l}\n`),
    });
    // A node without kwok's annotation: nothing changes its pods' status but us.
    await apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: UNMANAGED, labels: { cni: 'cilium' } } });

    const kc = kubeconfigAccess([cp.kubeconfigPath], { explicit: true });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        const line = JSON.parse(chunk.toString()) as Record<string, unknown>;
        logs.push(line);
        if ((line.level as number) >= 40) process.stderr.write(`[live-view] ${chunk.toString()}`);
        done();
      },
    });
    // The CiliumNode CRD is not installed yet: the view must still sync.
    live = startLiveView(kc, defaultConfig, pino({ level: 'info' }, sink), { backoff: { initialMs: 200, maxMs: 2_000 } });
  }, 40 * 60_000);

  afterAll(async () => {
    await live?.stop();
    await cp?.stop();
  }, 60_000);

  it('syncs while the CiliumNode CRD is missing, warning about it', async () => {
    await Promise.race([
      live!.whenSynced(),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`not synced after 30 s: ${JSON.stringify(view().syncState())}`)), 30_000)),
    ]);
    expect(isSynced(view())).toBe(true);
    expect(
      view()
        .nodes()
        .map((n) => n.metadata.name)
        .sort(),
    ).toEqual(['node-cilium', 'node-legacy', UNMANAGED]);
    expect(view().node('node-cilium')?.metadata.labels?.cni).toBe('cilium');
    expect(view().ciliumNode('node-cilium')).toBeUndefined();
    expect(logs.some((l) => l.cache === 'ciliumnodes' && l.level === 40 && String(l.msg).includes('is not installed'))).toBe(true);
  });

  it('reflects node label changes', async () => {
    await plane().kubectl(['label', 'node', 'node-legacy', 'cni=cilium']);
    await expect.poll(() => view().node('node-legacy')?.metadata.labels?.cni, within).toBe('cilium');
    await plane().kubectl(['label', 'node', 'node-legacy', 'cni-']);
    await expect.poll(() => view().node('node-legacy')?.metadata.labels?.cni, within).toBeUndefined();
    // Trimmed: metadata and, of its status, only the NetworkUnavailable condition (kwok's node-initialize
    // stage writes one; cilium-operator's CiliumIsUp is the one readiness reads); no managedFields.
    const trimmed = view().node('node-legacy')!;
    expect(Object.keys(trimmed)).toEqual(['metadata', 'status']);
    expect(trimmed.status?.conditions?.map((c) => c.type)).toEqual(['NetworkUnavailable']);
    expect(Object.keys(trimmed.status!)).toEqual(['conditions']);
    expect(view().node('node-legacy')!.metadata).not.toHaveProperty('managedFields');
  });

  it('picks up CiliumNodes once the CRD is installed; delete → gone', async () => {
    await plane().kubectl(['apply', '-f', CRD]);
    await plane().kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/ciliumnodes.cilium.io']);
    await apply({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNode',
      metadata: { name: 'node-cilium' },
      spec: { addresses: [{ type: 'InternalIP', ip: '10.255.0.1' }], ipam: { podCIDRs: ['10.245.1.0/24'] } },
    });
    await expect.poll(() => view().ciliumNode('node-cilium')?.spec?.ipam?.podCIDRs, within).toEqual(['10.245.1.0/24']);
    expect(logs.some((l) => l.cache === 'ciliumnodes' && String(l.msg).includes('is installed now'))).toBe(true);

    await plane().kubectl(['delete', 'ciliumnode', 'node-cilium']);
    await expect.poll(() => view().ciliumNode('node-cilium'), within).toBeUndefined();
  });

  it('follows a Cilium agent pod: not Ready → Ready → terminating → deleted', async () => {
    await apply({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: UNMANAGED }, spec: { ipam: { podCIDRs: ['10.245.2.0/24'] } } });
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'cilium-e2e', namespace: 'kube-system', labels: { 'k8s-app': 'cilium' } },
      spec: { nodeName: UNMANAGED, hostNetwork: true, containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium:v1.17.4' }] },
    });
    await expect
      .poll(
        () =>
          view()
            .agentPodsOn(UNMANAGED)
            .map((p) => p.metadata.name),
        within,
      )
      .toEqual(['cilium-e2e']);
    await expect.poll(() => ciliumReadiness(view(), UNMANAGED, defaultConfig).gaps, within).toEqual(['agent-not-ready']);

    const readyAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    await plane().kubectl([
      'patch',
      'pod',
      'cilium-e2e',
      '-n',
      'kube-system',
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: readyAt }] } }),
    ]);
    await expect
      .poll(() => ciliumReadiness(view(), UNMANAGED, defaultConfig), within)
      .toEqual({
        ready: true,
        gaps: [],
        agentPod: 'kube-system/cilium-e2e',
        readySince: readyAt,
        ciliumSince: readyAt,
        ciliumSinceFrom: 'first-ready-seen',
      });

    // No kubelet confirms the deletion: the pod stays, terminating.
    await plane().kubectl(['delete', 'pod', 'cilium-e2e', '-n', 'kube-system', '--wait=false']);
    await expect.poll(() => ciliumReadiness(view(), UNMANAGED, defaultConfig).gaps, within).toEqual(['agent-terminating']);

    await plane().kubectl(['delete', 'pod', 'cilium-e2e', '-n', 'kube-system', '--grace-period=0', '--force']);
    await expect.poll(() => view().agentPodsOn(UNMANAGED), within).toEqual([]);
    expect(ciliumReadiness(view(), UNMANAGED, defaultConfig).gaps).toEqual(['no-agent-pod']);
  });

  it('ignores pods that are not Cilium agents', async () => {
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'not-an-agent', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
      spec: { nodeName: UNMANAGED, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
    });
    // Give the watch time to deliver it if the selector were wrong.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(view().agentPodsOn(UNMANAGED)).toEqual([]);
    await plane().kubectl(['delete', 'pod', 'not-an-agent', '-n', 'kube-system', '--grace-period=0', '--force']);
  });

  it('sees an unscheduled pod until it is bound', async () => {
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-unscheduled', namespace: 'default', labels: { app: 'web' } },
      // A scheduler nobody runs: the pod stays unscheduled until we bind it.
      spec: { schedulerName: 'e2e-nobody', containers: [{ name: 'web', image: 'registry.k8s.io/pause:3.10' }] },
    });
    await expect.poll(() => view().unscheduledPod('default', 'web-unscheduled')?.spec.schedulerName, within).toBe('e2e-nobody');

    const bound = await plane().api('POST', '/api/v1/namespaces/default/pods/web-unscheduled/binding', {
      apiVersion: 'v1',
      kind: 'Binding',
      metadata: { name: 'web-unscheduled' },
      target: { apiVersion: 'v1', kind: 'Node', name: UNMANAGED },
    });
    expect(bound.status).toBe(201);
    await expect.poll(() => view().unscheduledPod('default', 'web-unscheduled'), within).toBeUndefined();
  });

  it('stops cleanly', async () => {
    await live!.stop();
    expect(logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
    live = undefined;
  });
});
