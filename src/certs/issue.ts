// Makes the material a plan asks for: new CAs and serving pairs (selfsigned, ECDSA P-256, like
// server/tls.ts does for local runs), and the next Secret content from the current one.

import { X509Certificate, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { generate } from 'selfsigned';
import { inspect, joinPem, splitPem, type CertMaterial, type CertPolicy, type Plan } from './plan.js';

interface Pair {
  cert: string;
  key: string;
}

export interface IssueContext {
  now: Date;
  policy: CertPolicy;
  sans: string[];
}

export async function issueCa(ctx: IssueContext): Promise<Pair> {
  // A unique subject per CA: selfsigned writes no key identifiers, so a client trusting an old and
  // a new CA at once (the bundle during a rotation) tells them apart by subject name only.
  const commonName = `cilium-migration-guard-ca-${randomBytes(6).toString('hex')}`;
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(ctx.now.getTime() - ctx.policy.backdateMs),
    notAfterDate: new Date(ctx.now.getTime() + ctx.policy.caValidityMs),
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

export async function issueServing(ca: Pair, ctx: IssueContext): Promise<Pair> {
  const caNotAfter = new X509Certificate(ca.cert).validTo;
  // Never past the CA: pruning an expired CA must never strand a still-valid serving certificate.
  const notAfter = Math.min(ctx.now.getTime() + ctx.policy.servingValidityMs, new Date(caNotAfter).getTime());
  const pems = await generate([{ name: 'commonName', value: ctx.sans.find((san) => !isIP(san) && san !== 'localhost') ?? 'cilium-migration-guard' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(ctx.now.getTime() - ctx.policy.backdateMs),
    notAfterDate: new Date(notAfter),
    ca,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: ctx.sans.map((san) => (isIP(san) ? { type: 7 as const, ip: san } : { type: 2 as const, value: san })),
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** The Secret content after `plan`. `current` must be set for every action but `issue`. */
export async function nextMaterial(plan: Exclude<Plan, { action: 'keep' }>, current: CertMaterial | undefined, ctx: IssueContext): Promise<CertMaterial> {
  if (plan.action === 'issue' || !current) {
    const ca = await issueCa(ctx);
    const serving = await issueServing(ca, ctx);
    return { caBundle: ca.cert, caKey: ca.key, cert: serving.cert, key: serving.key };
  }
  const state = inspect(current);
  if (typeof state === 'string') throw new Error(`cannot ${plan.action} from an unusable Secret: ${state}`);
  switch (plan.action) {
    case 'add-ca': {
      const ca = await issueCa(ctx);
      return { ...current, caBundle: joinPem([...splitPem(current.caBundle), ca.cert]), caKey: ca.key };
    }
    case 'reissue-serving': {
      const serving = await issueServing({ cert: state.signer.pem, key: current.caKey }, ctx);
      return { ...current, cert: serving.cert, key: serving.key };
    }
    case 'prune': {
      const kept = state.cas.filter((ca) => !plan.drop.includes(ca.x509.fingerprint256)).map((ca) => ca.pem);
      return { ...current, caBundle: joinPem(kept) };
    }
  }
}
