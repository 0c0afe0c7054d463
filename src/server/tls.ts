// TLS for every listener here (the floor and the suites), and the serving pair on disk watched so
// a rotated Secret is picked up without a restart (controller-runtime's certwatcher, in
// TypeScript). Making and judging pairs is src/certs' job (local.ts, pair.ts).

import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import { checkUsable, PairProblem, validatePair, type LoadedPair, type PairRejection } from '../certs/pair.js';
import type { Pair } from '../certs/x509.js';
import type { Logger } from '../logger.js';

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
      // The message is the whole story (it names both files and the reason): no cause, no second stack.
      // eslint-disable-next-line preserve-caught-error
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
    this.options.logger.info({ certFile, notAfter: this.pair.notAfter.toISOString(), fingerprint: this.pair.fingerprint }, 'serving certificate loaded');
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
export function secureContextOptions(pair: Pair): SecureContextOptions {
  return { key: pair.key, cert: pair.cert, ...TLS_SETTINGS };
}
