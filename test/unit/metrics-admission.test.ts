// The admission metrics are tallied in plain numbers and handed to prom-client at scrape time
// (src/metrics.ts, AdmissionSeries). Their exposition must be what prom-client's labelled
// inc/observe gave before: same names, HELP/TYPE, labels and their order, buckets, values.
import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Metrics, type AdmissionLabels, type AdmissionOutcome, type DecisionLabels } from '../../src/metrics.js';

const ADMISSION_METRICS = ['cmg_admission_requests_total', 'cmg_admission_request_duration_seconds', 'cmg_admission_decisions_total'];

/** The blocks of `text` (HELP, TYPE and samples) of the three admission metrics, in exposition order. */
function admissionBlocks(text: string): string {
  return text
    .split('\n\n')
    .filter((block) => ADMISSION_METRICS.some((name) => block.startsWith(`# HELP ${name} `)))
    .map((block) => block.replace(/\n$/, ''))
    .join('\n\n');
}

/** The metrics as src/metrics.ts defined and updated them before the tallies: prom-client's labelled inc/observe. */
function reference() {
  const registry = new Registry();
  const registers = [registry];
  const requests = new Counter({
    name: 'cmg_admission_requests_total',
    help: 'Admission requests answered, by webhook, operation and decision.',
    labelNames: ['webhook', 'operation', 'decision'],
    registers,
  });
  const duration = new Histogram({
    name: 'cmg_admission_request_duration_seconds',
    help: 'Time from receiving an admission request to sending the reply.',
    labelNames: ['webhook', 'operation', 'decision'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const decisions = new Counter({
    name: 'cmg_admission_decisions_total',
    help: 'Admission decisions by webhook, enforcement mode (enforce, warn, audit, none), decision (allowed, denied, patched, would-deny, would-patch) and reason.',
    labelNames: ['webhook', 'mode', 'decision', 'reason'],
    registers,
  });
  return {
    registry,
    observeAdmission(labels: AdmissionLabels, seconds: number) {
      requests.inc(labels);
      duration.observe(labels, seconds);
    },
    decision: (labels: DecisionLabels) => decisions.inc(labels),
  };
}

describe('admission metrics, tallied and handed to prom-client at scrape time', () => {
  it('expose a scripted sequence of admissions exactly as pinned', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    expect(admissionBlocks(await metrics.text())).toBe(
      [
        '# HELP cmg_admission_requests_total Admission requests answered, by webhook, operation and decision.',
        '# TYPE cmg_admission_requests_total counter',
        '',
        '# HELP cmg_admission_request_duration_seconds Time from receiving an admission request to sending the reply.',
        '# TYPE cmg_admission_request_duration_seconds histogram',
        '',
        '# HELP cmg_admission_decisions_total Admission decisions by webhook, enforcement mode (enforce, warn, audit, none), decision (allowed, denied, patched, would-deny, would-patch) and reason.',
        '# TYPE cmg_admission_decisions_total counter',
      ].join('\n'),
    );
    const bind = { webhook: 'pod-placement', operation: 'CREATE', decision: 'denied' as AdmissionOutcome };
    metrics.observeAdmission(bind, 0.0004);
    metrics.observeAdmission(bind, 0.001); // on a bound: counted in it (le is "less or equal")
    metrics.observeAdmission(bind, 0.03);
    metrics.observeAdmission({ webhook: 'daemonset-affinity', operation: 'UPDATE', decision: 'patched' }, 12); // above the top bucket
    metrics.decisions.inc({ webhook: 'pod-placement', mode: 'enforce', decision: 'denied', reason: 'cilium-not-ready' });
    metrics.decisions.inc({ webhook: 'pod-placement', mode: 'enforce', decision: 'denied', reason: 'cilium-not-ready' });
    metrics.decisions.inc({ webhook: 'daemonset-affinity', mode: 'warn', decision: 'would-patch', reason: 'needs-affinity' });
    const bindLabels = 'webhook="pod-placement",operation="CREATE",decision="denied"';
    const dsLabels = 'webhook="daemonset-affinity",operation="UPDATE",decision="patched"';
    const buckets = (labels: string, counts: number[], count: number, sum: number) => [
      ...['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10'].map(
        (le, i) => `cmg_admission_request_duration_seconds_bucket{le="${le}",${labels}} ${counts[i]}`,
      ),
      `cmg_admission_request_duration_seconds_bucket{le="+Inf",${labels}} ${count}`,
      `cmg_admission_request_duration_seconds_sum{${labels}} ${sum}`,
      `cmg_admission_request_duration_seconds_count{${labels}} ${count}`,
    ];
    const expected = [
      '# HELP cmg_admission_requests_total Admission requests answered, by webhook, operation and decision.',
      '# TYPE cmg_admission_requests_total counter',
      `cmg_admission_requests_total{${bindLabels}} 3`,
      `cmg_admission_requests_total{${dsLabels}} 1`,
      '',
      '# HELP cmg_admission_request_duration_seconds Time from receiving an admission request to sending the reply.',
      '# TYPE cmg_admission_request_duration_seconds histogram',
      ...buckets(bindLabels, [2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3], 3, 0.0004 + 0.001 + 0.03),
      ...buckets(dsLabels, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1, 12),
      '',
      '# HELP cmg_admission_decisions_total Admission decisions by webhook, enforcement mode (enforce, warn, audit, none), decision (allowed, denied, patched, would-deny, would-patch) and reason.',
      '# TYPE cmg_admission_decisions_total counter',
      'cmg_admission_decisions_total{webhook="pod-placement",mode="enforce",decision="denied",reason="cilium-not-ready"} 2',
      'cmg_admission_decisions_total{webhook="daemonset-affinity",mode="warn",decision="would-patch",reason="needs-affinity"} 1',
    ].join('\n');
    expect(admissionBlocks(await metrics.text())).toBe(expected);
    // A scrape reads the tallies; it does not move them (a second one is the same, and more admissions add on).
    expect(admissionBlocks(await metrics.text())).toBe(expected);
    metrics.observeAdmission(bind, 0.0001);
    expect(await metrics.text()).toContain(`cmg_admission_requests_total{${bindLabels}} 4\n`);
  });

  it('expose any sequence of admissions exactly as prom-client labelled inc/observe did (the code before)', async () => {
    const webhook = fc.constantFrom('pod-placement', 'daemonset-affinity', 'node-taint', 'cilium-config-lint');
    const operation = fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT', 'unknown');
    const outcome = fc.constantFrom<AdmissionOutcome>('allowed', 'denied', 'patched', 'error', 'bad_request');
    const seconds = fc.oneof(
      fc.constantFrom(0, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
      fc.double({ min: 0, max: 20, noNaN: true }),
      fc.double({ min: 0, max: 0.002, noNaN: true }),
    );
    const step = fc.oneof(
      fc.record({ kind: fc.constant('admission' as const), labels: fc.record({ webhook, operation, decision: outcome }), seconds }),
      fc.record({
        kind: fc.constant('decision' as const),
        labels: fc.record({
          webhook,
          mode: fc.constantFrom('enforce', 'warn', 'audit', 'none'),
          decision: fc.constantFrom('allowed', 'denied', 'patched', 'would-deny', 'would-patch'),
          reason: fc.constantFrom('cilium-not-ready', 'no-node', 'needs-affinity', 'quote"and\\back\nslash'),
        }),
      }),
      fc.constant({ kind: 'scrape' as const }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 200 }), async (steps) => {
        const metrics = new Metrics({ defaultMetrics: false });
        const before = reference();
        for (const s of steps) {
          if (s.kind === 'admission') {
            metrics.observeAdmission(s.labels, s.seconds);
            before.observeAdmission(s.labels, s.seconds);
          } else if (s.kind === 'decision') {
            metrics.decisions.inc(s.labels);
            before.decision(s.labels);
          } else {
            expect(admissionBlocks(await metrics.text())).toBe(admissionBlocks(await before.registry.metrics()));
          }
        }
        expect(admissionBlocks(await metrics.text())).toBe(admissionBlocks(await before.registry.metrics()));
      }),
      { numRuns: 200 },
    );
  });

  it('keep its own copy of the labels: a caller reusing its label object does not rename a series', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const labels: AdmissionLabels = { webhook: 'pod-placement', operation: 'CREATE', decision: 'allowed' };
    metrics.observeAdmission(labels, 0.0002);
    labels.decision = 'denied';
    metrics.observeAdmission(labels, 0.0002);
    const text = await metrics.text();
    expect(text).toContain('cmg_admission_requests_total{webhook="pod-placement",operation="CREATE",decision="allowed"} 1\n');
    expect(text).toContain('cmg_admission_requests_total{webhook="pod-placement",operation="CREATE",decision="denied"} 1\n');
  });

  it("answer prom-client's get() with the tallies (tests and the JSON form read it)", async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.observeAdmission({ webhook: 'node-taint', operation: 'CREATE', decision: 'patched' }, 0.002);
    metrics.observeAdmission({ webhook: 'node-taint', operation: 'CREATE', decision: 'patched' }, 0.003);
    expect((await metrics.admissionRequests.get()).values).toEqual([{ value: 2, labels: { webhook: 'node-taint', operation: 'CREATE', decision: 'patched' } }]);
    const duration = (await metrics.admissionDuration.get()).values as Array<{ value: number; labels: Record<string, unknown>; metricName?: string }>;
    expect(duration.find((v) => v.labels.le === 0.0025)?.value).toBe(1);
    expect(duration.find((v) => v.labels.le === 0.005)?.value).toBe(2);
    expect(duration.find((v) => v.metricName === 'cmg_admission_request_duration_seconds_sum')?.value).toBe(0.005);
  });

  it('refuse a duration that is not a finite number, as prom-client did, and count nothing for it', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const labels: AdmissionLabels = { webhook: 'pod-placement', operation: 'CREATE', decision: 'allowed' };
    expect(() => metrics.observeAdmission(labels, Number.NaN)).toThrow(TypeError);
    expect(() => metrics.observeAdmission(labels, Number.POSITIVE_INFINITY)).toThrow(TypeError);
    expect(await metrics.text()).not.toContain('cmg_admission_requests_total{');
  });
});
