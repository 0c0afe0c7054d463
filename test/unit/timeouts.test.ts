import { describe, expect, it } from 'vitest';
import { mutatingWebhookConfiguration, validatingWebhookConfiguration } from '../../src/registration.js';
import {
  DAEMONSET_WEBHOOK_TIMEOUT_SECONDS,
  HANDLER_TIMEOUT_MS,
  LOOKUP_TIMEOUT_MS,
  POD_WEBHOOK_TIMEOUT_SECONDS,
} from '../../src/timeouts.js';

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
    const daemonSets = mutatingWebhookConfiguration(options).webhooks;
    expect(daemonSets.length).toBeGreaterThan(0);
    for (const webhook of daemonSets) expect(webhook.timeoutSeconds).toBe(DAEMONSET_WEBHOOK_TIMEOUT_SECONDS);
    expect(validatingWebhookConfiguration(options).webhooks.map((w) => w.timeoutSeconds)).toEqual([POD_WEBHOOK_TIMEOUT_SECONDS]);
  });
});
