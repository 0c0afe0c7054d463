import { describe, expect, it } from 'vitest';
import { mutatingWebhookConfiguration, validatingWebhookConfiguration } from '../../src/registration.js';
import { MUTATING_NODES_NAME } from '../../src/registration.js';
import { HANDLER_TIMEOUT_MS, LOOKUP_TIMEOUT_MS, NODE_WEBHOOK_TIMEOUT_SECONDS, WEBHOOK_TIMEOUT_SECONDS } from '../../src/timeouts.js';

describe('the time budget of one admission request', () => {
  it('each layer gives up before the one around it', () => {
    // A binding may need two fallback reads (node, then pod) before deciding.
    expect(2 * LOOKUP_TIMEOUT_MS).toBeLessThan(HANDLER_TIMEOUT_MS);
    expect(HANDLER_TIMEOUT_MS).toBeLessThan(WEBHOOK_TIMEOUT_SECONDS * 1000);
  });

  it('the registrations give the API server that budget', () => {
    const options = { endpoint: { url: 'https://127.0.0.1:8443' }, ownNamespace: 'cilium-migration-guard' };
    for (const configuration of [mutatingWebhookConfiguration(options), validatingWebhookConfiguration(options)]) {
      for (const webhook of configuration.webhooks) {
        // The node webhook decides from the request alone (no lookups) and holds up a node's registration.
        expect(webhook.timeoutSeconds).toBe(webhook.name === MUTATING_NODES_NAME ? NODE_WEBHOOK_TIMEOUT_SECONDS : WEBHOOK_TIMEOUT_SECONDS);
      }
    }
  });
});
