// Hostile input, size: how long one DaemonSet decision takes as its matchExpressions grow.
// Prints figures, asserts nothing (the bounds are asserted in test/unit/hostile-size.test.ts and
// test/integration/hostile-size.test.ts). Wall and CPU time: on a shared machine they differ.
// Run: npx tsx bench/hostile-size.ts [count ...]   (default 1000 10000 30000 65000)

import { performance } from 'node:perf_hooks';
import { defaultConfig } from '../src/config.js';
import { decideDaemonSetAffinity } from '../src/webhooks/daemonset-affinity.js';
/** A cluster view with no Cilium agent pods: no cloud-managed dataplane in sight. */
const NO_AGENTS = { agentPods: () => [] };
import { adversarialDaemonSet, SHAPES } from '../test/support/adversarial.js';
import { daemonSetRequest } from '../test/support/reviews.js';

const counts = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
for (const shape of SHAPES) {
  for (const count of counts.length > 0 ? counts : [1000, 10_000, 30_000, 65_000]) {
    const ds = adversarialDaemonSet(shape, count);
    const bytes = JSON.stringify(ds).length;
    const request = daemonSetRequest(ds);
    const cpu = process.cpuUsage();
    const start = performance.now();
    const decision = decideDaemonSetAffinity(request, NO_AGENTS, defaultConfig);
    const ms = performance.now() - start;
    const used = process.cpuUsage(cpu);
    console.log(
      `${shape.padEnd(14)} ${String(count).padStart(6)} items ${(bytes / 1048576).toFixed(2).padStart(5)} MiB  ` +
        `${ms.toFixed(1).padStart(9)} ms wall ${((used.user + used.system) / 1000).toFixed(1).padStart(9)} ms cpu  ${decision.reason}`,
    );
  }
}
