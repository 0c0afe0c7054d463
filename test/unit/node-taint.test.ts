// The node-taint webhook's pure decision: which Node CREATEs get Cilium's startup taint, and the
// shape of the patch (only adds; the kubelet's own taints and labels stay; idempotent).

import fc from 'fast-check';
import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import type { Decision } from '../../src/admission/decision.js';
import { BadReview } from '../../src/admission/review.js';
import type { AdmissionRequest, Operation } from '../../src/admission/types.js';
import { parseConfig } from '../../src/config.js';
import { decideNodeTaint, nodeTaintHandler, planTaint, startupTaint } from '../../src/webhooks/node-taint.js';

const config = parseConfig({});
const TAINT = { key: 'node.cilium.io/agent-not-ready', value: 'true', effect: 'NoExecute' };

/** A Node as the kubelet registers it (pkg/kubelet/kubelet_node_status.go initialNode): labels, an annotation, its own taints. */
function kubeletNode(labels: Record<string, string>, taints?: unknown[]): any {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: 'ip-10-0-1-23.ec2.internal',
      labels: { 'kubernetes.io/hostname': 'ip-10-0-1-23.ec2.internal', 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', ...labels },
      annotations: { 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' },
    },
    spec: { providerID: 'aws:///eu-west-1a/i-0123456789abcdef0', ...(taints ? { taints } : {}) },
    status: { conditions: [] },
  };
}

function nodeRequest(node: unknown, operation: Operation = 'CREATE', oldObject?: unknown): AdmissionRequest {
  return {
    uid: 'uid-1',
    kind: { group: '', version: 'v1', kind: 'Node' },
    resource: { group: '', version: 'v1', resource: 'nodes' },
    operation,
    name: (node as any)?.metadata?.name,
    userInfo: { username: 'system:node:ip-10-0-1-23.ec2.internal', groups: ['system:nodes', 'system:authenticated'] },
    object: node,
    ...(oldObject ? { oldObject } : {}),
  };
}

function apply(node: any, decision: Decision): any {
  if (!decision.patch) return node;
  // validateOperation=true: every op must be valid against the document, as the API server requires.
  return jsonpatch.applyPatch(structuredClone(node), decision.patch as jsonpatch.Operation[], true, false).newDocument;
}

describe('which nodes are tainted', () => {
  it('a node registering with the migration label gets the taint, and a warning saying so', () => {
    const node = kubeletNode({ cni: 'cilium' });
    const decision = decideNodeTaint(nodeRequest(node), config);
    expect(decision).toMatchObject({ allowed: true, reason: 'tainted', node: 'ip-10-0-1-23.ec2.internal' });
    expect(decision.audit).toEqual({ action: 'tainted', taint: 'node.cilium.io/agent-not-ready=true:NoExecute' });
    expect(decision.warnings).toEqual([
      'cilium-migration-guard added taint node.cilium.io/agent-not-ready=true:NoExecute to node ip-10-0-1-23.ec2.internal (labelled cni=cilium)',
    ]);
    expect(apply(node, decision).spec.taints).toEqual([TAINT]);
  });

  it.each([
    ['without the label', {}],
    ['with another value of the label', { cni: 'aws' }],
    ['with the value under another key', { 'example.com/cni': 'cilium' }],
  ])('a node %s is left alone', (_what, labels) => {
    const decision = decideNodeTaint(nodeRequest(kubeletNode(labels)), config);
    expect(decision).toMatchObject({ allowed: true, reason: 'node-not-migrated' });
    expect(decision.patch).toBeUndefined();
  });

  it('a node without any labels is left alone', () => {
    const node = kubeletNode({});
    delete node.metadata.labels;
    expect(decideNodeTaint(nodeRequest(node), config)).toMatchObject({ allowed: true, reason: 'node-not-migrated' });
  });

  it.each(['UPDATE', 'DELETE', 'CONNECT'] as const)('%s is never touched, even of a labelled node without the taint', (operation) => {
    const node = kubeletNode({ cni: 'cilium' });
    const decision = decideNodeTaint(nodeRequest(node, operation, node), config);
    expect(decision).toMatchObject({ allowed: true, reason: 'not-create' });
    expect(decision.patch).toBeUndefined();
  });

  it('with nodeTaint.enabled: false nothing is tainted', () => {
    const decision = decideNodeTaint(nodeRequest(kubeletNode({ cni: 'cilium' })), parseConfig({ nodeTaint: { enabled: false } }));
    expect(decision).toMatchObject({ allowed: true, reason: 'disabled' });
    expect(decision.patch).toBeUndefined();
  });

  it("follows the configured label, key and effect (a key under the Cluster Autoscaler's ignore prefix)", () => {
    const custom = parseConfig({
      nodeLabel: 'io.cilium.migration/cilium-default=true',
      cilium: { agentNotReadyTaintKey: 'ignore-taint.cluster-autoscaler.kubernetes.io/cilium-agent-not-ready' },
      nodeTaint: { effect: 'NoSchedule' },
    });
    const node = kubeletNode({ 'io.cilium.migration/cilium-default': 'true' });
    const decision = decideNodeTaint(nodeRequest(node), custom);
    expect(apply(node, decision).spec.taints).toEqual([
      { key: 'ignore-taint.cluster-autoscaler.kubernetes.io/cilium-agent-not-ready', value: 'true', effect: 'NoSchedule' },
    ]);
    expect(decideNodeTaint(nodeRequest(kubeletNode({ cni: 'cilium' })), custom).reason).toBe('node-not-migrated');
  });
});

describe('the patch', () => {
  const labelled = { cni: 'cilium' };

  it('spec without taints: adds /spec/taints', () => {
    const decision = decideNodeTaint(nodeRequest(kubeletNode(labelled)), config);
    expect(decision.patch).toEqual([{ op: 'add', path: '/spec/taints', value: [TAINT] }]);
  });

  it('no spec at all: adds /spec with the taint', () => {
    const node = kubeletNode(labelled);
    delete node.spec;
    const decision = decideNodeTaint(nodeRequest(node), config);
    expect(decision.patch).toEqual([{ op: 'add', path: '/spec', value: { taints: [TAINT] } }]);
    expect(apply(node, decision).spec).toEqual({ taints: [TAINT] });
  });

  it('spec.taints: null counts as absent', () => {
    const node = kubeletNode(labelled);
    node.spec.taints = null;
    expect(apply(node, decideNodeTaint(nodeRequest(node), config)).spec.taints).toEqual([TAINT]);
  });

  it("the kubelet's own taints (--register-with-taints) stay, in order, and ours comes last; nothing else changes", () => {
    const own = [
      { key: 'dedicated', value: 'gpu', effect: 'NoSchedule' },
      { key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' },
      { key: 'example.com/drain', effect: 'NoExecute', timeAdded: '2026-01-01T00:00:00Z' },
    ];
    const node = kubeletNode(labelled, own);
    const decision = decideNodeTaint(nodeRequest(node), config);
    expect(decision.patch?.every((op) => op.op === 'add')).toBe(true);
    const after = apply(node, decision);
    expect(after.spec.taints).toEqual([...own, TAINT]);
    const { taints: _a, ...specAfter } = after.spec;
    const { taints: _b, ...specBefore } = node.spec;
    expect(specAfter).toEqual(specBefore);
    expect(after.metadata).toEqual(node.metadata);
    expect(after.status).toEqual(node.status);
  });

  it.each([
    ['the same taint', { key: 'node.cilium.io/agent-not-ready', value: 'true', effect: 'NoExecute' }],
    ['the key with another value and effect (a node pool configured by hand)', { key: 'node.cilium.io/agent-not-ready', value: 'pool', effect: 'NoSchedule' }],
    ['the key with no value', { key: 'node.cilium.io/agent-not-ready', effect: 'NoExecute' }],
  ])('a node that already has %s keeps it as it is: no patch', (_what, existing) => {
    const node = kubeletNode(labelled, [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }, existing]);
    const decision = decideNodeTaint(nodeRequest(node), config);
    expect(decision).toMatchObject({ allowed: true, reason: 'taint-present' });
    expect(decision.patch).toBeUndefined();
    expect(decision.audit?.action).toBe('present');
  });

  it('is idempotent: deciding on the patched node adds nothing, and applying the patch twice gives the same node', () => {
    const node = kubeletNode(labelled, [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }]);
    const decision = decideNodeTaint(nodeRequest(node), config);
    const once = apply(node, decision);
    expect(apply(once, decision)).toEqual(once);
    const again = decideNodeTaint(nodeRequest(once), config);
    expect(again.reason).toBe('taint-present');
    expect(again.patch).toBeUndefined();
  });

  it('a malformed spec gets no patch (the API server rejects such a Node anyway)', () => {
    const node = kubeletNode(labelled);
    node.spec.taints = 'oops';
    expect(decideNodeTaint(nodeRequest(node), config)).toMatchObject({ allowed: true, reason: 'invalid-spec' });
    node.spec = 'oops';
    expect(decideNodeTaint(nodeRequest(node), config)).toMatchObject({ allowed: true, reason: 'invalid-spec' });
  });

  it('property: for any list of other taints, the patch applies, keeps them all and adds exactly one taint with the key', () => {
    const otherTaint = fc.record(
      {
        key: fc.stringMatching(/^[a-z][a-z0-9.-]{0,20}(\/[a-z][a-z0-9-]{0,10})?$/).filter((k) => k !== TAINT.key),
        value: fc.stringMatching(/^[a-z0-9]{0,8}$/),
        effect: fc.constantFrom('NoSchedule', 'PreferNoSchedule', 'NoExecute'),
      },
      { requiredKeys: ['key', 'effect'] },
    );
    fc.assert(
      fc.property(fc.option(fc.array(otherTaint, { maxLength: 6 }), { nil: undefined }), (taints) => {
        const node = kubeletNode(labelled, taints);
        const decision = decideNodeTaint(nodeRequest(node), config);
        expect(decision.patch?.every((op) => op.op === 'add')).toBe(true);
        const after = apply(node, decision);
        expect(after.spec.taints).toEqual([...(taints ?? []), TAINT]);
        expect(decideNodeTaint(nodeRequest(after), config).patch).toBeUndefined();
      }),
    );
  });
});

describe('planTaint', () => {
  it('reports what is already there', () => {
    expect(planTaint({ spec: { taints: [{ key: TAINT.key, value: 'x', effect: 'NoSchedule' }] } }, startupTaint(config))).toEqual({
      outcome: 'present',
      existing: { key: TAINT.key, value: 'x', effect: 'NoSchedule' },
    });
  });
});

describe('nodeTaintHandler', () => {
  const handler = nodeTaintHandler(config);

  it('refuses requests about anything but Nodes, with a clear error', () => {
    const request = { ...nodeRequest(kubeletNode({ cni: 'cilium' })), kind: { group: 'apps', version: 'v1', kind: 'DaemonSet' } };
    expect(() => handler.handle(request)).toThrow(BadReview);
    expect(() => handler.handle(request)).toThrow('this webhook handles v1 Nodes, not apps/v1 DaemonSet');
  });

  it('refuses a CREATE without an object', () => {
    expect(() => handler.handle({ ...nodeRequest(undefined), object: undefined })).toThrow('request.object must hold the Node');
  });

  it('decides a well-formed request', () => {
    expect(handler.name).toBe('node-taint');
    expect((handler.handle(nodeRequest(kubeletNode({ cni: 'cilium' }))) as Decision).reason).toBe('tainted');
  });
});

describe('nodeTaint config', () => {
  it('defaults: on, NoExecute, stuck after 10 minutes, checked every minute', () => {
    expect(parseConfig({}).nodeTaint).toEqual({ enabled: true, effect: 'NoExecute', stuckAfterSeconds: 600, checkIntervalSeconds: 60 });
  });

  it.each([
    [{ effect: 'PreferNoSchedule' }, 'nodeTaint.effect'],
    [{ stuckAfterSeconds: 0 }, 'nodeTaint.stuckAfterSeconds'],
    [{ checkIntervalSeconds: 'often' }, 'nodeTaint.checkIntervalSeconds'],
    [{ removeStuck: true }, 'nodeTaint'],
  ])('rejects %j, naming the field', (nodeTaint, field) => {
    expect(() => parseConfig({ nodeTaint })).toThrow(field);
  });
});
