import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config.js';
import { exemptionFor } from '../../src/policy/exemptions.js';
import { hasLabels } from '../../src/policy/labels.js';

describe('hasLabels (one selector rule for the webhooks and the reaper)', () => {
  it('matches when every wanted key has its value; an empty selector matches everything', () => {
    expect(hasLabels({ a: '1', b: '2' }, { a: '1' })).toBe(true);
    expect(hasLabels({ a: '1' }, { a: '2' })).toBe(false);
    expect(hasLabels(undefined, { a: '1' })).toBe(false);
    expect(hasLabels(undefined, {})).toBe(true);
  });

  it('an empty label set in the exemption config exempts nothing (the schema refuses one; this holds without it)', () => {
    const pod = { metadata: { name: 'p', namespace: defaultConfig.self.namespace, labels: {} }, spec: {} };
    expect(exemptionFor(pod, { ...defaultConfig, self: { ...defaultConfig.self, labels: {} } })).toBeUndefined();
    expect(exemptionFor({ ...pod, metadata: { ...pod.metadata, labels: defaultConfig.self.labels } }, defaultConfig)).toBe('own-pod');
  });
});
