import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config.js';
import { ciliumReadiness } from '../../src/cluster/readiness.js';
import { SnapshotError, loadSnapshot, parseSnapshot } from '../../src/cluster/snapshot.js';
import { isSynced } from '../../src/cluster/view.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/cluster-state.yaml', import.meta.url));

describe('the example snapshot (examples/cluster-state.yaml)', () => {
  const { view, counts, skipped } = loadSnapshot(EXAMPLE, defaultConfig);

  it('loads every object and skips nothing', () => {
    expect(counts).toEqual({ Node: 3, Pod: 5, CiliumNode: 1, CiliumEndpoint: 0, CiliumConfig: 0 });
    expect(skipped).toEqual({});
  });

  it('is synced', () => {
    expect(isSynced(view)).toBe(true);
    expect(view.syncState()).toMatchObject({ nodes: true, ciliumnodes: true, agentPods: true, unscheduledPods: true });
    expect(view.syncState()).toMatchObject({ pods: true, ciliumEndpoints: true, ciliumConfig: true });
  });

  it('has the three nodes, labelled as described', () => {
    expect(
      view
        .nodes()
        .map((n) => n.metadata.name)
        .sort(),
    ).toEqual(['node-cilium-pending', 'node-cilium-ready', 'node-legacy-1']);
    expect(view.node('node-legacy-1')?.metadata.labels?.cni).toBeUndefined();
    expect(view.node('node-cilium-ready')?.metadata.labels?.cni).toBe('cilium');
    expect(view.node('node-cilium-pending')?.metadata.labels?.cni).toBe('cilium');
    expect(view.node('node-missing')).toBeUndefined();
  });

  it('has a CiliumNode for node-cilium-ready only', () => {
    expect(view.ciliumNode('node-cilium-ready')?.spec?.ipam?.podCIDRs).toEqual(['10.245.1.0/24']);
    expect(view.ciliumNode('node-cilium-pending')).toBeUndefined();
  });

  it('indexes the agent pods by node', () => {
    expect(view.agentPodsOn('node-cilium-ready').map((p) => p.metadata.name)).toEqual(['cilium-7xk2p']);
    expect(view.agentPodsOn('node-cilium-pending').map((p) => p.metadata.name)).toEqual(['cilium-q9z4m']);
    expect(view.agentPodsOn('node-legacy-1')).toEqual([]);
    const agent = view.agentPodsOn('node-cilium-ready')[0]!;
    expect(agent.spec.hostNetwork).toBe(true);
    expect(agent.metadata.ownerReferences).toEqual([
      { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'cilium', uid: 'e824931a-5cbf-444a-9842-20fd2a059ded', controller: true },
    ]);
  });

  it('finds the unscheduled pod, and only it', () => {
    const pod = view.unscheduledPod('default', 'web-7d4b9c-x2x1z');
    expect(pod?.spec.nodeName).toBeUndefined();
    expect(pod?.status?.phase).toBe('Pending');
    expect(view.unscheduledPod('default', 'web-7d4b9c-8kq2n')).toBeUndefined();
    expect(view.unscheduledPod('other', 'web-7d4b9c-x2x1z')).toBeUndefined();
  });

  it('has every bound pod by node', () => {
    expect(
      view
        .podsOn('node-cilium-ready')
        .map((p) => p.metadata.name)
        .sort(),
    ).toEqual(['api-5f6d8b-m4v7c', 'cilium-7xk2p']);
    expect(view.podsOn('node-legacy-1').map((p) => p.metadata.name)).toEqual(['web-7d4b9c-8kq2n']);
  });

  it('makes node-cilium-ready Cilium-ready and node-cilium-pending not', () => {
    expect(ciliumReadiness(view, 'node-cilium-ready', defaultConfig)).toEqual({
      ready: true,
      gaps: [],
      agentPod: 'kube-system/cilium-7xk2p',
      readySince: '2025-06-02T09:14:41Z',
      // The example node carries cilium-operator's CiliumIsUp condition, set when the agent first turned Ready.
      ciliumSince: '2025-06-02T09:14:41Z',
      ciliumSinceFrom: 'cilium-is-up',
    });
    expect(ciliumReadiness(view, 'node-cilium-pending', defaultConfig)).toEqual({
      ready: false,
      // The example's pending node still carries Cilium's startup taint, as cilium-operator leaves it until the agent is Ready.
      gaps: ['agent-not-ready-taint', 'no-cilium-node', 'agent-not-ready'],
      agentPod: 'kube-system/cilium-q9z4m',
      detail: { taint: 'node.cilium.io/agent-not-ready' },
    });
  });
});

describe('parseSnapshot', () => {
  const node = (name: string, labels: Record<string, string> = {}): string =>
    `apiVersion: v1\nkind: Node\nmetadata:\n  name: ${name}\n  labels: ${JSON.stringify(labels)}\n`;

  it('reads multi-document YAML of single objects and Lists, including CiliumEndpoints', () => {
    const text = [
      node('n1', { cni: 'cilium' }),
      `apiVersion: v1
kind: List
items:
- apiVersion: cilium.io/v2
  kind: CiliumNode
  metadata: { name: n1 }
  spec: { ipam: { podCIDRs: [10.245.0.0/24] } }
- apiVersion: v1
  kind: Pod
  metadata: { name: cilium-abc, namespace: kube-system, labels: { k8s-app: cilium } }
  spec: { nodeName: n1 }
  status: { conditions: [{ type: Ready, status: "True" }] }
`,
      `apiVersion: cilium.io/v2
kind: CiliumEndpoint
metadata: { name: api-1, namespace: default }
status:
  state: ready
  networking: { node: 10.0.0.1, addressing: [{ ipv4: 10.245.0.9 }] }
`,
      '', // an empty document (trailing ---) is fine
    ].join('---\n');
    const { view, counts, skipped } = parseSnapshot(text, defaultConfig);
    expect(counts).toEqual({ Node: 1, Pod: 1, CiliumNode: 1, CiliumEndpoint: 1, CiliumConfig: 0 });
    expect(skipped).toEqual({});
    expect(ciliumReadiness(view, 'n1', defaultConfig).ready).toBe(true);
    expect(view.ciliumEndpoint('default', 'api-1')?.status?.networking?.addressing).toEqual([{ ipv4: '10.245.0.9' }]);
  });

  it('reads typed API lists whose items carry no apiVersion/kind', () => {
    const text = `apiVersion: v1
kind: PodList
metadata: { resourceVersion: "12" }
items:
- metadata: { name: p1, namespace: default }
  spec: {}
`;
    const { view, counts } = parseSnapshot(text, defaultConfig);
    expect(counts.Pod).toBe(1);
    expect(view.unscheduledPod('default', 'p1')).toBeDefined();
  });

  it('skips unknown kinds and counts them', () => {
    const text = `apiVersion: v1
kind: List
items:
- { apiVersion: v1, kind: Service, metadata: { name: s1, namespace: default } }
- { apiVersion: v1, kind: Service, metadata: { name: s2, namespace: default } }
- { apiVersion: apps/v1, kind: DaemonSet, metadata: { name: cilium, namespace: kube-system } }
- { apiVersion: cilium.io/v2alpha1, kind: CiliumEndpointSlice, metadata: { name: ces-1 } }
- { apiVersion: v1, kind: Node, metadata: { name: n1 } }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: c, namespace: default }
`;
    const { counts, skipped } = parseSnapshot(text, defaultConfig);
    expect(counts.Node).toBe(1);
    expect(skipped).toEqual({ Service: 2, ConfigMap: 1, 'DaemonSet.v1.apps': 1, 'CiliumEndpointSlice.v2alpha1.cilium.io': 1 });
  });

  it("reads Cilium's cilium-config ConfigMap (in Cilium's namespace only) and the migration label's time from managedFields", () => {
    const text = `apiVersion: v1
kind: List
items:
- { apiVersion: v1, kind: ConfigMap, metadata: { name: cilium-config, namespace: default }, data: { disable-endpoint-crd: "false" } }
- { apiVersion: v1, kind: ConfigMap, metadata: { name: cilium-config, namespace: kube-system }, data: { disable-endpoint-crd: "true" } }
- apiVersion: v1
  kind: Node
  metadata:
    name: n1
    labels: { cni: cilium }
    managedFields: [{ manager: kubectl-label, operation: Update, time: "2025-06-02T09:00:00Z", fieldsType: FieldsV1, fieldsV1: { "f:metadata": { "f:labels": { "f:cni": {} } } } }]
`;
    const { view, counts, skipped } = parseSnapshot(text, defaultConfig);
    expect(counts.CiliumConfig).toBe(1);
    expect(skipped).toEqual({ ConfigMap: 1 });
    expect(view.ciliumConfig()).toEqual({ endpointCRDDisabled: true });
    expect(view.node('n1')?.labelSetAt).toEqual({ cni: '2025-06-02T09:00:00Z' });
  });

  it('accepts an empty file as an empty, synced snapshot', () => {
    const { view, counts } = parseSnapshot('', defaultConfig);
    expect(counts).toEqual({ Node: 0, Pod: 0, CiliumNode: 0, CiliumEndpoint: 0, CiliumConfig: 0 });
    expect(isSynced(view)).toBe(true);
  });

  it('honours the configured Cilium namespace and agent labels', () => {
    const text = `apiVersion: v1
kind: Pod
metadata: { name: agent, namespace: cilium, labels: { app.kubernetes.io/name: cilium-agent } }
spec: { nodeName: n1 }
`;
    const custom = { cilium: { ...defaultConfig.cilium, namespace: 'cilium', agentLabels: { 'app.kubernetes.io/name': 'cilium-agent' } } };
    expect(parseSnapshot(text, custom).view.agentPodsOn('n1')).toHaveLength(1);
    expect(parseSnapshot(text, defaultConfig).view.agentPodsOn('n1')).toHaveLength(0);
  });

  describe('errors', () => {
    it.each([
      ['malformed YAML in the 2nd document', `${node('n1')}---\nkind: Node\nmetadata: { name: [oops\n`, /^state\.yaml: document 1 is not valid YAML: /],
      [
        'a document that is not an object',
        `${node('n1')}---\n- just\n- a list\n`,
        /^state\.yaml: document 1: expected a Kubernetes object or List, got an array/,
      ],
      [
        'an item without a name',
        `apiVersion: v1\nkind: List\nitems:\n- ${'{ apiVersion: v1, kind: Node, metadata: { name: n1 } }'}\n- { apiVersion: v1, kind: Pod, metadata: { namespace: default } }\n`,
        /^state\.yaml: document 0, item 1: Pod in namespace "default": metadata\.name is missing or empty$/,
      ],
      [
        'an item without a kind',
        `apiVersion: v1\nkind: List\nitems:\n- { apiVersion: v1, metadata: { name: x } }\n`,
        /^state\.yaml: document 0, item 0: apiVersion and kind are required/,
      ],
      ['an item that is not an object', `apiVersion: v1\nkind: List\nitems:\n- 42\n`, /^state\.yaml: document 0, item 0: expected an object, got number/],
      [
        'a single object without metadata',
        `${node('n1')}---\napiVersion: cilium.io/v2\nkind: CiliumNode\n`,
        /^state\.yaml: document 1: CiliumNode: metadata is missing/,
      ],
    ])('%s → an error naming the file and index', (_label, text, message) => {
      expect(() => parseSnapshot(text, defaultConfig, 'state.yaml')).toThrow(SnapshotError);
      expect(() => parseSnapshot(text, defaultConfig, 'state.yaml')).toThrow(message);
    });

    describe('loadSnapshot', () => {
      const dir = mkdtempSync(join(tmpdir(), 'cmg-snapshot-'));
      afterAll(() => rmSync(dir, { recursive: true, force: true }));

      it('names the file in a parse error', () => {
        const path = join(dir, 'bad.yaml');
        writeFileSync(path, 'apiVersion: v1\nkind: List\nitems:\n- { apiVersion: v1, kind: Node, metadata: {} }\n');
        expect(() => loadSnapshot(path, defaultConfig)).toThrow(`${path}: document 0, item 0: Node: metadata.name is missing or empty`);
      });

      it('names the file when it cannot be read', () => {
        expect(() => loadSnapshot(join(dir, 'missing.yaml'), defaultConfig)).toThrow(/^cannot read snapshot file .*missing\.yaml: ENOENT/);
      });
    });
  });
});
