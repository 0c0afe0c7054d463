// Which TLS the server speaks (issue 9.6): TLS 1.3, and TLS 1.2 only with ECDHE key exchange and
// an AEAD cipher. Clients that offer nothing else are refused at the handshake; the suites the API
// server's Go client offers first succeed. Also after a certificate rotation (setSecureContext).

import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateServing } from '../../src/certs/x509.js';
import { createLogger } from '../../src/logger.js';
import { Metrics } from '../../src/metrics.js';
import { startServer, type ServerHandle } from '../../src/server/start.js';
import { ensureServingCert, servingCertSans } from '../../src/certs/local.js';
import { writeFileAtomic } from '../../src/fs-atomic.js';
import { eventually } from '../support/https-client.js';

let dir: string;
let ca: { cert: string; key: string };
let server: ServerHandle;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cmg-tls-ciphers-'));
  await ensureServingCert(dir);
  ca = { cert: await readFile(join(dir, 'ca.crt'), 'utf8'), key: await readFile(join(dir, 'ca.key'), 'utf8') };
  server = await startServer({
    certDir: dir,
    port: 0,
    host: '127.0.0.1',
    logger: createLogger({ level: 'silent' }),
    metrics: new Metrics({ defaultMetrics: false }),
    readiness: () => ({ ready: true, detail: {} }),
    handlers: [],
  });
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

type Handshake = { ok: true; version: string; cipher: string } | { ok: false; error: string };

function handshake(options: {
  ciphers?: string;
  minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
}): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: ca.cert, ALPNProtocols: ['h2'], ...options });
    const timer = setTimeout(() => socket.destroy(new Error('timeout')), 5_000);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      resolve({ ok: true, version: socket.getProtocol() ?? '', cipher: socket.getCipher().name });
      socket.destroy();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, error: err.message });
    });
  });
}

// CBC suites a client might offer: SHA-1 MACs, and the SHA-2 ones node still allows by default.
const CBC = {
  'ECDHE-ECDSA-AES128-SHA': 'CBC, SHA-1',
  'ECDHE-RSA-AES128-SHA': 'CBC, SHA-1',
  'ECDHE-ECDSA-AES256-SHA': 'CBC, SHA-1',
  'ECDHE-ECDSA-AES128-SHA256': 'CBC, SHA-256',
  'ECDHE-ECDSA-AES256-SHA384': 'CBC, SHA-384',
  'AES128-GCM-SHA256': 'no ECDHE (RSA key exchange)',
};

describe('TLS suites', () => {
  for (const [suite, what] of Object.entries(CBC)) {
    it(`refuses a TLS 1.2 client that offers only ${suite} (${what})`, async () => {
      const result = await handshake({ ciphers: suite, maxVersion: 'TLSv1.2' });
      expect(result.ok, JSON.stringify(result)).toBe(false);
    });
  }

  it('accepts a TLS 1.2 client offering ECDHE-ECDSA/RSA-AES128-GCM-SHA256', async () => {
    const result = await handshake({ ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' });
    expect(result).toEqual({ ok: true, version: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
  });

  it('accepts TLS 1.3, and refuses TLS 1.1', async () => {
    expect(await handshake({})).toMatchObject({ ok: true, version: 'TLSv1.3' });
    const old = await handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' });
    expect(old.ok).toBe(false);
  });

  it('keeps the same suites after a certificate rotation', async () => {
    const DAY = 24 * 60 * 60 * 1000;
    const next = await generateServing(ca, servingCertSans(), 'rotated', { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) });
    await writeFileAtomic(join(dir, 'tls.key'), next.key, 0o600);
    await writeFileAtomic(join(dir, 'tls.crt'), next.cert, 0o644);
    const fingerprint = new X509Certificate(next.cert).fingerprint256;
    expect(await eventually(() => server.certWatcher.current.fingerprint === fingerprint, 15_000)).toBe(true);
    expect((await handshake({ ciphers: 'ECDHE-ECDSA-AES128-SHA', maxVersion: 'TLSv1.2' })).ok).toBe(false);
    expect(await handshake({ ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' })).toMatchObject({
      ok: true,
      cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256',
    });
  });
});
