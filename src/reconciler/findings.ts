// Existing DaemonSets, judged with the webhook's own decision (decideDaemonSetAffinity): the
// webhook only sees writes, so a DaemonSet written before it was registered, while it was down
// (Cilium's entry fails open) or while it was in warn/audit mode keeps an affinity that does not
// meet its role. Also the pods that show it: legacy agents running on migrated nodes, and migrated
// nodes with no Cilium agent. Pure: (DaemonSets, view, config) → findings.

import type { AdmissionRequest } from '../admission/types.js';
import type { FullClusterView } from '../cluster/view.js';
import type { ObjectMeta } from '../cluster/view.js';
import { isMigratedNode, type Config } from '../config.js';
import type { JsonPatchOp } from '../admission/types.js';
import { decideDaemonSetAffinity } from '../webhooks/daemonset-affinity.js';
import { resolveRole, rulesFor } from '../webhooks/roles.js';

/** A DaemonSet as listed (apps/v1): what the decision reads, plus uid and resourceVersion. */
export interface DaemonSetObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: unknown;
}

interface Common {
  namespace: string;
  name: string;
  uid?: string;
  resourceVersion?: string;
  role: string;
  rule: string;
  requirement: string;
}

/** out-of-line: the webhook would patch it now (the patch is the webhook's). conflict: its own spec contradicts its role. */
export type DaemonSetFinding = (Common & { state: 'out-of-line'; patch: JsonPatchOp[] }) | (Common & { state: 'conflict'; detail: string });

function requestFor(ds: DaemonSetObject): AdmissionRequest {
  return {
    uid: `reconcile-${ds.metadata.uid ?? `${ds.metadata.namespace}/${ds.metadata.name}`}`,
    kind: { group: 'apps', version: 'v1', kind: 'DaemonSet' },
    resource: { group: 'apps', version: 'v1', resource: 'daemonsets' },
    operation: 'UPDATE',
    namespace: ds.metadata.namespace ?? '',
    name: ds.metadata.name,
    object: ds,
  };
}

/** Every DaemonSet a rule gives a role whose stored affinity does not meet it, sorted by namespace/name. */
export function daemonSetFindings(daemonSets: readonly DaemonSetObject[], view: Pick<FullClusterView, 'agentPods'>, config: Config): DaemonSetFinding[] {
  const out: DaemonSetFinding[] = [];
  for (const ds of daemonSets) {
    const decision = decideDaemonSetAffinity(requestFor(ds), view, config);
    const audit = decision.audit ?? {};
    const common: Common = {
      namespace: ds.metadata.namespace ?? '',
      name: ds.metadata.name,
      ...(ds.metadata.uid ? { uid: ds.metadata.uid } : {}),
      ...(ds.metadata.resourceVersion ? { resourceVersion: ds.metadata.resourceVersion } : {}),
      role: audit.role ?? '',
      rule: audit.rule ?? '',
      requirement: audit.requirement ?? '',
    };
    if (decision.reason === 'injected' && decision.patch && decision.patch.length > 0) {
      out.push({ ...common, state: 'out-of-line', patch: decision.patch });
    } else if (decision.reason === 'conflict') {
      out.push({ ...common, state: 'conflict', detail: decision.message ?? (decision.warnings ?? []).join('; ') });
    }
  }
  return out.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
}

export interface MisplacedAgent {
  namespace: string;
  name: string;
  node: string;
  daemonSet: string;
  rule: string;
}

export interface AgentPlacement {
  /** Pods of legacy-role DaemonSets running on migrated nodes. */
  legacyOnMigrated: MisplacedAgent[];
  /** Migrated nodes with no Cilium agent pod (per cilium.agentLabels). */
  ciliumMissing: string[];
}

/**
 * Which agents are where they should not be. A pod's DaemonSet is its controller owner; its role
 * is judged on the listed DaemonSet when there is one (its labels), else on the pod's namespace,
 * the owner's name and the pod's labels (a DaemonSet's template labels are on its pods).
 */
export function agentPlacement(
  view: Pick<FullClusterView, 'nodes' | 'podsOn' | 'agentPodsOn'>,
  daemonSets: readonly DaemonSetObject[],
  config: Config,
): AgentPlacement {
  const rules = rulesFor(config);
  const byKey = new Map(daemonSets.map((ds) => [`${ds.metadata.namespace}/${ds.metadata.name}`, ds]));
  const legacyOnMigrated: MisplacedAgent[] = [];
  const ciliumMissing: string[] = [];
  for (const node of view.nodes()) {
    if (!isMigratedNode(node.metadata.labels, config)) continue;
    const name = node.metadata.name;
    if (view.agentPodsOn(name).filter((p) => !p.metadata.deletionTimestamp).length === 0) ciliumMissing.push(name);
    for (const pod of view.podsOn(name)) {
      const owner = pod.metadata.ownerReferences?.find((o) => o.kind === 'DaemonSet' && o.controller !== false);
      if (!owner) continue;
      const namespace = pod.metadata.namespace ?? '';
      const ds = byKey.get(`${namespace}/${owner.name}`);
      const templateLabels = (ds?.spec as { template?: { metadata?: { labels?: Record<string, string> } } } | undefined)?.template?.metadata?.labels;
      const match = resolveRole(rules, {
        namespace,
        name: owner.name,
        labels: ds?.metadata.labels ?? {},
        templateLabels: templateLabels ?? pod.metadata.labels ?? {},
      });
      if (match?.role === 'legacy') legacyOnMigrated.push({ namespace, name: pod.metadata.name, node: name, daemonSet: owner.name, rule: match.rule });
    }
  }
  legacyOnMigrated.sort((a, b) => `${a.node}/${a.namespace}/${a.name}`.localeCompare(`${b.node}/${b.namespace}/${b.name}`));
  return { legacyOnMigrated, ciliumMissing: ciliumMissing.sort() };
}
