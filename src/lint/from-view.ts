// The lint's pod facts (how many pods, which declare a hostPort) from a cluster view's pod cache,
// so `report`, which holds every pod for the reaper already, does not list them all a second time
// (docs/benchmarks.md, "Scale"). Gives what lint/load.ts gives for the same pods as a list: both
// read host ports through cluster/trim.ts hostPortsOf.

import type { PodInfo } from '../cluster/view.js';
import type { LintInput, LintPod } from './types.js';

export function lintPodsOf(pods: Iterable<PodInfo>): Required<Pick<LintInput, 'hostPortPods' | 'podCount'>> {
  const hostPortPods: LintPod[] = [];
  let podCount = 0;
  for (const pod of pods) {
    podCount += 1;
    const hostPorts = pod.spec.hostPorts;
    if (!hostPorts || hostPorts.length === 0 || pod.spec.hostNetwork === true) continue;
    const { name, namespace } = pod.metadata;
    hostPortPods.push({ namespace: namespace ?? 'default', name, ...(pod.spec.nodeName ? { node: pod.spec.nodeName } : {}), hostPorts: [...hostPorts] });
  }
  return { hostPortPods, podCount };
}
