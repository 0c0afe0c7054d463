// The certificate lifecycle as a pure decision: given what the Secret holds and the time, what
// (if anything) must change. No I/O, no clock, no randomness: the controller reads, this decides,
// issue.ts makes the new material, secret.ts writes it.
//
// The Secret holds:
//   ca.crt  the trust bundle: every CA the API server must trust now (one, or old + new during a
//           CA rotation). This is exactly what goes into the webhook configurations' caBundle.
//   ca.key  the key of the signing CA, the newest CA of the bundle.
//   tls.crt / tls.key  the serving pair, signed by a CA of the bundle.
//
// A CA rotation never breaks a call, because the steps are ordered:
//   1. add-ca           a new signing CA joins the bundle; serving is unchanged (still old-CA signed).
//   2. (wait)           until every webhook configuration's caBundle contains the new CA, and the
//                       overlap has passed (API servers pick up caBundle changes through informers).
//   3. reissue-serving  the serving pair switches to the new CA, which the API server now trusts.
//   4. prune            an old CA leaves the bundle only once it has expired; every certificate it
//                       signed expired with it (serving certificates never outlive their CA).

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { isIP } from 'node:net';

export interface CertPolicy {
  caValidityMs: number;
  /** Add the next CA when the signing CA has less than this left. */
  caRenewBeforeMs: number;
  servingValidityMs: number;
  /** Reissue the serving pair when it has less than this left. */
  servingRenewBeforeMs: number;
  /** Minimum time between adding a CA to the bundle and serving with a certificate it signed. */
  caOverlapMs: number;
  /** notBefore is set this far in the past, to tolerate clock skew between hosts. */
  backdateMs: number;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

export const DEFAULT_POLICY: Readonly<CertPolicy> = Object.freeze({
  caValidityMs: 365 * DAY,
  caRenewBeforeMs: 90 * DAY,
  servingValidityMs: 90 * DAY,
  servingRenewBeforeMs: 30 * DAY,
  caOverlapMs: 10 * MINUTE,
  backdateMs: 5 * MINUTE,
});

/** The one renewal rule: a certificate is renewed from `renewBeforeMs` before it expires. */
export function renewAt(notAfter: Date, renewBeforeMs: number): number {
  return notAfter.getTime() - renewBeforeMs;
}

/** Throws when a policy could make the lifecycle loop or leave a gap. */
export function validatePolicy(policy: CertPolicy): CertPolicy {
  const problems: string[] = [];
  if (policy.caRenewBeforeMs >= policy.caValidityMs) problems.push('caRenewBefore must be shorter than caValidity');
  if (policy.servingRenewBeforeMs >= policy.servingValidityMs) problems.push('servingRenewBefore must be shorter than servingValidity');
  // A serving certificate never outlives its CA; issued before the CA's renewal point, it then
  // always gets its full validity (no ever-shorter reissues near the CA's end).
  if (policy.servingValidityMs > policy.caRenewBeforeMs) problems.push('servingValidity must not exceed caRenewBefore');
  if (policy.caOverlapMs >= policy.caRenewBeforeMs - policy.servingRenewBeforeMs) {
    problems.push('caOverlap must be shorter than caRenewBefore - servingRenewBefore');
  }
  if (problems.length > 0) throw new Error(`invalid certificate policy: ${problems.join('; ')}`);
  return policy;
}

/** The four PEM strings of the Secret. */
export interface CertMaterial {
  caBundle: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface CaCert {
  pem: string;
  x509: X509Certificate;
  notBefore: Date;
  notAfter: Date;
}

export interface CertState {
  /** The bundle, in its order. */
  cas: CaCert[];
  /** The bundle entry whose key is ca.key. */
  signer: CaCert;
  serving: { x509: X509Certificate; notAfter: Date; issuer: CaCert | undefined };
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate of a PEM bundle, each with a trailing newline. */
export function splitPem(bundle: string): string[] {
  return (bundle.match(PEM_CERT) ?? []).map((pem) => `${pem}\n`);
}

export function joinPem(pems: string[]): string {
  return pems.join('');
}

function caCert(pem: string): CaCert {
  const x509 = new X509Certificate(pem);
  return { pem, x509, notBefore: new Date(x509.validFrom), notAfter: new Date(x509.validTo) };
}

/** Parses the Secret's material; a string saying what is wrong when it cannot be used. */
export function inspect(material: CertMaterial): CertState | string {
  let cas: CaCert[];
  try {
    cas = splitPem(material.caBundle).map(caCert);
  } catch (err) {
    return `ca.crt does not parse: ${(err as Error).message}`;
  }
  if (cas.length === 0) return 'ca.crt holds no certificate';
  let signer: CaCert | undefined;
  let serving: X509Certificate;
  try {
    const caKey = createPrivateKey(material.caKey);
    signer = cas.find((ca) => ca.x509.checkPrivateKey(caKey));
    serving = new X509Certificate(material.cert);
    if (!serving.checkPrivateKey(createPrivateKey(material.key))) return 'tls.key does not match tls.crt';
  } catch (err) {
    return `the Secret's keys or serving certificate do not parse: ${(err as Error).message}`;
  }
  if (!signer) return 'ca.key belongs to no certificate of ca.crt';
  const issuer = cas.find((ca) => serving.checkIssued(ca.x509) && serving.verify(ca.x509.publicKey));
  return { cas, signer, serving: { x509: serving, notAfter: new Date(serving.validTo), issuer } };
}

export type Plan =
  | { action: 'issue'; reason: string }
  | { action: 'add-ca'; reason: string }
  | { action: 'reissue-serving'; reason: string }
  | { action: 'prune'; reason: string; drop: string[] }
  | { action: 'keep'; reason: string; nextAt: Date };

export interface PlanInput {
  /** Undefined when there is no Secret yet. */
  material: CertMaterial | undefined;
  now: Date;
  policy: CertPolicy;
  /** Names and IPs the serving certificate must cover. */
  sans: string[];
  /**
   * Whether every webhook configuration's caBundle already contains the signing CA. Serving never
   * switches to a CA the API server does not trust yet. True when nothing is injected by us.
   */
  signerPublished: (signerPem: string) => boolean;
}

function covers(cert: X509Certificate, san: string): boolean {
  return isIP(san) ? cert.checkIP(san) !== undefined : cert.checkHost(san, { wildcards: false }) !== undefined;
}

/** The next step of the lifecycle. Applying it and planning again converges to `keep`. */
export function planRotation(input: PlanInput): Plan {
  const { material, now, policy } = input;
  if (!material) return { action: 'issue', reason: 'no certificate Secret yet' };
  const state = inspect(material);
  if (typeof state === 'string') return { action: 'issue', reason: `the Secret is unusable (${state}); replacing it` };
  const { signer, serving } = state;
  const t = now.getTime();

  const caRenewAt = renewAt(signer.notAfter, policy.caRenewBeforeMs);
  if (t >= caRenewAt) return { action: 'add-ca', reason: `signing CA expires ${signer.notAfter.toISOString()}` };

  const servingExpired = t >= serving.notAfter.getTime();
  const waits: number[] = [caRenewAt];
  if (!serving.issuer) return { action: 'reissue-serving', reason: 'serving certificate is signed by no CA of the bundle' };
  if (serving.issuer !== signer) {
    // Created-at of the signing CA: issue.ts backdates notBefore by policy.backdateMs.
    const switchAt = signer.notBefore.getTime() + policy.backdateMs + policy.caOverlapMs;
    if (servingExpired || (t >= switchAt && input.signerPublished(signer.pem))) {
      return { action: 'reissue-serving', reason: 'switching the serving certificate to the new CA' };
    }
    waits.push(switchAt);
  } else {
    const servingRenewAt = renewAt(serving.notAfter, policy.servingRenewBeforeMs);
    if (t >= servingRenewAt) return { action: 'reissue-serving', reason: `serving certificate expires ${serving.notAfter.toISOString()}` };
    const missing = input.sans.filter((san) => !covers(serving.x509, san));
    if (missing.length > 0) return { action: 'reissue-serving', reason: `serving certificate does not cover ${missing.join(', ')}` };
    waits.push(servingRenewAt);
  }

  const expired = state.cas.filter((ca) => ca !== signer && ca.notAfter.getTime() <= t);
  if (expired.length > 0) {
    return { action: 'prune', reason: 'expired CAs leave the bundle', drop: expired.map((ca) => ca.x509.fingerprint256) };
  }
  for (const ca of state.cas) if (ca !== signer) waits.push(ca.notAfter.getTime());
  return { action: 'keep', reason: 'certificates are current', nextAt: new Date(Math.min(...waits)) };
}
