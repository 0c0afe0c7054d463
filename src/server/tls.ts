// Serving certificates: generate a CA-signed pair for local runs, and watch the pair on disk so a
// rotated Secret is picked up without a restart (controller-runtime's certwatcher, in TypeScript).

import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { watch, type FSWatcher } from 'node:fs';
import { access, chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import { generateCa, generateServing } from '../certs/x509.js';
import type { Logger } from '../logger.js';

export const CERT_FILE = 'tls.crt';
export const KEY_FILE = 'tls.key';
export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';

/** The floor for every TLS listener here; the API server speaks TLS 1.2 and 1.3. */
export const MIN_TLS_VERSION = 'TLSv1.2' as const;

/**
 * Every suite offered, set explicitly (node's default list still has CBC suites with SHA-1 and
 * SHA-2 MACs, and DHE): TLS 1.3's three, and for TLS 1.2 only ECDHE key exchange with an AEAD
 * cipher. Go's crypto/tls, whose client the API server calls webhooks with, implements every one
 * of these (src/crypto/tls/cipher_suites.go: TLS_ECDHE_{ECDSA,RSA}_WITH_AES_{128,256}_GCM_*,
 * *_CHACHA20_POLY1305_SHA256 and the TLS 1.3 suites), so the two always share a suite.
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** The TLS settings every listener and every rotated secure context shares. */
export const TLS_SETTINGS = { minVersion: MIN_TLS_VERSION, ciphers: TLS_CIPHERS } as const;

// ───────────────────────────── generation ─────────────────────────────

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

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Write-then-rename in the same directory: a reader sees the old file or the new one, never half. */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await chmod(temp, mode); // open()'s mode is filtered by the umask; the result must not be
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
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

/** A locally generated pair is renewed this long before it expires; a pair you supply never is. */
export const LOCAL_RENEW_BEFORE_MS = 7 * DAY_MS;

/** Is the pair in `dir` one we generated (signed by the CA whose key is there) and close to expiry? */
async function ownPairExpiring(dir: string, certFile: string): Promise<boolean> {
  const ca = await loadCa(dir);
  if (!ca) return false;
  const cert = parseCertificate(await readFile(certFile, 'utf8'), `serving certificate ${certFile}`);
  if (!cert.checkIssued(new X509Certificate(ca.cert))) return false;
  return new Date(cert.validTo).getTime() - Date.now() < LOCAL_RENEW_BEFORE_MS;
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

// ───────────────────────────── validation ─────────────────────────────

export interface CertPair {
  cert: string;
  key: string;
}

export interface LoadedPair extends CertPair {
  notBefore: Date;
  notAfter: Date;
  /** Whether the certificate is valid for this DNS name or IP address. */
  covers(name: string): boolean;
  /** SHA-256 fingerprint of the leaf certificate, for logs. */
  fingerprint: string;
}

function parseCertificate(pem: string, label: string): X509Certificate {
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

// ───────────────────────────── watching ─────────────────────────────

export interface CertWatcherOptions {
  certFile: string;
  keyFile: string;
  logger: Logger;
  /** The fallback poll; fs.watch can miss a Secret volume's symlink swap. Default 10 s. */
  pollIntervalMs?: number;
  /** Coalesces the burst of events one rotation makes (two files, a symlink swap). Default 100 ms. */
  debounceMs?: number;
  /**
   * The names clients reach this server by (the Service's DNS name, 127.0.0.1 locally). A new
   * pair must cover each of them that the pair in use covers. Default none.
   */
  servingNames?: readonly string[];
  /** Called with the reason of every refused pair (the metric). */
  onReject?: (reason: PairRejection) => void;
  /** Default: the system clock. */
  now?: () => Date;
}

export interface CertWatcherStats {
  /** Pairs applied after the first one. */
  reloads: number;
  /** Changed pairs that failed validation or were refused by a listener, and so were ignored. */
  rejected: number;
}

export type RotationListener = (pair: LoadedPair) => void;

/**
 * Reads the serving pair at start (a missing or bad pair fails start-up; one that is expired, not
 * yet valid or does not cover the serving names starts with a warning, since refusing to start
 * would not serve anyone better), then watches both files' directories (fs.watch, plus a poll as a
 * fallback) and hands every new usable pair to its listeners, e.g. `server.setSecureContext(...)`.
 * A new pair that is unreadable, corrupt, key-mismatched, expired, not yet valid, or drops a
 * serving name the pair in use covers is logged, counted (onReject) and ignored: the old one keeps serving.
 */
export class CertWatcher {
  private pair: LoadedPair | undefined;
  private readonly listeners: RotationListener[] = [];
  private readonly watchers = new Map<string, FSWatcher>();
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private closed = false;
  /** The last contents seen on disk, valid or not, so a bad pair is reported once, not every poll. */
  private lastSeen = '';
  readonly stats: CertWatcherStats = { reloads: 0, rejected: 0 };

  constructor(private readonly options: CertWatcherOptions) {}

  /** Loads the pair (throws with the file names on failure) and starts watching. */
  async start(): Promise<LoadedPair> {
    const { certFile, keyFile } = this.options;
    let cert: string;
    let key: string;
    try {
      [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    } catch (err) {
      throw new Error(`cannot read serving certificate ${certFile} / key ${keyFile}: ${(err as Error).message}`);
    }
    this.pair = validatePair(cert, key, { certFile, keyFile });
    try {
      checkUsable(this.pair, this.now(), this.options.servingNames ?? []);
    } catch (err) {
      this.options.logger.warn({ certFile, problem: (err as Error).message }, 'serving certificate in use is not fit to serve');
    }
    this.lastSeen = cert + key;
    this.watchDirectories();
    this.pollTimer = setInterval(() => this.schedule(0), this.options.pollIntervalMs ?? 10_000);
    this.pollTimer.unref();
    this.options.logger.info(
      { certFile, notAfter: this.pair.notAfter.toISOString(), fingerprint: this.pair.fingerprint },
      'serving certificate loaded',
    );
    return this.pair;
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  private reject(reason: PairRejection): void {
    this.stats.rejected++;
    this.options.onReject?.(reason);
  }

  /** The pair in use. Throws before start(). */
  get current(): LoadedPair {
    if (!this.pair) throw new Error('CertWatcher.start() has not been called');
    return this.pair;
  }

  /** When the certificate in use expires (for the expiry metric); undefined before start(). */
  get notAfter(): Date | undefined {
    return this.pair?.notAfter;
  }

  /** Called with every new valid pair. A listener that throws makes the watcher reject the pair. */
  onRotate(listener: RotationListener): void {
    this.listeners.push(listener);
  }

  /** Re-reads the files now (what the watch and the poll do); resolves when the check is done. */
  check(): Promise<void> {
    this.running = this.running.then(() => this.reload());
    return this.running;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.debounceTimer);
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }

  private schedule(delayMs = this.options.debounceMs ?? 100): void {
    if (this.closed) return;
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.watchDirectories(); // re-add a watch that died (directory replaced, ENOENT, ...)
      void this.check();
    }, delayMs);
    this.debounceTimer.unref();
  }

  // Watch the directories, not the files: a Secret volume swaps the `..data` symlink, and an
  // atomic rename replaces the inode, both of which end a watch on the file itself.
  private watchDirectories(): void {
    const dirs = new Set([dirname(this.options.certFile), dirname(this.options.keyFile)]);
    for (const dir of dirs) {
      if (this.closed || this.watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, { persistent: false }, () => this.schedule());
        watcher.on('error', (err) => {
          this.options.logger.warn({ err, dir }, 'certificate directory watch failed; relying on the poll');
          watcher.close();
          this.watchers.delete(dir);
        });
        this.watchers.set(dir, watcher);
      } catch (err) {
        this.options.logger.warn({ err, dir }, 'cannot watch certificate directory; relying on the poll');
      }
    }
  }

  private async reload(): Promise<void> {
    if (this.closed) return;
    const { certFile, keyFile, logger } = this.options;
    let cert: string;
    let key: string;
    try {
      [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    } catch (err) {
      if (this.lastSeen !== '') {
        logger.warn({ err, certFile, keyFile }, 'cannot read serving pair; keeping the current one');
        this.lastSeen = '';
        this.reject('unreadable');
      }
      return;
    }
    if (cert + key === this.lastSeen || this.closed) return;
    this.lastSeen = cert + key;
    if (this.pair && cert === this.pair.cert && key === this.pair.key) return; // back to the pair in use
    let pair: LoadedPair;
    try {
      pair = validatePair(cert, key, { certFile, keyFile });
      // Only the names the pair in use covers: a rotation may fix a pair that lacked one.
      const names = (this.options.servingNames ?? []).filter((name) => this.pair?.covers(name) ?? true);
      checkUsable(pair, this.now(), names);
    } catch (err) {
      // A key mismatch is often transient: one file of a rotation is written before the other.
      // The next event (or the poll) picks up the completed pair.
      const reason = err instanceof PairProblem ? err.reason : 'invalid';
      logger.warn({ certFile, keyFile, reason, problem: (err as Error).message }, 'new serving pair refused; keeping the current one');
      this.reject(reason);
      return;
    }
    try {
      for (const listener of this.listeners) listener(pair);
    } catch (err) {
      logger.error({ err, certFile }, 'applying the new serving pair failed; keeping the current one');
      this.reject('invalid');
      return;
    }
    const previous = this.pair;
    this.pair = pair;
    this.stats.reloads++;
    logger.info(
      { certFile, notAfter: pair.notAfter.toISOString(), fingerprint: pair.fingerprint, previous: previous?.fingerprint },
      'serving certificate rotated',
    );
  }
}

/** The options every secure context here is built from: the pair, the TLS floor and the suites. */
export function secureContextOptions(pair: CertPair): SecureContextOptions {
  return { key: pair.key, cert: pair.cert, ...TLS_SETTINGS };
}
