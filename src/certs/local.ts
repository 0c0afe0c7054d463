// Local serving certificates (`serve` outside a cluster, tests, the bench): a CA and a serving pair
// it signs, written to a directory, and renewed when they are ours and close to expiry. In a
// cluster the certificate controller (cert-controller.ts) keeps the pair in a Secret instead.

import { X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exists, writeFileAtomic } from '../fs-atomic.js';
import { parseCertificate, validatePair } from './pair.js';
import { renewAt } from './plan.js';
import { generateCa, generateServing } from './x509.js';

export const CERT_FILE = 'tls.crt';
export const KEY_FILE = 'tls.key';
export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';

export interface ServingCertOptions {
  /** Extra SANs: IP literals become IP SANs, anything else a DNS SAN. */
  hosts?: string[];
  /** The Service in front of the webhook. Default "cilium-migration-guard". */
  serviceName?: string;
  /** Its namespace. Default "cilium-migration-guard". */
  namespace?: string;
  /** Lifetime of the serving certificate. Default 365 days (the CA gets ten times that). */
  validityDays?: number;
}

export interface ServingCertFiles {
  certFile: string;
  keyFile: string;
  /** The CA that signed the pair; undefined when the pair was supplied (e.g. by cert-manager). */
  caFile?: string;
  /** The PEM to put in the webhook configuration's caBundle, when we made (or kept) the CA. */
  caPem?: string;
  /** True when this call wrote a new serving pair. */
  generated: boolean;
}

export function servingCertSans(options: ServingCertOptions = {}): string[] {
  const service = options.serviceName ?? 'cilium-migration-guard';
  const namespace = options.namespace ?? 'cilium-migration-guard';
  const names = [
    'localhost',
    '127.0.0.1',
    '::1',
    service,
    `${service}.${namespace}`,
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
    ...(options.hosts ?? []),
  ];
  return [...new Set(names)];
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** From five minutes ago (tolerates small clock skew) for `days` days. */
function validFor(days: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - 5 * 60_000), notAfter: new Date(now + days * DAY_MS) };
}

/** A locally generated pair is renewed this long before it expires (renewAt, plan.ts); a pair you supply never is. */
export const LOCAL_RENEW_BEFORE_MS = 7 * DAY_MS;

/** Is the pair in `dir` one we generated (signed by the CA whose key is there) and close to expiry? */
async function ownPairExpiring(dir: string, certFile: string): Promise<boolean> {
  const ca = await loadCa(dir);
  if (!ca) return false;
  const cert = parseCertificate(await readFile(certFile, 'utf8'), `serving certificate ${certFile}`);
  if (!cert.checkIssued(new X509Certificate(ca.cert))) return false;
  return Date.now() >= renewAt(new Date(cert.validTo), LOCAL_RENEW_BEFORE_MS);
}

/** Loads a CA pair if both files are there and usable; undefined otherwise. */
async function loadCa(dir: string): Promise<{ cert: string; key: string } | undefined> {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  if (!(await exists(certPath)) || !(await exists(keyPath))) return undefined;
  const pair = { cert: await readFile(certPath, 'utf8'), key: await readFile(keyPath, 'utf8') };
  // A broken CA is an error, not something to replace silently.
  validatePair(pair.cert, pair.key, { what: 'CA', certFile: certPath, keyFile: keyPath });
  return pair;
}

/**
 * Makes sure `dir` holds a serving pair. An existing tls.crt + tls.key is used as is (cert-manager,
 * a mounted Secret); when neither exists, a CA (ca.crt, ca.key, reused if present) and a serving
 * pair signed by it are written. Exactly one of the two files is an error: we never overwrite half
 * of somebody's pair. Keys are written 0600, every file atomically.
 */
export async function ensureServingCert(dir: string, options: ServingCertOptions = {}): Promise<ServingCertFiles> {
  const certFile = join(dir, CERT_FILE);
  const keyFile = join(dir, KEY_FILE);
  const caFile = join(dir, CA_CERT_FILE);
  const [haveCert, haveKey] = [await exists(certFile), await exists(keyFile)];
  if (haveCert && haveKey && !(await ownPairExpiring(dir, certFile))) {
    const caPem = (await exists(caFile)) ? await readFile(caFile, 'utf8') : undefined;
    return caPem === undefined ? { certFile, keyFile, generated: false } : { certFile, keyFile, caFile, caPem, generated: false };
  }
  if (haveCert !== haveKey) {
    const [present, missing] = haveCert ? [CERT_FILE, KEY_FILE] : [KEY_FILE, CERT_FILE];
    throw new Error(`${dir} has ${present} but no ${missing}: supply both files, or neither to generate a pair`);
  }

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const validityDays = options.validityDays ?? 365;
  let ca = await loadCa(dir);
  if (!ca) {
    ca = await generateCa(validFor(validityDays * 10)); // the CA outlives several serving certs
    await writeFileAtomic(join(dir, CA_KEY_FILE), ca.key, 0o600);
    await writeFileAtomic(caFile, ca.cert, 0o644);
  }
  const sans = servingCertSans(options);
  const commonName = sans[3] ?? 'cilium-migration-guard';
  const serving = await generateServing(ca, sans, commonName, validFor(validityDays));
  // Key first, certificate last: a watcher that sees the new certificate also finds its key.
  await writeFileAtomic(keyFile, serving.key, 0o600);
  await writeFileAtomic(certFile, serving.cert, 0o644);
  return { certFile, keyFile, caFile, caPem: ca.cert, generated: true };
}
