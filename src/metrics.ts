// Prometheus metrics on a registry of our own (not prom-client's global one), so every app a test
// builds has fresh counters, and so the reaper can register its metrics next to these:
//   new Counter({ name: `${METRIC_PREFIX}reaper_...`, help, registers: [metrics.registry] })

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const METRIC_PREFIX = 'cmg_';

/** Labels of cmg_ca_certificate_expiry_timestamp_seconds: one series per CA in the trust bundle. */
export type CaExpiryLabelName = 'fingerprint' | 'signing';

/**
 * When each CA of the webhook's trust bundle (the Secret's ca.crt, injected as caBundle) expires,
 * in Unix seconds; set by the certificate controller (src/certs/cert-controller.ts) after every pass.
 * One series per CA, labelled with its SHA-256 fingerprint and whether it is the signing CA (the
 * one whose key is ca.key): during a CA rotation the retiring CA stays in the bundle until it has
 * expired, by design, so "the oldest CA" would page on every healthy rotation; the signing CA's
 * expiry is the one that must never come close (its successor is added 90 days before).
 */
export function caCertificateExpiryGauge(registers: Registry[]): Gauge<CaExpiryLabelName> {
  return new Gauge({
    name: `${METRIC_PREFIX}ca_certificate_expiry_timestamp_seconds`,
    help: 'When each CA of the webhook trust bundle (caBundle) expires (Unix seconds), by SHA-256 fingerprint; signing="true" for the CA that signs new serving certificates.',
    labelNames: ['fingerprint', 'signing'],
    registers,
  });
}

/** How an admission request ended. `error` is a handler failure (HTTP 500); `bad_request` a 4xx. */
export type AdmissionOutcome = 'allowed' | 'denied' | 'patched' | 'error' | 'bad_request';

export interface AdmissionLabels {
  /** The handler's name, e.g. "daemonset-affinity". */
  webhook: string;
  /** CREATE/UPDATE/DELETE/CONNECT, or "unknown" when the review could not be parsed. */
  operation: string;
  decision: AdmissionOutcome;
}

type AdmissionLabelName = keyof AdmissionLabels;

// Decisions are in-memory lookups (sub-millisecond); the tail shows GC pauses and slow handlers,
// and the top bucket sits at the API server's default webhook timeout (10 s).
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface MetricsOptions {
  /** Process metrics (CPU, memory, event loop lag, GC). Default true. */
  defaultMetrics?: boolean;
}

export class Metrics {
  readonly registry = new Registry();
  readonly admissionRequests: Counter<AdmissionLabelName>;
  readonly admissionDuration: Histogram<AdmissionLabelName>;
  /** Serving pairs found on disk and refused (the pair in use kept), by reason. */
  readonly certificateRejected: Counter<'reason'>;
  /**
   * Requests whose client went away (HTTP/2 stream reset, connection closed) before its body
   * arrived: never answered, so not a decision, and not logged one by one. The one abort counter
   * (webhook "none": a request to no webhook path).
   */
  readonly admissionAborted: Counter<'webhook'>;
  /**
   * Decisions by webhook, enforcement mode, outcome (allowed, denied, patched, would-deny,
   * would-patch) and the policy's reason: every label a fixed set from the code, so bounded.
   */
  readonly decisions: Counter<'webhook' | 'mode' | 'decision' | 'reason'>;
  /** Log lines dropped because stdout could not take them (logger.ts bounds what waits). */
  private readonly logDropped: Counter;
  private readonly cacheSynced: Gauge<'cache'>;
  private readonly certificateExpiry: Gauge;
  private cacheSource: (() => Record<string, boolean>) | undefined;
  private disconnectedSource: (() => Record<string, boolean>) | undefined;
  private expirySource: (() => Date | undefined) | undefined;
  private logSource: (() => { dropped: number; queuedBytes: number }) | undefined;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    this.admissionRequests = new Counter({
      name: `${METRIC_PREFIX}admission_requests_total`,
      help: 'Admission requests answered, by webhook, operation and decision.',
      labelNames: ['webhook', 'operation', 'decision'],
      registers,
    });
    this.admissionDuration = new Histogram({
      name: `${METRIC_PREFIX}admission_request_duration_seconds`,
      help: 'Time from receiving an admission request to sending the reply.',
      labelNames: ['webhook', 'operation', 'decision'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.certificateRejected = new Counter({
      name: `${METRIC_PREFIX}certificate_rejected_total`,
      help: 'Serving certificate pairs found on disk and refused, the pair in use kept, by reason (unreadable, invalid, key_mismatch, expired, not_yet_valid, names).',
      labelNames: ['reason'],
      registers,
    });
    this.admissionAborted = new Counter({
      name: `${METRIC_PREFIX}admission_requests_aborted_total`,
      help: 'Admission requests whose client reset the stream or closed the connection before the body was read (not answered, not a decision; webhook="none": no webhook path).',
      labelNames: ['webhook'],
      registers,
    });
    this.decisions = new Counter({
      name: `${METRIC_PREFIX}admission_decisions_total`,
      help: 'Admission decisions by webhook, enforcement mode (enforce, warn, audit, none), decision (allowed, denied, patched, would-deny, would-patch) and reason.',
      labelNames: ['webhook', 'mode', 'decision', 'reason'],
      registers,
    });
    this.logDropped = new Counter({
      name: `${METRIC_PREFIX}log_lines_dropped_total`,
      help: 'Log lines dropped because stdout was not taking them and the bounded queue in front of it was full.',
      registers,
      collect() {
        const dropped = metrics.logSource?.().dropped;
        if (dropped !== undefined) {
          this.reset();
          this.inc(dropped);
        }
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}log_queued_bytes`,
      help: 'Bytes of log lines waiting for stdout to take them (bounded; see cmg_log_lines_dropped_total).',
      registers,
      collect() {
        const queued = metrics.logSource?.().queuedBytes;
        if (queued !== undefined) this.set(queued);
      },
    });
    // Gauges read their source at scrape time, so they can never go stale.
    const metrics = this;
    this.cacheSynced = new Gauge({
      name: `${METRIC_PREFIX}cache_synced`,
      help: 'Whether each cluster cache has completed its initial list (1) or not (0).',
      labelNames: ['cache'],
      registers,
      collect() {
        if (!metrics.cacheSource) return;
        this.reset();
        for (const [cache, synced] of Object.entries(metrics.cacheSource())) this.set({ cache }, synced ? 1 : 0);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}cache_disconnected`,
      help: 'Whether each cluster cache has lost its watch (1: serving its last known state, retrying) or not (0).',
      labelNames: ['cache'],
      registers,
      collect() {
        if (!metrics.disconnectedSource) return;
        this.reset();
        for (const [cache, down] of Object.entries(metrics.disconnectedSource())) this.set({ cache }, down ? 1 : 0);
      },
    });
    this.certificateExpiry = new Gauge({
      name: `${METRIC_PREFIX}certificate_expiry_timestamp_seconds`,
      help: 'When the serving certificate currently in use expires (Unix seconds).',
      registers,
      collect() {
        const notAfter = metrics.expirySource?.();
        if (notAfter) this.set(notAfter.getTime() / 1000);
      },
    });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
  }

  observeAdmission(labels: AdmissionLabels, seconds: number): void {
    this.admissionRequests.inc(labels);
    this.admissionDuration.observe(labels, seconds);
  }

  /** Read at every scrape: cache name → synced. */
  trackCaches(source: () => Record<string, boolean>): void {
    this.cacheSource = source;
  }

  /** Read at every scrape: cache name → whether its watch is down. */
  trackDisconnected(source: () => Record<string, boolean>): void {
    this.disconnectedSource = source;
  }

  /** Read at every scrape: the serving certificate's notAfter. */
  trackCertificateExpiry(source: () => Date | undefined): void {
    this.expirySource = source;
  }

  /** Read at every scrape: the log queue's dropped lines and queued bytes. */
  trackLog(source: () => { dropped: number; queuedBytes: number }): void {
    this.logSource = source;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of everything registered. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
