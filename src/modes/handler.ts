// Puts a webhook under an enforcement mode: the policy decides as always, then applyMode() turns
// its decision into what the mode in force lets through. Both steps are pure; the mode comes from
// (request namespace, namespace labels in the view, config).

import type { Decision } from '../admission/decision.js';
import type { AdmissionHandler } from '../admission/handler.js';
import type { Config } from '../config.js';
import { applyMode, resolveMode, type ModedWebhook, type NamespaceModes } from './mode.js';

export function withMode(handler: AdmissionHandler, webhook: ModedWebhook, config: Pick<Config, 'modes'>, namespaces: NamespaceModes): AdmissionHandler {
  return {
    name: handler.name,
    // Synchronous when the policy is (pod placement from warm caches): no promise, no deadline timer.
    handle(request) {
      const mode = (decision: Decision) => applyMode(decision, resolveMode(request.namespace, namespaces, config.modes[webhook]));
      const decision = handler.handle(request);
      return decision instanceof Promise ? decision.then(mode) : mode(decision);
    },
  };
}
