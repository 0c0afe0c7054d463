// The certificate lifecycle decision (src/certs/plan.ts) and the material it leads to
// (src/certs/issue.ts), on a fake clock: no cluster, no timers.

import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { nextMaterial } from '../../src/certs/issue.js';
import { DEFAULT_POLICY, inspect, planRotation, splitPem, validatePolicy, type CertMaterial, type CertPolicy, type Plan } from '../../src/certs/plan.js';

const SEC = 1000;
const DAY = 24 * 3600 * SEC;
const SANS = ['localhost', '127.0.0.1', '::1', 'cilium-migration-guard.cilium-migration-guard.svc'];
const T0 = new Date('2030-01-01T00:00:00Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const trustAll = (_pem: string) => true;

function plan(
  material: CertMaterial | undefined,
  now: Date,
  options: { policy?: CertPolicy; published?: (pem: string) => boolean; sans?: string[] } = {},
): Plan {
  return planRotation({ material, now, policy: options.policy ?? DEFAULT_POLICY, sans: options.sans ?? SANS, signerPublished: options.published ?? trustAll });
}

async function step(material: CertMaterial | undefined, now: Date, policy: CertPolicy = DEFAULT_POLICY, published = trustAll) {
  const p = plan(material, now, { policy, published });
  if (p.action === 'keep') return { plan: p, material: material! };
  return { plan: p, material: await nextMaterial(p, material, { now, policy, sans: SANS }) };
}

function state(material: CertMaterial) {
  const s = inspect(material);
  if (typeof s === 'string') throw new Error(s);
  return s;
}

describe('planRotation', () => {
  it('issues a CA and a serving pair when there is no Secret, then keeps them', async () => {
    const first = await step(undefined, T0);
    expect(first.plan.action).toBe('issue');
    const s = state(first.material);
    expect(s.cas).toHaveLength(1);
    expect(s.serving.issuer).toBe(s.signer);
    for (const san of SANS) expect(s.serving.x509.checkHost(san) ?? s.serving.x509.checkIP(san)).toBeDefined();
    const next = plan(first.material, at(SEC));
    expect(next).toMatchObject({ action: 'keep' });
    // The next thing due is the serving renewal: 90 - 30 days after issue.
    expect(next.action === 'keep' && next.nextAt.getTime()).toBe(at(60 * DAY).getTime());
  });

  it('renews the serving pair before it expires, with the same CA', async () => {
    const { material } = await step(undefined, T0);
    const renewed = await step(material, at(60 * DAY));
    expect(renewed.plan.action).toBe('reissue-serving');
    expect(renewed.material.caBundle).toBe(material.caBundle);
    expect(renewed.material.cert).not.toBe(material.cert);
    expect(state(renewed.material).serving.notAfter.getTime()).toBe(at(150 * DAY).getTime());
  });

  it('rotates the CA in order: add to the bundle, wait for publication and the overlap, switch, prune after expiry', async () => {
    const { material: m0 } = await step(undefined, T0);
    const oldCa = state(m0).signer.pem;
    const caRenewAt = 365 * DAY - 90 * DAY;
    let m = (await step(m0, at(caRenewAt - DAY))).material; // keeps serving fresh until then
    m = (await step(m, at(caRenewAt - DAY))).material;

    const added = await step(m, at(caRenewAt));
    expect(added.plan.action).toBe('add-ca');
    expect(added.material.cert).toBe(m.cert); // serving unchanged: the API server does not trust the new CA yet
    const s = state(added.material);
    expect(s.cas.map((ca) => ca.pem)).toEqual([oldCa, s.signer.pem]);
    expect(s.serving.issuer?.pem).toBe(oldCa);

    const newCa = s.signer.pem;
    const notPublished = (pem: string) => pem !== newCa;
    // Within the overlap: wait, even when published.
    expect(plan(added.material, at(caRenewAt + 60 * SEC)).action).toBe('keep');
    // After the overlap but the caBundle does not have it yet: wait.
    const afterOverlap = at(caRenewAt + DEFAULT_POLICY.caOverlapMs);
    expect(plan(added.material, afterOverlap, { published: notPublished }).action).toBe('keep');
    const switched = await step(added.material, afterOverlap);
    expect(switched.plan.action).toBe('reissue-serving');
    expect(state(switched.material).serving.issuer?.pem).toBe(newCa);
    expect(splitPem(switched.material.caBundle)).toHaveLength(2); // old CA stays: replicas may still serve its pair

    const renewed = await step(switched.material, at(caRenewAt + 61 * DAY)); // the new pair's own renewal
    expect(renewed.plan.action).toBe('reissue-serving');
    expect(plan(renewed.material, at(365 * DAY - SEC)).action).toBe('keep');
    const pruned = await step(renewed.material, at(365 * DAY));
    expect(pruned.plan.action).toBe('prune');
    expect(splitPem(pruned.material.caBundle)).toEqual([newCa]);
  });

  it('switches at once when the serving certificate has expired anyway', async () => {
    const policy = validatePolicy({ ...DEFAULT_POLICY, caOverlapMs: 20 * DAY });
    const { material } = await step(undefined, T0, policy);
    const added = await step(material, at(275 * DAY), policy);
    expect(added.plan.action).toBe('add-ca');
    const servingEnd = state(added.material).serving.notAfter.getTime() - T0.getTime();
    expect(plan(added.material, at(servingEnd), { policy, published: () => false }).action).toBe('reissue-serving');
  });

  it.each([
    ['garbage in ca.crt', (m: CertMaterial) => ({ ...m, caBundle: 'nope' })],
    ['a key that is not the certificate’s', (m: CertMaterial) => ({ ...m, key: m.caKey })],
    ['a CA key of no CA in the bundle', (m: CertMaterial) => ({ ...m, caKey: m.key })],
    ['empty values', () => ({ caBundle: '', caKey: '', cert: '', key: '' })],
  ])('replaces an unusable Secret: %s', async (_what, spoil) => {
    const { material } = await step(undefined, T0);
    const p = plan(spoil(material), at(SEC));
    expect(p.action).toBe('issue');
    expect(p.reason).toMatch(/unusable/);
  });

  it('reissues when the serving certificate lacks a required name', async () => {
    const { material } = await step(undefined, T0);
    const p = plan(material, at(SEC), { sans: [...SANS, 'cmg.other-namespace.svc'] });
    expect(p).toMatchObject({ action: 'reissue-serving', reason: expect.stringContaining('cmg.other-namespace.svc') });
  });

  it('rejects policies that would loop or leave a gap', () => {
    expect(() => validatePolicy({ ...DEFAULT_POLICY, servingValidityMs: 100 * DAY })).toThrow(/servingValidity must not exceed caRenewBefore/);
    expect(() => validatePolicy({ ...DEFAULT_POLICY, caRenewBeforeMs: 400 * DAY })).toThrow(/caRenewBefore/);
    expect(() => validatePolicy({ ...DEFAULT_POLICY, caOverlapMs: 60 * DAY })).toThrow(/caOverlap/);
  });

  it('over three years, a day at a time: the pair in use is always valid and signed by a CA trusted one step earlier', async () => {
    let material: CertMaterial | undefined;
    let published: string[] = []; // what the API server trusts: the bundle injected after the previous step
    const actions: string[] = [];
    for (let day = 0; day <= 3 * 365; day++) {
      const now = at(day * DAY);
      for (let round = 0; round < 4; round++) {
        const r = await step(material, now, DEFAULT_POLICY, (pem) => published.includes(pem));
        if (r.plan.action === 'keep') break;
        actions.push(r.plan.action);
        material = r.material;
      }
      const s = state(material!);
      expect(s.serving.notAfter.getTime()).toBeGreaterThan(now.getTime());
      if (day > 0) expect(published).toContain(s.serving.issuer!.pem);
      expect(new X509Certificate(material!.cert).verify(s.serving.issuer!.x509.publicKey)).toBe(true);
      expect(s.cas.length).toBeLessThanOrEqual(2);
      published = splitPem(material!.caBundle);
    }
    expect(actions.filter((a) => a === 'add-ca')).toHaveLength(3);
    expect(actions.filter((a) => a === 'prune')).toHaveLength(3);
    expect(actions.filter((a) => a === 'issue')).toHaveLength(1);
  }, 60_000);
});
