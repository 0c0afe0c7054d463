// Makes the material a plan asks for: new CAs and serving pairs (certs/x509.ts), and the next
// Secret content from the current one.

import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { inspect, joinPem, splitPem, type CertMaterial, type CertPolicy, type Plan } from './plan.js';
import { generateCa, generateServing, type Pair } from './x509.js';

export interface IssueContext {
  now: Date;
  policy: CertPolicy;
  sans: string[];
}

export function issueCa(ctx: IssueContext): Promise<Pair> {
  return generateCa({
    notBefore: new Date(ctx.now.getTime() - ctx.policy.backdateMs),
    notAfter: new Date(ctx.now.getTime() + ctx.policy.caValidityMs),
  });
}

export function issueServing(ca: Pair, ctx: IssueContext): Promise<Pair> {
  const caNotAfter = new X509Certificate(ca.cert).validTo;
  // Never past the CA: pruning an expired CA must never strand a still-valid serving certificate.
  const notAfter = Math.min(ctx.now.getTime() + ctx.policy.servingValidityMs, new Date(caNotAfter).getTime());
  const commonName = ctx.sans.find((san) => !isIP(san) && san !== 'localhost') ?? 'cilium-migration-guard';
  return generateServing(ca, ctx.sans, commonName, {
    notBefore: new Date(ctx.now.getTime() - ctx.policy.backdateMs),
    notAfter: new Date(notAfter),
  });
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
