// The pod-placement handler answers synchronously when the caches hold what it needs: the server
// then arms no deadline timer for the request (src/server/app.ts; docs/benchmarks.md). A promise
// only when it must read from the API server; the decisions are the same either way.
import { describe, expect, it } from 'vitest';
import type { ClusterReader } from '../../src/cluster/reader.js';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import { trimPod } from '../../src/cluster/trim.js';
import { parseConfig } from '../../src/config.js';
import { podPlacementHandler } from '../../src/webhooks/pod-placement.js';
import { pod as podFixture } from '../support/fixtures.js';
import { bindingRequest, podRequest } from '../support/reviews.js';

const config = parseConfig({});
const MIGRATED = 'node-cilium';
const LEGACY = 'node-legacy';

function view(): MemoryClusterView {
  const v = new MemoryClusterView(config);
  v.upsertNode({ metadata: { name: MIGRATED, labels: { cni: 'cilium' } } });
  v.upsertNode({ metadata: { name: LEGACY, labels: {} } });
  return v;
}

function unscheduled(name: string): any {
  const p = podFixture('nginx-pod');
  delete p.spec.nodeName;
  delete p.status;
  p.metadata.name = name;
  return p;
}

const isPromise = (value: unknown) => typeof (value as { then?: unknown } | null)?.then === 'function';

describe('pod placement: synchronous from the caches', () => {
  const reads: string[] = [];
  const reader: ClusterReader = {
    pod: async (ns, name) => (reads.push(`pod ${ns}/${name}`), trimPod(unscheduled(name))),
    node: async (name) => (reads.push(`node ${name}`), undefined),
  };

  it('returns a Decision, not a promise, when the node and the pod are cached', () => {
    const v = view();
    const p = unscheduled('web-cached');
    v.upsertPod(trimPod(p));
    reads.length = 0;
    const handler = podPlacementHandler(config, v, reader);
    const bind = handler.handle(bindingRequest(p.metadata.namespace, 'web-cached', MIGRATED));
    expect(isPromise(bind)).toBe(false);
    expect(bind).toMatchObject({ allowed: false, reason: 'cilium-not-ready' });
    const legacy = handler.handle(bindingRequest('default', 'anything', LEGACY));
    expect(isPromise(legacy)).toBe(false);
    expect(legacy).toMatchObject({ allowed: true, reason: 'node-not-migrated' });
    const created = handler.handle(podRequest({ ...unscheduled('web-created'), spec: { ...unscheduled('x').spec, nodeName: MIGRATED } }));
    expect(isPromise(created)).toBe(false);
    expect(created).toMatchObject({ allowed: false, reason: 'cilium-not-ready' });
    expect(reads).toEqual([]);
  });

  it('returns a promise, and reads, only on a cache miss; the decision is the one the cache would give', async () => {
    reads.length = 0;
    const v = view();
    const missing = podPlacementHandler(config, v, reader).handle(bindingRequest('default', 'web-missing', MIGRATED));
    expect(isPromise(missing)).toBe(true);
    expect(await missing).toMatchObject({ allowed: false, reason: 'cilium-not-ready' });
    const unknownNode = podPlacementHandler(config, v, reader).handle(bindingRequest('default', 'web-x', 'node-unknown'));
    expect(isPromise(unknownNode)).toBe(true);
    expect(await unknownNode).toMatchObject({ allowed: true, reason: 'node-unknown' });
    expect(reads).toEqual(['pod default/web-missing', 'node node-unknown']);
  });
});
