// `registration --service-port`: the port goes into clientConfig.service.port, which the API server
// accepts only in 1-65535 (k8s.io/apiserver pkg/util/webhook/validation.go ValidateWebhookService:
// validation.IsValidPortNum). Port 0 is a listen port ("any"), never a Service's.
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { registrationText } from '../../src/commands/registration.js';
import { UsageError } from '../../src/commands/common.js';

type Registration = { webhooks: Array<{ clientConfig: { service: { port: unknown } } }> };
const servicePorts = (text: string): unknown[] =>
  parseAllDocuments(text).flatMap((d) => (d.toJSON() as Registration).webhooks.map((w) => w.clientConfig.service.port));

describe('registration --service-port', () => {
  it('refuses 0 as a usage mistake instead of printing a registration the API server rejects', () => {
    expect(() => registrationText(['--service-port', '0'], {})).toThrow(UsageError);
    expect(() => registrationText(['--service-port', '0'], {})).toThrow('--service-port must be 1-65535, got "0"');
    expect(() => registrationText([], { CMG_SERVICE_PORT: '0' })).toThrow(/must be 1-65535, got "0"/);
  });

  it('puts a valid port, or 443 by default, into every entry', () => {
    expect(new Set(servicePorts(registrationText(['--service-port', '65535'], {})))).toEqual(new Set([65535]));
    expect(new Set(servicePorts(registrationText(['--service-port', '1'], {})))).toEqual(new Set([1]));
    expect(new Set(servicePorts(registrationText([], {})))).toEqual(new Set([443]));
    expect(() => registrationText(['--service-port', '65536'], {})).toThrow(/must be 1-65535, got "65536"/);
  });
});
