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

/** Labels of cmg_admission_decisions_total; every value a fixed set from the code, so bounded. */
export interface DecisionLabels {
  webhook: string;
  /** enforce, warn, audit, or none. */
  mode: string;
  /** allowed, denied, patched, would-deny, would-patch. */
  decision: string;
  reason: string;
}

// Decisions are in-memory lookups (sub-millisecond); the tail shows GC pauses and slow handlers,
// and the top bucket sits at the API server's default webhook timeout (10 s).
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * One (webhook, operation, decision) series of the request counter and the duration histogram,
 * kept as plain numbers. prom-client's labelled `inc`/`observe` build a hash string from the label
 * object, check every label name and (the histogram) allocate a closure and an object on every
 * call; per admission in the server that was about 13 µs of CPU with its garbage
 * (docs/benchmarks.md, section 1, third pass). Here an admission is three Map lookups and four
 * additions, and prom-client gets the totals at scrape time (`collect`), so it still writes the
 * exposition. One entry per series the exposition shows, as prom-client keeps one: bounded by the
 * same label values (handler names, the four operations and "unknown", the outcomes).
 */
interface AdmissionSeries {
  readonly labels: Readonly<AdmissionLabels>;
  count: number;
  sum: number;
  /**
   * Observations per bucket, not cumulative, as prom-client keeps them: index i counts values in
   * (bound i-1, bound i]; values above the top bound are only in `count`.
   */
  readonly buckets: number[];
}

interface DecisionSeries {
  readonly labels: Readonly<DecisionLabels>;
  count: number;
}

/** The index of the first bucket bound `seconds` is at or under (prom-client's `findBound`); DURATION_BUCKETS.length above them all. */
function bucketIndex(seconds: number): number {
  let i = 0;
  while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
  return i;
}

/** prom-client 15's in-memory shape of one histogram series (lib/histogram.js `createBaseValues`), which its `collect` may fill. */
interface PromHistogramEntry {
  labels: Readonly<AdmissionLabels>;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

/**
 * Counts decisions by webhook, mode, decision and reason (cmg_admission_decisions_total), in plain
 * numbers handed to prom-client at scrape time; see AdmissionSeries for why.
 */
export class DecisionCounter {
  /** Every series, in the order first seen (the exposition's order, as prom-client's was). */
  readonly series: DecisionSeries[] = [];
  private readonly byWebhook = new Map<string, Map<string, Map<string, Map<string, DecisionSeries>>>>();

  inc(labels: DecisionLabels): void {
    const { webhook, mode, decision, reason } = labels;
    let byMode = this.byWebhook.get(webhook);
    if (byMode === undefined) this.byWebhook.set(webhook, (byMode = new Map()));
    let byDecision = byMode.get(mode);
    if (byDecision === undefined) byMode.set(mode, (byDecision = new Map()));
    let byReason = byDecision.get(decision);
    if (byReason === undefined) byDecision.set(decision, (byReason = new Map()));
    let series = byReason.get(reason);
    if (series === undefined) {
      // A copy in label-name order: the caller may reuse its object, and the exposition's label order is fixed.
      series = { labels: { webhook, mode, decision, reason }, count: 0 };
      byReason.set(reason, series);
      this.series.push(series);
    }
    series.count++;
  }
}

export interface MetricsOptions {
  /** Process metrics (CPU, memory, event loop lag, GC). Default true. */
  defaultMetrics?: boolean;
}

export class Metrics {
  readonly registry = new Registry();
  /** Filled from `observeAdmission`'s tallies at every scrape (`get()` included); not to be updated directly. */
  readonly admissionRequests: Pick<Counter<AdmissionLabelName>, 'get'>;
  /** Filled from `observeAdmission`'s tallies at every scrape (`get()` included); not to be updated directly. */
  readonly admissionDuration: Pick<Histogram<AdmissionLabelName>, 'get'>;
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
  readonly decisions = new DecisionCounter();
  /** Every admission series, in the order first seen (the exposition's order, as prom-client's was). */
  private readonly admissionSeries: AdmissionSeries[] = [];
  private readonly admissionByWebhook = new Map<string, Map<string, Map<string, AdmissionSeries>>>();
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
    // Gauges read their source at scrape time, so they can never go stale; the admission
    // metrics copy their tallies into prom-client then (see AdmissionSeries).
    const metrics = this;
    this.admissionRequests = new Counter({
      name: `${METRIC_PREFIX}admission_requests_total`,
      help: 'Admission requests answered, by webhook, operation and decision.',
      labelNames: ['webhook', 'operation', 'decision'],
      registers,
      collect() {
        this.reset();
        for (const series of metrics.admissionSeries) this.inc(series.labels, series.count);
      },
    });
    this.admissionDuration = new Histogram({
      name: `${METRIC_PREFIX}admission_request_duration_seconds`,
      help: 'Time from receiving an admission request to sending the reply.',
      labelNames: ['webhook', 'operation', 'decision'],
      buckets: DURATION_BUCKETS,
      registers,
      collect() {
        // Histogram has no public way to set a series' buckets and sum, so the series are written
        // in the shape its own `observe` leaves them (lib/histogram.js, prom-client 15.1.3, pinned
        // in package.json); test/unit/metrics-admission.test.ts pins the exposition this gives.
        this.reset();
        const hashMap = (this as unknown as { hashMap: Record<string, PromHistogramEntry> }).hashMap;
        metrics.admissionSeries.forEach((series, i) => {
          const bucketValues: Record<number, number> = {};
          DURATION_BUCKETS.forEach((bound, b) => (bucketValues[bound] = series.buckets[b]!));
          hashMap[String(i)] = { labels: series.labels, bucketValues, sum: series.sum, count: series.count };
        });
      },
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
    new Counter({
      name: `${METRIC_PREFIX}admission_decisions_total`,
      help: 'Admission decisions by webhook, enforcement mode (enforce, warn, audit, none), decision (allowed, denied, patched, would-deny, would-patch) and reason.',
      labelNames: ['webhook', 'mode', 'decision', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const series of metrics.decisions.series) this.inc(series.labels, series.count);
      },
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

  /** Counts an answered admission request and its duration (cmg_admission_requests_total, cmg_admission_request_duration_seconds). */
  observeAdmission(labels: AdmissionLabels, seconds: number): void {
    // prom-client's check: a NaN or infinite duration is a bug in the caller, not a sample.
    if (!Number.isFinite(seconds)) throw new TypeError(`Value is not a valid number: ${seconds}`);
    const { webhook, operation, decision } = labels;
    let byOperation = this.admissionByWebhook.get(webhook);
    if (byOperation === undefined) this.admissionByWebhook.set(webhook, (byOperation = new Map()));
    let byDecision = byOperation.get(operation);
    if (byDecision === undefined) byOperation.set(operation, (byDecision = new Map()));
    let series = byDecision.get(decision);
    if (series === undefined) {
      // A copy in label-name order: the caller may reuse its object, and the exposition's label order is fixed.
      series = { labels: { webhook, operation, decision }, count: 0, sum: 0, buckets: DURATION_BUCKETS.map(() => 0) };
      byDecision.set(decision, series);
      this.admissionSeries.push(series);
    }
    series.count++;
    series.sum += seconds;
    const bucket = bucketIndex(seconds);
    if (bucket < DURATION_BUCKETS.length) series.buckets[bucket]!++;
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
