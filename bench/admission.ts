// Part 0: the pure decisions, in-process (decisions per second): the ceiling of any server around them.

import { performance } from 'node:perf_hooks';
import { EXAMPLE_SNAPSHOT } from '../src/commands/common.js';
import { loadSnapshot } from '../src/cluster/snapshot.js';
import { defaultConfig } from '../src/config.js';
import { decideDaemonSetAffinity } from '../src/webhooks/daemonset-affinity.js';
import { podPlacementHandler } from '../src/webhooks/pod-placement.js';
import { daemonSet } from '../test/support/fixtures.js';
import { bindingRequest, daemonSetRequest } from '../test/support/reviews.js';

async function pure(name: string, iterations: number, fn: () => unknown): Promise<void> {
  for (let i = 0; i < Math.min(1000, iterations); i++) await fn(); // warm-up
  const start = performance.now();
  for (let i = 0; i < iterations; i++) await fn();
  const ms = performance.now() - start;
  console.log(`  ${name.padEnd(44)} ${(iterations / (ms / 1000)).toFixed(0).padStart(10)} decisions/s   ${((ms * 1000) / iterations).toFixed(2)} µs each`);
}

export async function runDecisions(scale: number): Promise<void> {
  const { view } = loadSnapshot(EXAMPLE_SNAPSHOT, defaultConfig);
  const awsNode = daemonSetRequest(daemonSet('aws-node'));
  const cilium = daemonSetRequest(daemonSet('cilium'));
  const unrelated = daemonSetRequest(daemonSet('node-exporter'));
  const placement = podPlacementHandler(defaultConfig, view);
  const denial = bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-pending');
  const legacyNode = bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-legacy-1');
  await pure('DaemonSet affinity: aws-node (patch)', 50_000 * scale, () => decideDaemonSetAffinity(awsNode, view, defaultConfig));
  await pure('DaemonSet affinity: cilium (patch)', 50_000 * scale, () => decideDaemonSetAffinity(cilium, view, defaultConfig));
  await pure('DaemonSet affinity: unrelated (no role)', 50_000 * scale, () => decideDaemonSetAffinity(unrelated, view, defaultConfig));
  await pure('pod placement: bind to unready node (deny)', 100_000 * scale, () => placement.handle(denial));
  await pure('pod placement: bind to non-migrated node', 100_000 * scale, () => placement.handle(legacyNode));
}
