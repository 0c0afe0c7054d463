// Validating webhook: no pod is placed on a migrated node before Cilium is ready there.
// Two ways a pod is placed: created with spec.nodeName, or bound by the scheduler (pods/binding).
// decidePlacement() is pure; the handler at the bottom only finds the pod and node first.

import { allowed, denied, type Decision } from '../admission/decision.js';
import type { AdmissionHandler } from '../admission/handler.js';
import { BadReview } from '../admission/review.js';
import type { AdmissionRequest } from '../admission/types.js';
import { isMigratedNode, nodeLabelText, type Config } from '../config.js';
import { noReader, type ClusterReader } from '../cluster/reader.js';
import { ciliumReadiness, describeGaps } from '../cluster/readiness.js';
import type { ClusterView, NodeInfo, PodInfo } from '../cluster/view.js';
import { isObject } from '../objects.js';
import { exemptionFor } from '../policy/exemptions.js';

export interface PlacementSubject {
  via: 'pod' | 'binding';
  namespace: string;
  name: string;
  node: string;
  /** The pod itself when it came in the request (CREATE with spec.nodeName). */
  pod?: PodInfo;
}

export type SubjectOrSkip = { subject: PlacementSubject } | { skip: string };

/** What the request places where; `skip` when it places nothing. Throws BadReview for requests this webhook does not serve. */
export function placementSubject(request: AdmissionRequest): SubjectOrSkip {
  const { kind, resource, subResource, operation } = request;
  if (operation !== 'CREATE') throw new BadReview(`this webhook handles pod and pods/binding CREATE, not ${operation}`);
  const object = request.object;
  if (!isObject(object)) throw new BadReview('request.object must hold the Pod or Binding');
  if (!isObject(object.metadata)) throw new BadReview('request.object.metadata must be an object');
  const metadata = object.metadata;
  // The request's namespace is the authority; an empty one in the object does not override it.
  const namespace = (typeof metadata.namespace === 'string' && metadata.namespace) || request.namespace || '';

  if (resource.resource === 'pods' && (subResource ?? '') === '' && kind.kind === 'Pod') {
    const pod = object as unknown as PodInfo;
    const node = isObject(object.spec) && typeof object.spec.nodeName === 'string' ? object.spec.nodeName : '';
    if (node === '') return { skip: 'not-placed' };
    const name = typeof metadata.name === 'string' && metadata.name !== '' ? metadata.name : (request.name ?? '');
    return { subject: { via: 'pod', namespace, name, node, pod } };
  }

  if (resource.resource === 'pods' && subResource === 'binding' && kind.kind === 'Binding') {
    const target = isObject(object.target) ? object.target : {};
    if (target.kind !== undefined && target.kind !== 'Node') return { skip: 'binding-target-not-node' };
    const node = typeof target.name === 'string' ? target.name : '';
    if (node === '') return { skip: 'binding-without-target' };
    const name = typeof metadata.name === 'string' && metadata.name !== '' ? metadata.name : (request.name ?? '');
    return { subject: { via: 'binding', namespace, name, node } };
  }

  throw new BadReview(`this webhook handles v1 Pod and pods/binding, not ${resource.resource}${subResource ? `/${subResource}` : ''} (${kind.kind})`);
}

function denialMessage(subject: PlacementSubject, gaps: string[], config: Config): string {
  const who = `pod ${subject.namespace}/${subject.name}`;
  const retry =
    subject.via === 'binding'
      ? 'The scheduler will retry and place it once Cilium is ready there.'
      : 'Create it again once Cilium is ready there, or leave spec.nodeName empty so the scheduler places it.';
  return (
    `${who} cannot be placed on node ${subject.node} yet: the node is labelled ${nodeLabelText(config)} but Cilium is not ready there ` +
    `(${gaps.join('; ')}). A pod started now would get its IP from the previous CNI, which Cilium does not track, ` +
    `and Cilium could later give the same IP to another pod (duplicate pod IPs). ${retry} ` +
    `To exempt a pod, label it ${config.exemptions.label}=true.`
  );
}

/**
 * The placement verdict. `pod` and `node` are what the edge found (request, cache or one API read);
 * either may be missing, in which case the webhook lets the request through with a warning rather
 * than guess: the reaper catches a pod that slips through.
 */
export function decidePlacement(
  subject: PlacementSubject,
  found: { pod?: PodInfo; node?: NodeInfo; lookupError?: string },
  view: ClusterView,
  config: Config,
): Decision {
  const base = { node: subject.node };
  const audit = (decision: string, reason: string) => ({
    decision,
    node: subject.node,
    reason,
    ...(found.lookupError ? { lookup: found.lookupError } : {}),
  });
  const { node, pod } = found;
  const why = found.lookupError ? ` (lookup failed: ${found.lookupError})` : '';

  if (!node) {
    return allowed('node-unknown', {
      ...base,
      audit: audit('allowed', 'node-unknown'),
      warnings: [`cilium-migration-guard could not find node ${subject.node}; placement not checked${why}`],
    });
  }
  if (!isMigratedNode(node.metadata.labels, config)) {
    return { ...allowed('node-not-migrated', { audit: audit('allowed', 'node-not-migrated') }), ...base };
  }
  if (!pod) {
    return allowed('pod-unknown', {
      ...base,
      audit: audit('allowed', 'pod-unknown'),
      warnings: [`cilium-migration-guard could not find pod ${subject.namespace}/${subject.name}; placement not checked${why}`],
    });
  }
  const exemption = exemptionFor(pod, config);
  if (exemption) return { ...allowed(exemption, { audit: audit('allowed', exemption) }), ...base };

  const readiness = ciliumReadiness(view, subject.node, config);
  if (readiness.ready) return { ...allowed('cilium-ready', { audit: audit('allowed', 'cilium-ready') }), ...base };

  const gaps = describeGaps(readiness, subject.node);
  return {
    ...denied('cilium-not-ready', denialMessage(subject, gaps, config), {
      audit: audit('denied', readiness.gaps.join(',')),
    }),
    ...base,
  };
}

export function podPlacementHandler(config: Config, view: ClusterView, reader: ClusterReader = noReader): AdmissionHandler {
  // Common path: both answers come from the informer caches, no API call, and the decision is
  // returned synchronously (no promise, so the server arms no deadline timer for it). Otherwise a
  // read from the API server fills the gap (lookUpAndDecide).
  const lookUpAndDecide = async (subject: PlacementSubject): Promise<Decision> => {
    // A failed read counts as "not found" (the pod is let through with a warning); its error
    // travels in the warning and the audit annotation, so the cause is not lost.
    let lookupError: string | undefined;
    const read = <T>(promise: Promise<T | undefined>): Promise<T | undefined> =>
      promise.catch((err: unknown) => {
        lookupError = err instanceof Error ? err.message : String(err);
        return undefined;
      });
    const node = view.node(subject.node) ?? (await read(reader.node(subject.node)));
    let pod = subject.pod;
    if (!pod && node && isMigratedNode(node.metadata.labels, config)) {
      pod = view.unscheduledPod(subject.namespace, subject.name) ?? (await read(reader.pod(subject.namespace, subject.name)));
    }
    const found = { ...(pod ? { pod } : {}), ...(node ? { node } : {}), ...(lookupError ? { lookupError } : {}) };
    return decidePlacement(subject, found, view, config);
  };
  return {
    name: 'pod-placement',
    handle(request) {
      const result = placementSubject(request);
      if ('skip' in result) return allowed(result.skip);
      const { subject } = result;
      const node = view.node(subject.node);
      if (node) {
        if (!isMigratedNode(node.metadata.labels, config)) return decidePlacement(subject, { node }, view, config);
        const pod = subject.pod ?? view.unscheduledPod(subject.namespace, subject.name);
        if (pod) return decidePlacement(subject, { pod, node }, view, config);
      }
      return lookUpAndDecide(subject);
    },
  };
}
