// The one route table: every webhook's path, its handler, and which webhook configuration entry
// sends requests to it. `serve` mounts these handlers, registration.ts points its entries at
// these paths, and the tests and the bench post to them.

import type { AdmissionHandler } from '../admission/handler.js';
import type { ClusterReader } from '../cluster/reader.js';
import type { ClusterView } from '../cluster/view.js';
import type { Config } from '../config.js';
import { lintAdmissionHandler, type LintViewSource } from '../lint/admission.js';
import { DEFAULT_LINT_OPTIONS } from '../lint/run.js';
import type { Finding } from '../lint/types.js';
import { withMode } from '../modes/handler.js';
import { noNamespaceModes, type NamespaceModes } from '../modes/mode.js';
import { daemonSetAffinityHandler } from './daemonset-affinity.js';
import { nodeTaintHandler } from './node-taint.js';
import { podPlacementHandler } from './pod-placement.js';

export const WEBHOOK_PATHS = {
  daemonSets: '/mutate/daemonsets',
  pods: '/validate/pods',
  nodes: '/mutate/nodes',
  ciliumConfig: '/validate/cilium-config',
} as const;

export type WebhookName = keyof typeof WEBHOOK_PATHS;

export interface WebhookRoute {
  name: WebhookName;
  path: string;
  /** The webhook configuration whose entries call this path (registration.ts). */
  registration: 'MutatingWebhookConfiguration' | 'ValidatingWebhookConfiguration';
  handler: AdmissionHandler;
}

export interface WebhookRouteOptions {
  /** Per-namespace enforcement modes (namespace label); default: the configured modes everywhere. */
  namespaceModes?: NamespaceModes;
  /** Counts each lint finding on a cilium-config / CiliumNodeConfig write (the metric). */
  countLintFinding?: (finding: Finding) => void;
}

/** Every webhook `serve` answers, in the order it logs them. */
export function webhookRoutes(config: Config, view: ClusterView & LintViewSource, reader?: ClusterReader, options: WebhookRouteOptions = {}): WebhookRoute[] {
  const namespaces = options.namespaceModes ?? noNamespaceModes;
  const lintOptions = {
    ciliumNamespace: config.cilium.namespace,
    denyChecks: config.lint.denyChecks,
    settings: { ...DEFAULT_LINT_OPTIONS, nodeLabel: config.nodeLabel },
  };
  return [
    {
      name: 'daemonSets',
      path: WEBHOOK_PATHS.daemonSets,
      registration: 'MutatingWebhookConfiguration',
      handler: withMode(daemonSetAffinityHandler(config, view), 'daemonsets', config, namespaces),
    },
    {
      name: 'pods',
      path: WEBHOOK_PATHS.pods,
      registration: 'ValidatingWebhookConfiguration',
      handler: withMode(podPlacementHandler(config, view, reader), 'pods', config, namespaces),
    },
    { name: 'nodes', path: WEBHOOK_PATHS.nodes, registration: 'MutatingWebhookConfiguration', handler: nodeTaintHandler(config) },
    {
      name: 'ciliumConfig',
      path: WEBHOOK_PATHS.ciliumConfig,
      registration: 'ValidatingWebhookConfiguration',
      handler: lintAdmissionHandler(view, lintOptions, options.countLintFinding),
    },
  ];
}
