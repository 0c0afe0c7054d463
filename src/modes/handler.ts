// Puts a webhook under an enforcement mode: the policy decides as always, then applyMode() turns
// its decision into what the mode in force lets through. Both steps are pure; the mode comes from
// (request namespace, namespace labels in the view, config).

import type { AdmissionHandler } from '../admission/handler.js';
import type { Config } from '../config.js';
import { applyMode, resolveMode, type ModedWebhook, type NamespaceModes } from './mode.js';

export function withMode(handler: AdmissionHandler, webhook: ModedWebhook, config: Pick<Config, 'modes'>, namespaces: NamespaceModes): AdmissionHandler {
  return {
    name: handler.name,
    async handle(request) {
      const decision = await handler.handle(request);
      return applyMode(decision, resolveMode(request.namespace, namespaces, config.modes[webhook]));
    },
  };
}
