import { describe, expect, it } from 'vitest';
import { mutatingWebhookConfiguration, validatingWebhookConfiguration } from '../../src/registration.js';
import {
  DAEMONSET_WEBHOOK_TIMEOUT_SECONDS,
  HANDLER_TIMEOUT_MS,
  LOOKUP_TIMEOUT_MS,
  NODE_WEBHOOK_TIMEOUT_SECONDS,
  POD_WEBHOOK_TIMEOUT_SECONDS,
} from '../../src/timeouts.js';
import { MUTATING_NODES_NAME } from '../../src/registration.js';

describe('the time budget of one admission request', () => {
  it('each layer gives up before the one around it', () => {
    // A binding may need two fallback reads (node, then pod) before deciding.
    expect(2 * LOOKUP_TIMEOUT_MS).toBeLessThan(HANDLER_TIMEOUT_MS);
    // One server, one handler budget: it must fit the shortest registration timeout.
    expect(HANDLER_TIMEOUT_MS).toBeLessThan(Math.min(POD_WEBHOOK_TIMEOUT_SECONDS, DAEMONSET_WEBHOOK_TIMEOUT_SECONDS) * 1000);
  });

  it('an unreachable pod webhook adds at most about 2-3 s to a bind', () => {
    expect(POD_WEBHOOK_TIMEOUT_SECONDS).toBeLessThanOrEqual(2);
  });

  it('the registrations give the API server that budget: short for pods, longer for DaemonSets', () => {
    const options = { endpoint: { url: 'https://127.0.0.1:8443' }, ownNamespace: 'cilium-migration-guard' };
    const mutating = mutatingWebhookConfiguration(options).webhooks;
    expect(mutating.length).toBeGreaterThan(0);
    for (const webhook of mutating) {
      // The node webhook decides from the request alone (no lookups) and holds up a node's registration.
      expect(webhook.timeoutSeconds).toBe(webhook.name === MUTATING_NODES_NAME ? NODE_WEBHOOK_TIMEOUT_SECONDS : DAEMONSET_WEBHOOK_TIMEOUT_SECONDS);
    }
    expect(validatingWebhookConfiguration(options).webhooks.map((w) => w.timeoutSeconds)).toEqual([POD_WEBHOOK_TIMEOUT_SECONDS, POD_WEBHOOK_TIMEOUT_SECONDS]);
  });
});
