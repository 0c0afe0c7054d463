// Mutating webhook: CNI-aware node affinity for DaemonSets.
// Old-CNI agents get "<label> NotIn [<value>]" (off migrated nodes), Cilium's agents get
// "<label> In [<value>]" (only on migrated nodes); every other DaemonSet is left untouched.
// Where a cloud runs the cluster's Cilium (GKE Dataplane V2, AKS-managed Cilium: seen in the view),
// the migration does not apply: nothing is patched, and the answer says why.
// Pure: (request, view, config) → decision.

import { allowed, denied, patched, type Decision } from '../admission/decision.js';
import type { AdmissionHandler } from '../admission/handler.js';
import { BadReview } from '../admission/review.js';
import type { AdmissionRequest } from '../admission/types.js';
import { managedDataplaneDaemonSet, managedDataplaneIn, MANAGED_DATAPLANE_NAMES } from '../cluster/managed-dataplane.js';
import type { ClusterView } from '../cluster/view.js';
import { SKIP_AFFINITY_ANNOTATION, type Config } from '../config.js';
import { describeRequirement, firstFew, planAffinity, type Requirement } from './affinity.js';
import { resolveRole, rulesFor, type WorkloadIdentity } from './roles.js';

const POD_SPEC_POINTER = '/spec/template/spec';

function record(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null) return {};
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

interface DaemonSetLike {
  metadata?: { name?: string; namespace?: string; labels?: unknown; annotations?: unknown };
  spec?: { template?: { metadata?: { labels?: unknown }; spec?: unknown } };
}

function identity(request: AdmissionRequest, ds: DaemonSetLike): WorkloadIdentity {
  return {
    namespace: ds.metadata?.namespace || request.namespace || '',
    name: ds.metadata?.name || request.name || '',
    labels: record(ds.metadata?.labels),
    templateLabels: record(ds.spec?.template?.metadata?.labels),
  };
}

export function decideDaemonSetAffinity(request: AdmissionRequest, view: Pick<ClusterView, 'agentPods'>, config: Config): Decision {
  const ds = request.object as DaemonSetLike;
  const workload = identity(request, ds);
  const { key, value } = config.nodeLabel;
  const podSpec = ds.spec?.template?.spec;

  const annotations = record(ds.metadata?.annotations);
  if (annotations[SKIP_AFFINITY_ANNOTATION] === 'true') {
    return allowed('opted-out', { audit: { action: 'opted-out', annotation: SKIP_AFFINITY_ANNOTATION } });
  }

  // A cloud's own Cilium is never given a role (the registration does not even send it here).
  const managedSelf = managedDataplaneDaemonSet(workload);
  if (managedSelf) {
    return allowed('managed-dataplane', { audit: { action: 'managed-dataplane', dataplane: managedSelf } });
  }

  const match = resolveRole(rulesFor(config), workload);
  if (match) {
    // A cluster whose Cilium the cloud runs is not migrating to a Cilium of its own: patching its
    // agents (azure-cns hands out the pod IPs of AKS-managed Cilium) would break pod networking.
    const managed = managedDataplaneIn(view);
    if (managed) {
      return allowed('managed-dataplane', {
        audit: { role: match.role, rule: match.rule, action: 'managed-dataplane', dataplane: managed.kind },
        // The API server cuts each warning at 120 characters: the subject and the reason get one each.
        warnings: [
          `cilium-migration-guard left ${workload.namespace}/${workload.name} unchanged (role ${match.role})`,
          `${MANAGED_DATAPLANE_NAMES[managed.kind]} runs this cluster's Cilium: the migration does not apply`,
        ],
      });
    }
  }
  // No role: left alone. (GKE's netd, once warned about here, is judged by the lint check
  // gke-netd-source-valid-mark, which also sees the running cluster: docs/lint.md.) A registration
  // from before that change still sends netd here (entry advisory-daemonsets…): the same answer.
  if (!match) return allowed('no-role');

  const requirement: Requirement = { key, operator: match.role === 'cilium' ? 'In' : 'NotIn', values: [value] };
  const wanted = describeRequirement(requirement);
  const audit = { role: match.role, rule: match.rule, requirement: wanted };
  const plan = planAffinity(podSpec, requirement, POD_SPEC_POINTER);
  const subject = `${workload.namespace}/${workload.name}`;

  switch (plan.outcome) {
    case 'present':
      return allowed('already-present', { audit: { ...audit, action: 'present' } });
    case 'patch':
      return patched('injected', plan.patch, {
        audit: { ...audit, action: 'injected' },
        warnings: [`cilium-migration-guard added nodeAffinity ${wanted} to ${subject} (role ${match.role}, rule ${match.rule})`],
      });
    case 'invalid':
      // The API server's own validation rejects such an object; a patch could not apply to it anyway.
      return allowed('invalid-spec', {
        audit: { ...audit, action: 'skipped' },
        warnings: [`cilium-migration-guard left ${subject} unchanged: ${plan.problem}`],
      });
    case 'conflict': {
      const why =
        `${subject} is a ${match.role === 'cilium' ? 'Cilium' : 'previous-CNI'} agent (rule ${match.rule}) and needs ${wanted}, ` +
        `but its spec says ${firstFew(plan.conflicts, '; ')}; adding ${wanted} would leave pods with no node to run on`;
      const fix = `Fix the affinity by hand, or annotate the DaemonSet ${SKIP_AFFINITY_ANNOTATION}=true to opt out.`;
      if (config.onConflict === 'deny') {
        return denied('conflict', `${why}. ${fix}`, { audit: { ...audit, action: 'conflict-denied' } });
      }
      return allowed('conflict', {
        audit: { ...audit, action: 'conflict' },
        warnings: [
          `cilium-migration-guard did not change ${subject}: its affinity contradicts ${wanted} (role ${match.role})`,
          `conflict: ${firstFew(plan.conflicts, '; ')}`,
        ],
      });
    }
  }
}

export function daemonSetAffinityHandler(config: Config, view: Pick<ClusterView, 'agentPods'>): AdmissionHandler {
  return {
    name: 'daemonset-affinity',
    handle(request) {
      const { kind, operation } = request;
      if (kind.group !== 'apps' || kind.kind !== 'DaemonSet') {
        throw new BadReview(`this webhook handles apps/v1 DaemonSets, not ${kind.group || 'core'}/${kind.version} ${kind.kind}`);
      }
      if (operation !== 'CREATE' && operation !== 'UPDATE') {
        throw new BadReview(`this webhook handles DaemonSet CREATE and UPDATE, not ${operation}`);
      }
      if (typeof request.object !== 'object' || request.object === null) {
        throw new BadReview('request.object must hold the DaemonSet');
      }
      return decideDaemonSetAffinity(request, view, config);
    },
  };
}
