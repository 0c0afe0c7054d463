// Certificate generation, shared by local runs (certs/local.ts) and the in-cluster Secret
// (certs/issue.ts). selfsigned 5.x is async (WebCrypto through @peculiar/x509) and signs with a CA
// through its `ca` option, so no other library is needed. ECDSA P-256: fast to generate, accepted
// by Go's TLS stack (the API server's webhook client).

import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { generate } from 'selfsigned';

// ECDSA P-256 with SHA-256 for every key and signature.
const KEY = { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' } as const;

export interface Pair {
  cert: string;
  key: string;
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

export async function generateCa(validity: Validity): Promise<Pair> {
  // A unique subject per CA: selfsigned writes no key identifiers, so a client trusting an old and
  // a new CA at once (a caBundle during rotation) tells them apart by subject name only.
  const commonName = `cilium-migration-guard-ca-${randomBytes(6).toString('hex')}`;
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    ...KEY,
    notBeforeDate: validity.notBefore,
    notAfterDate: validity.notAfter,
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** A serving pair signed by `ca`; IP literals among `sans` become IP SANs, the rest DNS SANs. */
export async function generateServing(ca: Pair, sans: string[], commonName: string, validity: Validity): Promise<Pair> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    ...KEY,
    notBeforeDate: validity.notBefore,
    notAfterDate: validity.notAfter,
    ca,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: sans.map((san) => (isIP(san) ? { type: 7 as const, ip: san } : { type: 2 as const, value: san })),
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
