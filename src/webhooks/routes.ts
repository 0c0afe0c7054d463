// The one route table: every webhook's path, its handler, and which webhook configuration entry
// sends requests to it. `serve` mounts these handlers, registration.ts points its entries at
// these paths, and the tests and the bench post to them.

import type { AdmissionHandler } from '../admission/handler.js';
import type { ClusterReader } from '../cluster/reader.js';
import type { ClusterView } from '../cluster/view.js';
import type { Config } from '../config.js';
import { daemonSetAffinityHandler } from './daemonset-affinity.js';
import { nodeTaintHandler } from './node-taint.js';
import { podPlacementHandler } from './pod-placement.js';

export const WEBHOOK_PATHS = {
  daemonSets: '/mutate/daemonsets',
  pods: '/validate/pods',
  nodes: '/mutate/nodes',
} as const;

export type WebhookName = keyof typeof WEBHOOK_PATHS;

export interface WebhookRoute {
  name: WebhookName;
  path: string;
  /** The webhook configuration whose entries call this path (registration.ts). */
  registration: 'MutatingWebhookConfiguration' | 'ValidatingWebhookConfiguration';
  handler: AdmissionHandler;
}

/** Every webhook `serve` answers, in the order it logs them. */
export function webhookRoutes(config: Config, view: ClusterView, reader?: ClusterReader): WebhookRoute[] {
  return [
    { name: 'daemonSets', path: WEBHOOK_PATHS.daemonSets, registration: 'MutatingWebhookConfiguration', handler: daemonSetAffinityHandler(config, view) },
    { name: 'pods', path: WEBHOOK_PATHS.pods, registration: 'ValidatingWebhookConfiguration', handler: podPlacementHandler(config, view, reader) },
    { name: 'nodes', path: WEBHOOK_PATHS.nodes, registration: 'MutatingWebhookConfiguration', handler: nodeTaintHandler(config) },
  ];
}
