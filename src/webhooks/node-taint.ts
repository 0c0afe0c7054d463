// Mutating webhook: new migrated nodes are born tainted.
// A Node CREATE (the kubelet registering its node) that carries the migration label gets Cilium's
// startup taint, the one cilium-operator removes once the Cilium agent on the node is Ready
// (operator/watchers/node_taint.go). The scheduler then keeps every pod that does not tolerate it
// off the node until Cilium runs there, instead of binding it and being refused by the pod webhook.
// Pure: (request, config) → decision. UPDATEs are never touched: whoever removes the taint later
// (cilium-operator, a person) must not see it come back.

import { allowed, patched, type Decision } from '../admission/decision.js';
import type { AdmissionHandler } from '../admission/handler.js';
import { BadReview } from '../admission/review.js';
import type { AdmissionRequest, JsonPatchOp } from '../admission/types.js';
import { isMigratedNode, nodeLabelText, type Config } from '../config.js';
import { isObject } from '../objects.js';

/** The value Cilium's docs use for the taint (`node.cilium.io/agent-not-ready=true:NoExecute`); the operator removes any value. */
export const STARTUP_TAINT_VALUE = 'true';

export interface StartupTaint {
  key: string;
  value: string;
  effect: Config['nodeTaint']['effect'];
}

export function startupTaint(config: Pick<Config, 'cilium' | 'nodeTaint'>): StartupTaint {
  return { key: config.cilium.agentNotReadyTaintKey, value: STARTUP_TAINT_VALUE, effect: config.nodeTaint.effect };
}

/** As kubectl writes a taint: key=value:Effect. */
export function taintText(taint: { key: string; value?: string; effect: string }): string {
  return `${taint.key}${taint.value ? `=${taint.value}` : ''}:${taint.effect}`;
}

function stringLabels(value: unknown): Record<string, string> {
  if (!isObject(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

export type TaintPlan =
  | { outcome: 'present'; existing: { key: string; value?: string; effect?: string } }
  | { outcome: 'patch'; patch: JsonPatchOp[] }
  | { outcome: 'invalid'; problem: string };

/**
 * The patch that adds `taint` to a Node object, or why none is needed. Only `add` operations;
 * every taint already there (the kubelet's --register-with-taints, TaintNodesByCondition's) is
 * kept as it is, in its place. The whole list is written, so applying the patch twice gives the
 * same object; a node that already has a taint with the key (any value or effect) is left alone.
 */
export function planTaint(node: unknown, taint: StartupTaint): TaintPlan {
  if (!isObject(node)) return { outcome: 'invalid', problem: 'the object is not a Node' };
  const spec = node.spec;
  if (spec === undefined || spec === null) return { outcome: 'patch', patch: [{ op: 'add', path: '/spec', value: { taints: [taint] } }] };
  if (!isObject(spec)) return { outcome: 'invalid', problem: 'spec is not an object' };
  const taints = spec.taints;
  if (taints === undefined || taints === null) return { outcome: 'patch', patch: [{ op: 'add', path: '/spec/taints', value: [taint] }] };
  if (!Array.isArray(taints)) return { outcome: 'invalid', problem: 'spec.taints is not a list' };
  const existing = taints.find((t): t is Record<string, unknown> => isObject(t) && t.key === taint.key);
  if (existing) {
    return {
      outcome: 'present',
      existing: {
        key: taint.key,
        ...(typeof existing.value === 'string' ? { value: existing.value } : {}),
        ...(typeof existing.effect === 'string' ? { effect: existing.effect } : {}),
      },
    };
  }
  return { outcome: 'patch', patch: [{ op: 'add', path: '/spec/taints', value: [...taints, taint] }] };
}

export function decideNodeTaint(request: AdmissionRequest, config: Config): Decision {
  const object = request.object;
  const metadata = isObject(object) && isObject(object.metadata) ? object.metadata : {};
  const name = (typeof metadata.name === 'string' && metadata.name) || request.name || '';
  const base = name ? { node: name } : {};
  const taint = startupTaint(config);
  const wanted = taintText(taint);

  // The kubelet registers once; later writes (status, labels, cilium-operator removing the
  // taint) are UPDATEs and must never get the taint back.
  if (request.operation !== 'CREATE') return { ...allowed('not-create', { audit: { action: 'skipped', reason: 'not-create' } }), ...base };
  if (!config.nodeTaint.enabled) return { ...allowed('disabled', { audit: { action: 'skipped', reason: 'disabled' } }), ...base };
  if (!isMigratedNode(stringLabels(metadata.labels), config)) {
    return { ...allowed('node-not-migrated', { audit: { action: 'skipped', reason: 'node-not-migrated' } }), ...base };
  }

  const plan = planTaint(object, taint);
  switch (plan.outcome) {
    case 'present':
      return { ...allowed('taint-present', { audit: { action: 'present', taint: taintText({ effect: '', ...plan.existing }) } }), ...base };
    case 'invalid':
      // The API server's own validation rejects such a Node; a patch could not apply to it anyway.
      return { ...allowed('invalid-spec', { audit: { action: 'skipped', reason: 'invalid-spec' } }), ...base };
    case 'patch':
      return {
        ...patched('tainted', plan.patch, {
          audit: { action: 'tainted', taint: wanted },
          warnings: [`cilium-migration-guard added taint ${wanted} to node ${name || '(unnamed)'} (labelled ${nodeLabelText(config)})`],
        }),
        ...base,
      };
  }
}

export function nodeTaintHandler(config: Config): AdmissionHandler {
  return {
    name: 'node-taint',
    handle(request) {
      const { kind, operation } = request;
      if (kind.group !== '' || kind.kind !== 'Node') {
        throw new BadReview(`this webhook handles v1 Nodes, not ${kind.group || 'core'}/${kind.version} ${kind.kind}`);
      }
      if (operation === 'CREATE' && !isObject(request.object)) throw new BadReview('request.object must hold the Node');
      return decideNodeTaint(request, config);
    },
  };
}
