import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics.js';
import { startProbeServer, type ProbeServer } from '../../src/reaper/http.js';

let probe: ProbeServer | undefined;
afterEach(async () => {
  await probe?.close();
  probe = undefined;
});

describe('reaper probe port', () => {
  it('/healthz follows the liveness check (503 when the loop is stuck), /readyz the readiness', async () => {
    let healthy = true;
    probe = await startProbeServer({
      host: '127.0.0.1',
      port: 0,
      metrics: new Metrics({ defaultMetrics: false }),
      log: pino({ level: 'silent' }),
      readiness: () => ({ ready: true, detail: {} }),
      liveness: () => ({ healthy, detail: { lastPassAgoSeconds: healthy ? 1 : 900 } }),
    });
    expect((await fetch(`${probe.url}/healthz`)).status).toBe(200);
    healthy = false;
    const res = await fetch(`${probe.url}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ healthy: false, detail: { lastPassAgoSeconds: 900 } });
  });
});
