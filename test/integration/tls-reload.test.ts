// Certificate rotation on a running server: the CertWatcher must pick up a new pair from disk
// (plain file replacement and a Secret volume's symlink swap), never fail a request during the
// swap, and ignore a bad pair while the old one keeps serving.

import { X509Certificate } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { Metrics } from '../../src/metrics.js';
import { startServer, type ServerHandle } from '../../src/server/start.js';
import { generateServing } from '../../src/certs/x509.js';
import { ensureServingCert, servingCertSans } from '../../src/certs/local.js';
import { writeFileAtomic } from '../../src/fs-atomic.js';
import { CertWatcher } from '../../src/server/tls.js';
import { capturingLogger, eventually } from '../support/https-client.js';

const ROTATION_TIMEOUT_MS = 15_000;
const quiet = createLogger({ level: 'silent' });

/** A server with no webhooks: these tests are about its certificate only. */
const startBare = (certDir: string) =>
  startServer({
    certDir,
    port: 0,
    host: '127.0.0.1',
    logger: quiet,
    metrics: new Metrics({ defaultMetrics: false }),
    readiness: () => ({ ready: true, detail: {} }),
    handlers: [],
  });

interface Probe {
  status: number;
  /** SHA-256 fingerprint of the certificate the server presented. */
  fingerprint: string;
}

/** GET /healthz on a fresh connection (a new TLS handshake each time), trusting only `ca`. */
function probe(url: string, ca: string | string[]): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${url}/healthz`, { ca, agent: false, timeout: 5_000 }, (res) => {
      const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, fingerprint }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const succeeds = (url: string, ca: string) => () =>
  probe(url, ca).then(
    (p) => p.status === 200,
    () => false,
  );

function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** A fresh CA-signed pair in its own directory (a different CA each call). */
async function newPair(root: string, name: string): Promise<{ cert: string; key: string; ca: string }> {
  const dir = join(root, name);
  const files = await ensureServingCert(dir);
  return { cert: await readFile(files.certFile, 'utf8'), key: await readFile(files.keyFile, 'utf8'), ca: files.caPem ?? '' };
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cmg-tls-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('rotation by replacing tls.crt and tls.key', () => {
  let server: ServerHandle;
  let certDir: string;
  let oldCa: string;

  beforeAll(async () => {
    certDir = join(root, 'serving');
    oldCa = (await ensureServingCert(certDir)).caPem ?? '';
    server = await startBare(certDir);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('serves the new pair without a failed request during the swap', async () => {
    const next = await newPair(root, 'next');
    const before = server.certWatcher.current.fingerprint;
    expect(await succeeds(server.url, next.ca)()).toBe(false); // the new CA is not trusted yet

    const REQUESTS = 200;
    const SWAP_AT = 20;
    const failures: unknown[] = [];
    const seen = new Map<string, number>();
    let swap: Promise<void> | undefined;
    for (let i = 0; i < REQUESTS; i++) {
      if (i === SWAP_AT) {
        // Key first, then certificate, each replaced atomically; between the two the pair on
        // disk does not match, which the watcher must refuse rather than apply.
        swap = (async () => {
          await writeFileAtomic(join(certDir, 'tls.key'), next.key, 0o600);
          await writeFileAtomic(join(certDir, 'tls.crt'), next.cert, 0o644);
        })();
      }
      try {
        const result = await probe(server.url, [oldCa, next.ca]);
        if (result.status !== 200) failures.push(result.status);
        seen.set(result.fingerprint, (seen.get(result.fingerprint) ?? 0) + 1);
      } catch (err) {
        failures.push(err);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await swap;

    expect(failures).toEqual([]);
    expect(await eventually(succeeds(server.url, next.ca), ROTATION_TIMEOUT_MS)).toBe(true);
    expect(server.certWatcher.current.fingerprint).toBe(fingerprintOf(next.cert));
    expect(server.certWatcher.current.fingerprint).not.toBe(before);
    // The loop spanned the rotation: it met the old certificate and the new one.
    expect(seen.get(before)).toBeGreaterThan(0);
    expect(seen.get(fingerprintOf(next.cert))).toBeGreaterThan(0);
    expect(await succeeds(server.url, oldCa)()).toBe(false);
    expect(server.certWatcher.notAfter?.getTime()).toBe(new Date(new X509Certificate(next.cert).validTo).getTime());
  });

  it('ignores a corrupt or mismatched pair and keeps serving the current one', async () => {
    const current = server.certWatcher.current;
    const currentCa = (await readFile(join(root, 'next', 'ca.crt'), 'utf8')).toString();
    const other = await newPair(root, 'other');

    // 1. A certificate that is not PEM.
    let rejected = server.certWatcher.stats.rejected;
    await writeFileAtomic(join(certDir, 'tls.crt'), '-----BEGIN CERTIFICATE-----\nnot base64 at all\n', 0o644);
    expect(await eventually(() => server.certWatcher.stats.rejected > rejected, ROTATION_TIMEOUT_MS)).toBe(true);
    let result = await probe(server.url, currentCa);
    expect(result).toEqual({ status: 200, fingerprint: current.fingerprint });

    // 2. A valid certificate with somebody else's key.
    rejected = server.certWatcher.stats.rejected;
    await writeFileAtomic(join(certDir, 'tls.crt'), other.cert, 0o644);
    expect(await eventually(() => server.certWatcher.stats.rejected > rejected, ROTATION_TIMEOUT_MS)).toBe(true);
    result = await probe(server.url, currentCa);
    expect(result).toEqual({ status: 200, fingerprint: current.fingerprint });
    expect(server.certWatcher.current.fingerprint).toBe(current.fingerprint);

    // 3. The watcher is still alive: completing the pair applies it.
    await writeFileAtomic(join(certDir, 'tls.key'), other.key, 0o600);
    expect(await eventually(succeeds(server.url, other.ca), ROTATION_TIMEOUT_MS)).toBe(true);
  });
});

describe('rotation of a Secret volume (the kubelet swaps the ..data symlink)', () => {
  it('picks up the new pair', async () => {
    const certDir = join(root, 'secret-volume');
    const first = await newPair(root, 'secret-v1');
    const second = await newPair(root, 'secret-v2');
    // The kubelet's layout: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/
    await mkdir(join(certDir, '..v1'), { recursive: true });
    await writeFile(join(certDir, '..v1', 'tls.crt'), first.cert);
    await writeFile(join(certDir, '..v1', 'tls.key'), first.key, { mode: 0o600 });
    await symlink('..v1', join(certDir, '..data'));
    await symlink('..data/tls.crt', join(certDir, 'tls.crt'));
    await symlink('..data/tls.key', join(certDir, 'tls.key'));

    const server = await startBare(certDir);
    try {
      expect(await succeeds(server.url, first.ca)()).toBe(true);
      await mkdir(join(certDir, '..v2'));
      await writeFile(join(certDir, '..v2', 'tls.crt'), second.cert);
      await writeFile(join(certDir, '..v2', 'tls.key'), second.key, { mode: 0o600 });
      await symlink('..v2', join(certDir, '..data_tmp'));
      await rename(join(certDir, '..data_tmp'), join(certDir, '..data'));
      await rm(join(certDir, '..v1'), { recursive: true });

      expect(await eventually(succeeds(server.url, second.ca), ROTATION_TIMEOUT_MS)).toBe(true);
      expect(server.certWatcher.stats.reloads).toBe(1);
    } finally {
      await server.close();
    }
  });
});

describe('CertWatcher start-up', () => {
  it('fails with a clear error when the pair is missing', async () => {
    const watcher = new CertWatcher({ certFile: join(root, 'none', 'tls.crt'), keyFile: join(root, 'none', 'tls.key'), logger: quiet });
    await expect(watcher.start()).rejects.toThrow(/cannot read serving certificate .*none\/tls\.crt/);
  });

  it('fails when the key does not match the certificate', async () => {
    const a = await newPair(root, 'mismatch-a');
    const b = await newPair(root, 'mismatch-b');
    const dir = join(root, 'mismatch');
    await mkdir(dir);
    await writeFile(join(dir, 'tls.crt'), a.cert);
    await writeFile(join(dir, 'tls.key'), b.key);
    const watcher = new CertWatcher({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), logger: quiet });
    await expect(watcher.start()).rejects.toThrow(`serving key ${join(dir, 'tls.key')} does not match serving certificate ${join(dir, 'tls.crt')}`);
  });

  it('fails when the certificate is not PEM', async () => {
    const dir = join(root, 'garbage');
    await mkdir(dir);
    await writeFile(join(dir, 'tls.crt'), 'hello');
    await copyFile(join(root, 'mismatch-a', 'tls.key'), join(dir, 'tls.key'));
    const watcher = new CertWatcher({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), logger: quiet });
    await expect(watcher.start()).rejects.toThrow(`serving certificate ${join(dir, 'tls.crt')} is not a PEM X.509 certificate`);
  });

  it('a corrupt tls.crt next to a generated CA (local mode) is named in the error', async () => {
    const dir = join(root, 'corrupt-local');
    await ensureServingCert(dir);
    await writeFile(join(dir, 'tls.crt'), '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n');
    await expect(ensureServingCert(dir)).rejects.toThrow(`serving certificate ${join(dir, 'tls.crt')} is not a PEM X.509 certificate`);
  });
});

describe('unusable pairs swapped in under the running server (issue 9.3)', () => {
  let server: ServerHandle;
  let certDir: string;
  let ca: { cert: string; key: string };
  const metrics = new Metrics({ defaultMetrics: false });
  const { logger, lines } = capturingLogger();
  const DAY = 24 * 60 * 60 * 1000;
  const NAMES = servingCertSans();

  beforeAll(async () => {
    certDir = join(root, 'judged');
    await ensureServingCert(certDir);
    ca = { cert: await readFile(join(certDir, 'ca.crt'), 'utf8'), key: await readFile(join(certDir, 'ca.key'), 'utf8') };
    server = await startServer({
      certDir,
      port: 0,
      host: '127.0.0.1',
      logger,
      metrics,
      readiness: () => ({ ready: true, detail: {} }),
      handlers: [],
      servingNames: ['localhost', '127.0.0.1'],
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  const rejectedFor = async (reason: string): Promise<number> =>
    (await metrics.certificateRejected.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

  /** Writes the pair (key first), waits for the watcher to refuse it for `reason`, and checks the old pair still serves. */
  async function refused(pair: { cert: string; key: string }, reason: string): Promise<void> {
    const current = server.certWatcher.current.fingerprint;
    const before = await rejectedFor(reason);
    await writeFileAtomic(join(certDir, 'tls.key'), pair.key, 0o600);
    await writeFileAtomic(join(certDir, 'tls.crt'), pair.cert, 0o644);
    expect(await eventually(async () => (await rejectedFor(reason)) > before, ROTATION_TIMEOUT_MS), `refused as ${reason}`).toBe(true);
    expect(await probe(server.url, ca.cert)).toEqual({ status: 200, fingerprint: current });
    expect(server.certWatcher.current.fingerprint).toBe(current);
    expect(lines.some((line) => line.msg === 'new serving pair refused; keeping the current one' && line.reason === reason)).toBe(true);
  }

  it('refuses an expired pair', async () => {
    const expired = await generateServing(ca, NAMES, 'expired', { notBefore: new Date('2019-01-01T00:00:00Z'), notAfter: new Date('2020-01-01T00:00:00Z') });
    await refused(expired, 'expired');
  });

  it('refuses a pair that is not valid yet', async () => {
    const future = await generateServing(ca, NAMES, 'future', { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 30 * DAY) });
    await refused(future, 'not_yet_valid');
  });

  it("refuses a certificate with somebody else's key", async () => {
    const a = await generateServing(ca, NAMES, 'a', { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) });
    const b = await generateServing(ca, NAMES, 'b', { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) });
    await refused({ cert: a.cert, key: b.key }, 'key_mismatch');
  });

  it('refuses a pair that does not cover the serving names', async () => {
    const elsewhere = await generateServing(ca, ['guard.example.invalid'], 'elsewhere', {
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + DAY),
    });
    await refused(elsewhere, 'names');
    const refusal = lines.findLast((line) => line.reason === 'names');
    expect(String(refusal?.problem)).toContain('does not cover localhost, 127.0.0.1');
  });

  it('still takes a good pair afterwards, and exposes the refusals as cmg_certificate_rejected_total', async () => {
    const good = await generateServing(ca, NAMES, 'good', { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 10 * DAY) });
    await writeFileAtomic(join(certDir, 'tls.key'), good.key, 0o600);
    await writeFileAtomic(join(certDir, 'tls.crt'), good.cert, 0o644);
    expect(await eventually(() => server.certWatcher.current.fingerprint === fingerprintOf(good.cert), ROTATION_TIMEOUT_MS)).toBe(true);
    expect((await probe(server.url, ca.cert)).fingerprint).toBe(fingerprintOf(good.cert));
    const text = await metrics.text();
    for (const reason of ['expired', 'not_yet_valid', 'key_mismatch', 'names']) {
      expect(text).toMatch(new RegExp(`cmg_certificate_rejected_total\\{reason="${reason}"\\} [1-9]`));
    }
  });
});

describe('ensureServingCert', () => {
  it('writes a CA and a serving pair signed by it, keys 0600, with the in-cluster SANs', async () => {
    const dir = join(root, 'generated');
    const files = await ensureServingCert(dir, { serviceName: 'guard', namespace: 'ops', hosts: ['10.0.0.7', 'guard.example'] });
    expect(files.generated).toBe(true);
    expect((await stat(join(dir, 'tls.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'ca.key'))).mode & 0o777).toBe(0o600);

    const leaf = new X509Certificate(await readFile(files.certFile));
    const ca = new X509Certificate(files.caPem ?? '');
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(ca.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    const sans = leaf.subjectAltName ?? '';
    for (const name of [
      'DNS:localhost',
      'IP Address:127.0.0.1',
      'IP Address:0:0:0:0:0:0:0:1',
      'DNS:guard',
      'DNS:guard.ops',
      'DNS:guard.ops.svc',
      'DNS:guard.ops.svc.cluster.local',
      'IP Address:10.0.0.7',
      'DNS:guard.example',
    ]) {
      expect(sans).toContain(name);
    }
  });

  it('keeps an existing pair and reuses an existing CA', async () => {
    const dir = join(root, 'generated');
    const before = await readFile(join(dir, 'tls.crt'), 'utf8');
    const again = await ensureServingCert(dir);
    expect(again.generated).toBe(false);
    expect(await readFile(join(dir, 'tls.crt'), 'utf8')).toBe(before);

    const caBefore = await readFile(join(dir, 'ca.crt'), 'utf8');
    await rm(join(dir, 'tls.crt'));
    await rm(join(dir, 'tls.key'));
    const regenerated = await ensureServingCert(dir);
    expect(regenerated.generated).toBe(true);
    expect(regenerated.caPem).toBe(caBefore);
    expect(new X509Certificate(await readFile(join(dir, 'tls.crt'))).checkIssued(new X509Certificate(caBefore))).toBe(true);
  });

  it('renews a pair it generated once it is within a week of expiry, keeping the CA', async () => {
    const dir = join(root, 'short-lived');
    await ensureServingCert(dir, { validityDays: 1 });
    const first = await readFile(join(dir, 'tls.crt'), 'utf8');
    const caBefore = await readFile(join(dir, 'ca.crt'), 'utf8');
    const again = await ensureServingCert(dir);
    expect(again.generated).toBe(true);
    expect(await readFile(join(dir, 'tls.crt'), 'utf8')).not.toBe(first);
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(caBefore);
  });

  it('never replaces a pair it did not generate, however close to expiry', async () => {
    const dir = join(root, 'supplied');
    await ensureServingCert(dir, { validityDays: 1 });
    await rm(join(dir, 'ca.key')); // a pair handed over without its CA key: not ours to renew
    const before = await readFile(join(dir, 'tls.crt'), 'utf8');
    expect((await ensureServingCert(dir)).generated).toBe(false);
    expect(await readFile(join(dir, 'tls.crt'), 'utf8')).toBe(before);
  });

  it('refuses to complete half a pair', async () => {
    const dir = join(root, 'half');
    await mkdir(dir);
    await writeFile(join(dir, 'tls.crt'), 'x');
    await expect(ensureServingCert(dir)).rejects.toThrow(/has tls\.crt but no tls\.key/);
  });
});
