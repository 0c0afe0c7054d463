import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics.js';
import { clientGaveUp, guardCounters, http2ServerLimits, HTTP2_LIMITS } from '../../src/server/limits.js';

describe('clientGaveUp', () => {
  it.each([
    ['an HTTP/2 request whose stream was reset', { aborted: true, stream: { destroyed: true, rstCode: 8 } }, true],
    ['an HTTP/2 stream closed with a reset code, not yet flagged aborted', { stream: { destroyed: false, rstCode: 8 } }, true],
    ['an HTTP/2 stream still open', { aborted: false, stream: { destroyed: false, rstCode: 0 } }, false],
    ['an HTTP/1.1 request whose socket is gone', { socket: { destroyed: true } }, true],
    ['an HTTP/1.1 request read to the end, socket open', { readableAborted: false, socket: { destroyed: false } }, false],
    ['an HTTP/1.1 request aborted mid-body', { readableAborted: true, socket: { destroyed: false } }, true],
  ])('%s', (_name, raw, expected) => {
    expect(clientGaveUp(raw)).toBe(expected);
  });
});

describe('limits', () => {
  it('hands node every HTTP/2 limit, with both reset numbers (node ignores one without the other)', () => {
    const options = http2ServerLimits();
    expect(options.settings).toEqual({ maxConcurrentStreams: 250, maxHeaderListSize: 16 * 1024 });
    expect(options).toMatchObject({ maxHeaderListPairs: 64, maxSessionMemory: 8, streamResetBurst: 250, streamResetRate: 33 });
    expect(HTTP2_LIMITS.streamResetBurst).toBeGreaterThanOrEqual(HTTP2_LIMITS.maxConcurrentStreams);
  });

  it('registers its counters once per Metrics', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    expect(guardCounters(metrics)).toBe(guardCounters(metrics));
    guardCounters(metrics).dropped.inc();
    expect(await metrics.text()).toContain('cmg_connections_dropped_total 1');
    // One abort counter, the admission one (cmg_requests_aborted_total{route} counted the same requests).
    expect(await metrics.text()).not.toContain('cmg_requests_aborted_total');
  });
});
