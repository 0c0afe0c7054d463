// Workloads on the local control plane as a user deploys them: the upstream DaemonSet fixtures
// (test/fixtures/daemonsets) with the ServiceAccounts their manifests ship, and where the
// DaemonSet controller put their pods. Shared by the end-to-end tests and `npm run local`.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { waitFor, type ControlPlane, type KubectlResult } from './controlplane.js';
import { ROOT } from './guard.js';

export const DAEMONSET_FIXTURES = join(ROOT, 'test', 'fixtures', 'daemonsets');

interface DaemonSetJson {
  spec: { template: { spec: { serviceAccountName?: string } } };
  metadata: { name: string; namespace: string; uid?: string; generation?: number; resourceVersion?: string };
  status?: {
    desiredNumberScheduled?: number;
    currentNumberScheduled?: number;
    numberReady?: number;
    numberAvailable?: number;
    updatedNumberScheduled?: number;
    observedGeneration?: number;
  };
}

export interface PodSummary {
  name: string;
  namespace: string;
  uid: string;
  node: string | undefined;
  phase: string | undefined;
  ready: boolean;
  terminating: boolean;
  owner: { kind: string; name: string; uid: string } | undefined;
}

export function fixturePath(name: string): string {
  return join(DAEMONSET_FIXTURES, `${name}.yaml`);
}

function readFixture(name: string): DaemonSetJson {
  return parse(readFileSync(fixturePath(name), 'utf8')) as DaemonSetJson;
}

/**
 * Applies an upstream DaemonSet fixture with `kubectl apply -f`, after creating what its upstream
 * manifest creates alongside it: the namespace and the ServiceAccount its pods run as (the
 * ServiceAccount admission plugin refuses pods whose ServiceAccount does not exist, so without it
 * the DaemonSet controller could create no pod).
 */
export async function applyDaemonSetFixture(
  cp: ControlPlane,
  name: string,
  opts: { allowFail?: boolean; /** Changes the object before it is applied (through stdin instead of the file). */ edit?: (ds: any) => void } = {},
): Promise<KubectlResult> {
  const ds = readFixture(name);
  await cp.createNamespace(ds.metadata.namespace);
  const sa = ds.spec.template.spec.serviceAccountName;
  if (sa && sa !== 'default') {
    await cp.kubectl(['create', 'serviceaccount', sa, '-n', ds.metadata.namespace], { allowFail: true }); // AlreadyExists is fine
  }
  const kopts = opts.allowFail ? { allowFail: true } : {};
  if (!opts.edit) return cp.kubectl(['apply', '-f', fixturePath(name)], kopts);
  opts.edit(ds);
  return cp.kubectl(['apply', '-f', '-'], { ...kopts, input: JSON.stringify(ds) });
}

/**
 * Creates the namespace and ServiceAccount of every DaemonSet fixture, as their upstream manifests
 * do, so that `kubectl apply -f test/fixtures/daemonsets/<any>.yaml` gets pods.
 */
export async function createFixtureServiceAccounts(cp: ControlPlane): Promise<void> {
  for (const file of readdirSync(DAEMONSET_FIXTURES)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const ds = readFixture(file.replace(/\.yaml$/, ''));
    await cp.createNamespace(ds.metadata.namespace);
    const sa = ds.spec.template.spec.serviceAccountName;
    if (sa && sa !== 'default') await cp.kubectl(['create', 'serviceaccount', sa, '-n', ds.metadata.namespace], { allowFail: true });
  }
}

export function summarize(pod: any): PodSummary {
  const owner = (pod.metadata.ownerReferences ?? []).find((o: any) => o.controller);
  return {
    name: pod.metadata.name,
    namespace: pod.metadata.namespace,
    uid: pod.metadata.uid,
    node: pod.spec.nodeName || undefined,
    phase: pod.status?.phase,
    ready: (pod.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True'),
    terminating: Boolean(pod.metadata.deletionTimestamp),
    owner: owner ? { kind: owner.kind, name: owner.name, uid: owner.uid } : undefined,
  };
}

/** Pods whose controller is the given object (DaemonSet, ReplicaSet, ...), terminating ones included. */
export async function podsOwnedBy(cp: ControlPlane, namespace: string, kind: string, name: string): Promise<PodSummary[]> {
  const r = await cp.api('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`);
  if (r.status !== 200) throw new Error(`listing pods in ${namespace}: HTTP ${r.status} ${r.body}`);
  return (JSON.parse(r.body) as { items: any[] }).items.map(summarize).filter((p) => p.owner?.kind === kind && p.owner.name === name);
}

/**
 * Waits until the DaemonSet's pods (not terminating) run Ready on exactly `nodes`, one per node,
 * and the DaemonSet controller's own status agrees (observed, scheduled, ready, available,
 * updated); returns them sorted by node.
 */
export async function waitForDaemonSetOn(cp: ControlPlane, namespace: string, name: string, nodes: string[], timeoutMs = 60_000): Promise<PodSummary[]> {
  const want = [...nodes].sort();
  let last = '';
  try {
    return await waitFor(
      `DaemonSet ${namespace}/${name} running on exactly [${want.join(', ')}]`,
      async () => {
        const r = await cp.api('GET', `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/daemonsets/${encodeURIComponent(name)}`);
        if (r.status !== 200) return undefined;
        const ds = JSON.parse(r.body) as DaemonSetJson;
        const pods = (await podsOwnedBy(cp, namespace, 'DaemonSet', name)).filter((p) => !p.terminating);
        const on = pods.map((p) => p.node ?? '(unscheduled)').sort();
        last = `pods on [${on.join(', ')}], status ${JSON.stringify(ds.status ?? {})}`;
        const settled =
          JSON.stringify(on) === JSON.stringify(want) &&
          pods.every((p) => p.ready) &&
          (await podsOwnedBy(cp, namespace, 'DaemonSet', name)).every((p) => !p.terminating) &&
          ds.status?.observedGeneration === ds.metadata.generation &&
          ds.status?.desiredNumberScheduled === want.length &&
          ds.status?.numberReady === want.length &&
          ds.status?.numberAvailable === want.length &&
          ds.status?.updatedNumberScheduled === want.length;
        return settled ? pods.sort((a, b) => (a.node ?? '').localeCompare(b.node ?? '')) : undefined;
      },
      { timeoutMs, intervalMs: 300 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message.split('\n')[0]}; last seen: ${last}`, { cause: err });
  }
}
