// The reaper's timed passes on a fake clock: the debounce after a change, the periodic resync.
// Each test counts passes (runPass calls from the loop) as the clock moves.

import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { Metrics } from '../../src/metrics.js';
import type { ReaperApi } from '../../src/reaper/api.js';
import { Reaper } from '../../src/reaper/reaper.js';
import { ReaperMetrics } from '../../src/reaper/reaper-metrics.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { configWith, LATER, world } from '../support/reaper-world.js';

const DEBOUNCE_MS = 2_000;
const RESYNC_SECONDS = 300;

/** Nothing to remove in this world: a pass never calls the API. */
const noApi = new Proxy({} as ReaperApi, {
  get: () => () => Promise.reject(new Error('the timer tests make no API calls')),
});

function setup() {
  const clock = new FakeClock(LATER.getTime());
  const reaper = new Reaper({
    view: world({}),
    config: configWith({ debounceMs: DEBOUNCE_MS, resyncSeconds: RESYNC_SECONDS }),
    api: noApi,
    leadership: { isLeader: () => true },
    metrics: new ReaperMetrics(new Metrics({ defaultMetrics: false })),
    log: pino({ level: 'silent' }),
    identity: 'r1',
    dryRun: false,
    clock,
  });
  const passes = vi.spyOn(reaper, 'runPass');
  return { clock, reaper, passes };
}

describe('Reaper timers (fake clock)', () => {
  it('runs one pass at start, then one pass debounceMs after the first change of a burst', async () => {
    const { clock, reaper, passes } = setup();
    reaper.start();
    await flush();
    expect(passes).toHaveBeenCalledTimes(1);

    reaper.changed();
    await clock.advance(500);
    reaper.changed(); // same burst: no new timer, no later pass
    await clock.advance(DEBOUNCE_MS - 501);
    expect(passes).toHaveBeenCalledTimes(1);
    await clock.advance(1);
    expect(passes).toHaveBeenCalledTimes(2);
    await clock.advance(DEBOUNCE_MS * 3);
    expect(passes).toHaveBeenCalledTimes(2);

    // The next burst gets its own pass.
    reaper.changed();
    await clock.advance(DEBOUNCE_MS);
    expect(passes).toHaveBeenCalledTimes(3);
    await reaper.stop();
  });

  it('after stop(), a change schedules nothing', async () => {
    const { clock, reaper, passes } = setup();
    reaper.start();
    await flush();
    await reaper.stop();
    reaper.changed();
    await clock.advance(RESYNC_SECONDS * 1000 * 2);
    expect(passes).toHaveBeenCalledTimes(1);
    expect(clock.pending).toBe(0);
  });

  it('runs a pass every resyncSeconds without any change', async () => {
    const { clock, reaper, passes } = setup();
    reaper.start();
    await flush();
    expect(passes).toHaveBeenCalledTimes(1);
    await clock.advance(RESYNC_SECONDS * 1000 - 1);
    expect(passes).toHaveBeenCalledTimes(1);
    await clock.advance(1);
    expect(passes).toHaveBeenCalledTimes(2);
    await clock.advance(RESYNC_SECONDS * 1000);
    expect(passes).toHaveBeenCalledTimes(3);
    await clock.advance(RESYNC_SECONDS * 1000 * 2);
    expect(passes).toHaveBeenCalledTimes(5);
    await reaper.stop();
    expect(clock.pending).toBe(0);
  });
});
