import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics.js';

describe('cmg_cache_disconnected', () => {
  it('is read at every scrape: 1 for a cache whose watch is down, 0 for the others', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    let down = { nodes: true, agentPods: false };
    metrics.trackDisconnected(() => down);
    const lines = async () => (await metrics.text()).split('\n').filter((l) => l.startsWith('cmg_cache_disconnected{'));
    expect(await lines()).toEqual(['cmg_cache_disconnected{cache="nodes"} 1', 'cmg_cache_disconnected{cache="agentPods"} 0']);
    down = { nodes: false, agentPods: false };
    expect(await lines()).toEqual(['cmg_cache_disconnected{cache="nodes"} 0', 'cmg_cache_disconnected{cache="agentPods"} 0']);
  });

  it('is absent until something tracks it (a snapshot has no watches)', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    expect((await metrics.text()).split('\n').filter((l) => l.startsWith('cmg_cache_disconnected{'))).toEqual([]);
  });
});
