// Smoke test of the local control plane harness: real kube-apiserver/etcd/kube-scheduler plus kwok.
import { readFile } from 'node:fs/promises';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startControlPlane, readPinnedVersions, POD_CIDR, type ControlPlane } from '../harness/controlplane.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('local control plane', () => {
  let cp: ControlPlane | undefined;
  const plane = (): ControlPlane => {
    if (!cp) throw new Error('control plane not started');
    return cp;
  };

  beforeAll(async () => {
    cp = await startControlPlane({
      nodes: [{ name: 'node-legacy' }, { name: 'node-cilium', labels: { cni: 'cilium' } }],
      log: (l) => process.stderr.write(`[controlplane] ${l}\n`),
    });
  }, 20 * 60_000);

  afterAll(async () => {
    await cp?.stop();
  }, 60_000);

  it('serves the pinned Kubernetes version', async () => {
    const { KUBE_VERSION } = readPinnedVersions();
    const r = await plane().kubectl(['version', '-o', 'json']);
    const v = JSON.parse(r.stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    expect(v.serverVersion.gitVersion).toBe(KUBE_VERSION);
    expect(v.clientVersion.gitVersion).toBe(KUBE_VERSION);
  }, 60_000);

  it('has Ready fake nodes with the requested labels', async () => {
    const r = await plane().kubectl(['get', 'nodes', '-o', 'json']);
    const nodes = (JSON.parse(r.stdout) as {
      items: Array<{ metadata: { name: string; labels?: Record<string, string> }; status: { conditions?: Array<{ type: string; status: string }> } }>;
    }).items;
    expect(nodes.map((n) => n.metadata.name).sort()).toEqual(['node-cilium', 'node-legacy']);
    for (const n of nodes) {
      expect(n.status.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    }
    expect(nodes.find((n) => n.metadata.name === 'node-cilium')?.metadata.labels?.cni).toBe('cilium');
    const selected = await plane().kubectl(['get', 'nodes', '-l', 'cni=cilium', '-o', 'name']);
    expect(selected.stdout.trim()).toBe('node/node-cilium');
  }, 60_000);

  it('schedules a pod with kube-scheduler and kwok runs it with a pod IP; the create is audited', async () => {
    const name = 'smoke-pod';
    await plane().kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'default', labels: { app: 'smoke' } },
        spec: { containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
      }),
    });

    let pod: { spec: { nodeName?: string }; status: { phase?: string; podIP?: string } } | undefined;
    const deadline = Date.now() + 45_000;
    while (Date.now() < deadline) {
      const r = await plane().kubectl(['get', 'pod', name, '-n', 'default', '-o', 'json']);
      pod = JSON.parse(r.stdout) as typeof pod;
      if (pod?.status.phase === 'Running' && pod.status.podIP) break;
      await sleep(500);
    }
    expect(pod?.spec.nodeName).toMatch(/^node-(legacy|cilium)$/);
    expect(pod?.status.phase).toBe('Running');
    const [prefix] = POD_CIDR.split('.0.0/');
    expect(pod?.status.podIP?.startsWith(`${prefix}.`)).toBe(true);

    const events = (await readFile(plane().auditLogPath, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { verb: string; stage: string; objectRef?: { resource?: string; subresource?: string; name?: string } });
    const created = events.find((e) => e.verb === 'create' && e.objectRef?.resource === 'pods' && !e.objectRef.subresource && e.objectRef.name === name);
    expect(created?.stage).toBe('ResponseComplete');
    const bound = events.find((e) => e.verb === 'create' && e.objectRef?.subresource === 'binding' && e.objectRef.name === name);
    expect(bound).toBeDefined();
  }, 60_000);
});
