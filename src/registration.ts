// The webhook registrations (Mutating/ValidatingWebhookConfiguration), built in one place so that
// the local cluster, the end-to-end tests and the manifests register exactly the same thing.
//
// failurePolicy, deliberately different per webhook (see README "Failure modes"):
// - DaemonSets: Fail. DaemonSet writes are rare and made by people or CD; letting one through
//   unpatched while the webhook is down can roll an old-CNI agent onto every migrated node.
// - Cilium's own DaemonSets (labelled app.kubernetes.io/part-of=cilium, as Cilium's chart does):
//   Ignore, in an entry of their own. Repairing Cilium must never wait for this webhook, whose
//   pods may be the ones hurt by the Cilium outage being repaired.
// - Pods: Ignore. Every pod placement passes here; failing closed would stop all scheduling on an
//   outage. A pod that slips through is what the reaper is for. Its timeout is short (timeouts.ts).
// - Nodes (Cilium's startup taint on labelled nodes at registration): Ignore, with a short timeout.
//   The kubelet's registration never waits on, or fails because of, this webhook; a node that
//   registers while it is down joins untainted and the pod webhook still guards its placements.
//
// Blast radius: the DaemonSet entries carry matchConditions generated from the configuration's
// rules (registration-conditions.ts), so a DaemonSet no rule matches is never sent to the webhook.
// The registration therefore depends on the configuration: regenerate it when rules, presets,
// confineCilium, kubeProxyReplacement or cilium.namespace change (`cilium-migration-guard
// registration --config FILE`; manifests/ carries it for the base config and each cloud overlay).

import { defaultConfig, PROJECT_DOMAIN, type Config } from './config.js';
import { daemonSetMatchConditions, type MatchCondition } from './registration-conditions.js';
import { DAEMONSET_WEBHOOK_TIMEOUT_SECONDS, NODE_WEBHOOK_TIMEOUT_SECONDS, POD_WEBHOOK_TIMEOUT_SECONDS } from './timeouts.js';
import { WEBHOOK_PATHS } from './webhooks/routes.js';

export const MUTATING_NAME = `daemonsets.${PROJECT_DOMAIN}`;
export const MUTATING_CILIUM_NAME = `cilium-daemonsets.${PROJECT_DOMAIN}`;
/** The label Cilium's chart puts on all its DaemonSets; it splits the two DaemonSet entries. */
export const CILIUM_PART_OF = { key: 'app.kubernetes.io/part-of', value: 'cilium' } as const;
export const VALIDATING_NAME = `pods.${PROJECT_DOMAIN}`;
export const MUTATING_NODES_NAME = `nodes.${PROJECT_DOMAIN}`;
/** Writes of cilium-config and CiliumNodeConfigs, linted (docs/lint.md): warnings only, fail-open. */
export const VALIDATING_CILIUM_CONFIG_NAME = `cilium-config.${PROJECT_DOMAIN}`;
export const CONFIGURATION_NAME = 'cilium-migration-guard';
/** Namespaces labelled with this (value "true") are never sent to the pod webhook. */
export const NAMESPACE_EXEMPT_LABEL = `${PROJECT_DOMAIN}/exempt`;

export type FailurePolicy = 'Fail' | 'Ignore';

export type ClientConfig =
  { url: string; caBundle?: string } | { service: { namespace: string; name: string; path?: string; port?: number }; caBundle?: string };

export interface RegistrationOptions {
  /** Base of the webhook endpoint: a URL ("https://127.0.0.1:8443") or an in-cluster Service. */
  endpoint: { url: string } | { service: { namespace: string; name: string; port?: number } };
  /** PEM of the CA that signed the serving certificate. */
  caPem?: string;
  /** The webhook's own namespace: never sent to either webhook. */
  ownNamespace: string;
  failurePolicy?: { daemonsets?: FailurePolicy; ciliumDaemonsets?: FailurePolicy; pods?: FailurePolicy; nodes?: FailurePolicy };
  /** The DaemonSet entries' timeoutSeconds (default DAEMONSET_WEBHOOK_TIMEOUT_SECONDS). */
  timeoutSeconds?: number;
  /** The pod webhook's timeoutSeconds (default POD_WEBHOOK_TIMEOUT_SECONDS). */
  podTimeoutSeconds?: number;
  /** The configuration whose rules the DaemonSet entries' matchConditions are built from (default: the default config). */
  config?: Config;
  /** The migration label (config nodeLabel): only Nodes created with it are sent to the node webhook. Default: config's. */
  nodeLabel?: Config['nodeLabel'];
}

function clientConfig(options: RegistrationOptions, path: string): ClientConfig {
  const caBundle = options.caPem ? Buffer.from(options.caPem).toString('base64') : undefined;
  const ca = caBundle ? { caBundle } : {};
  if ('url' in options.endpoint) return { url: `${options.endpoint.url.replace(/\/$/, '')}${path}`, ...ca };
  return { service: { ...options.endpoint.service, path }, ...ca };
}

/** What both webhooks register alike: v1 reviews only, no side effects, a short timeout. */
function common(timeoutSeconds: number) {
  return {
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    timeoutSeconds,
    matchPolicy: 'Equivalent',
  };
}

const metadata = () => ({ name: CONFIGURATION_NAME, labels: { 'app.kubernetes.io/name': 'cilium-migration-guard' } });

function namespaceSelector(options: RegistrationOptions) {
  return {
    matchExpressions: [
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [options.ownNamespace] },
      { key: NAMESPACE_EXEMPT_LABEL, operator: 'NotIn', values: ['true'] },
    ],
  };
}

export function mutatingWebhookConfiguration(options: RegistrationOptions) {
  const config = options.config ?? defaultConfig;
  const entry = (name: string, failurePolicy: FailurePolicy, objectSelector: object, matchConditions: MatchCondition[]) => ({
    name,
    ...common(options.timeoutSeconds ?? DAEMONSET_WEBHOOK_TIMEOUT_SECONDS),
    failurePolicy,
    // The patch only adds to the pod template, which no other webhook is expected to rewrite;
    // IfNeeded would still re-run us after one that does.
    reinvocationPolicy: 'IfNeeded',
    clientConfig: clientConfig(options, WEBHOOK_PATHS.daemonSets),
    namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [options.ownNamespace] }] },
    objectSelector,
    rules: [{ apiGroups: ['apps'], apiVersions: ['v1'], resources: ['daemonsets'], operations: ['CREATE', 'UPDATE'], scope: 'Namespaced' }],
    matchConditions,
  });
  const { key, value } = CILIUM_PART_OF;
  const notCilium = { matchExpressions: [{ key, operator: 'NotIn', values: [value] }] };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: metadata(),
    // Two DaemonSet entries, one endpoint: a DaemonSet is sent to at most one of them, and only
    // when a rule could apply to it.
    webhooks: [
      entry(MUTATING_NAME, options.failurePolicy?.daemonsets ?? 'Fail', notCilium, daemonSetMatchConditions(config)),
      entry(MUTATING_CILIUM_NAME, options.failurePolicy?.ciliumDaemonsets ?? 'Ignore', { matchLabels: { [key]: value } }, daemonSetMatchConditions(config)),
      nodesEntry(options),
    ],
  };
}

/**
 * The CEL test "this Node carries the migration label". Label keys may hold dots and slashes, so
 * the key is looked up with `in` and an index, never as a field. Keys and values are validated
 * label text (no quotes), so quoting them is safe.
 */
export function nodeLabelCondition(nodeLabel: Config['nodeLabel']): string {
  const { key, value } = nodeLabel;
  return `has(object.metadata.labels) && '${key}' in object.metadata.labels && object.metadata.labels['${key}'] == '${value}'`;
}

/** Nodes: Cilium's startup taint on nodes that register (CREATE) with the migration label. */
function nodesEntry(options: RegistrationOptions) {
  return {
    name: MUTATING_NODES_NAME,
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    // Short: the kubelet's registration waits on it. The handler is a pure function of the request.
    timeoutSeconds: NODE_WEBHOOK_TIMEOUT_SECONDS,
    matchPolicy: 'Equivalent',
    failurePolicy: options.failurePolicy?.nodes ?? 'Ignore',
    // The taint is only ever added, and a later webhook's change cannot remove the need for it.
    reinvocationPolicy: 'Never',
    clientConfig: clientConfig(options, WEBHOOK_PATHS.nodes),
    rules: [{ apiGroups: [''], apiVersions: ['v1'], resources: ['nodes'], operations: ['CREATE'], scope: 'Cluster' }],
    // Only labelled nodes reach the webhook; every other node registration costs nothing.
    matchConditions: [{ name: 'has-migration-label', expression: nodeLabelCondition(options.nodeLabel ?? (options.config ?? defaultConfig).nodeLabel) }],
  };
}

export function validatingWebhookConfiguration(options: RegistrationOptions) {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: metadata(),
    webhooks: [
      {
        name: VALIDATING_NAME,
        ...common(options.podTimeoutSeconds ?? POD_WEBHOOK_TIMEOUT_SECONDS),
        failurePolicy: options.failurePolicy?.pods ?? 'Ignore',
        clientConfig: clientConfig(options, WEBHOOK_PATHS.pods),
        namespaceSelector: namespaceSelector(options),
        rules: [{ apiGroups: [''], apiVersions: ['v1'], resources: ['pods', 'pods/binding'], operations: ['CREATE'], scope: 'Namespaced' }],
        // Only placements reach the webhook: binds, and pods created with spec.nodeName that use
        // the pod network. Pods left to the scheduler and host-network pods cost nothing.
        matchConditions: [
          {
            name: 'places-a-pod-network-pod',
            expression:
              // Keyed on the kind: request.subResource is unset (not "") for a plain pod create.
              "request.kind.kind == 'Binding' || (request.kind.kind == 'Pod' && has(object.spec.nodeName) && object.spec.nodeName != '' && !(has(object.spec.hostNetwork) && object.spec.hostNetwork))",
          },
        ],
      },
      ciliumConfigEntry(options),
    ],
  };
}

/**
 * cilium-config and CiliumNodeConfigs in Cilium's namespace: linted, answered with warnings (a
 * denial only for checks listed in lint.denyChecks). Ignore: a Cilium configuration change must
 * never wait on this webhook. Only that one ConfigMap is sent (matchConditions on the name).
 */
function ciliumConfigEntry(options: RegistrationOptions) {
  const namespace = (options.config ?? defaultConfig).cilium.namespace;
  return {
    name: VALIDATING_CILIUM_CONFIG_NAME,
    ...common(options.podTimeoutSeconds ?? POD_WEBHOOK_TIMEOUT_SECONDS),
    failurePolicy: 'Ignore' as FailurePolicy,
    clientConfig: clientConfig(options, '/validate/cilium-config'),
    namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: [namespace] }] },
    rules: [
      { apiGroups: [''], apiVersions: ['v1'], resources: ['configmaps'], operations: ['CREATE', 'UPDATE'], scope: 'Namespaced' },
      { apiGroups: ['cilium.io'], apiVersions: ['v2', 'v2alpha1'], resources: ['ciliumnodeconfigs'], operations: ['CREATE', 'UPDATE'], scope: 'Namespaced' },
    ],
    matchConditions: [
      { name: 'cilium-config-or-nodeconfig', expression: "request.resource.resource != 'configmaps' || object.metadata.name == 'cilium-config'" },
    ],
  };
}
