// Judging a certificate/key pair before it is used: parsed, the key matches, valid now, covering
// the names it serves. Used by the local generator (local.ts) and the file watcher (server/tls.ts).

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { isIP } from 'node:net';
import type { Pair } from './x509.js';

export interface LoadedPair extends Pair {
  notBefore: Date;
  notAfter: Date;
  /** Whether the certificate is valid for this DNS name or IP address. */
  covers(name: string): boolean;
  /** SHA-256 fingerprint of the leaf certificate, for logs. */
  fingerprint: string;
}

export function parseCertificate(pem: string, label: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new PairProblem('invalid', `${label} is not a PEM X.509 certificate (${(err as Error).message})`);
  }
}

/** Why a pair is refused; the `reason` label of cmg_certificate_rejected_total. */
export type PairRejection = 'unreadable' | 'invalid' | 'key_mismatch' | 'expired' | 'not_yet_valid' | 'names';

export class PairProblem extends Error {
  constructor(
    readonly reason: PairRejection,
    message: string,
  ) {
    super(message);
    this.name = 'PairProblem';
  }
}

export interface PairLabels {
  /** "serving" or "CA", in messages. */
  what?: string;
  /** File names, so a message says which file is wrong. */
  certFile?: string;
  keyFile?: string;
}

/**
 * Parses the pair and checks that the key belongs to the (first) certificate. Throws a
 * PairProblem naming the file that is wrong.
 */
export function validatePair(cert: string, key: string, labels: PairLabels = {}): LoadedPair {
  const what = labels.what ?? 'serving';
  const certLabel = `${what} certificate${labels.certFile ? ` ${labels.certFile}` : ''}`;
  const keyLabel = `${what} key${labels.keyFile ? ` ${labels.keyFile}` : ''}`;
  const x509 = parseCertificate(cert, certLabel);
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new PairProblem('invalid', `${keyLabel} is not a PEM private key (${(err as Error).message})`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new PairProblem('key_mismatch', `${keyLabel} does not match ${certLabel} (subject ${x509.subject.replace(/\n/g, ', ')})`);
  }
  return {
    cert,
    key,
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    fingerprint: x509.fingerprint256,
    covers: (name) => (isIP(name) ? x509.checkIP(name) !== undefined : x509.checkHost(name) !== undefined),
  };
}

/** What a pair must satisfy to be used: valid now, and covering `names`. Throws a PairProblem. */
export function checkUsable(pair: LoadedPair, now: Date, names: readonly string[]): void {
  if (now < pair.notBefore) throw new PairProblem('not_yet_valid', `the certificate is not valid before ${pair.notBefore.toISOString()}`);
  if (now >= pair.notAfter) throw new PairProblem('expired', `the certificate expired at ${pair.notAfter.toISOString()}`);
  const missing = names.filter((name) => !pair.covers(name));
  if (missing.length > 0) throw new PairProblem('names', `the certificate does not cover ${missing.join(', ')}, which the pair in use serves`);
}
