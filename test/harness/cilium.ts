// What Cilium and the kubelet write to the API when Cilium starts a pod, reproduced for the e2e
// tests: the kubelet reports the IP Cilium's IPAM handed out in the pod's status (pods/status),
// and the agent writes the pod's CiliumEndpoint with that IP in status.networking.addressing
// (test/fixtures/SOURCES.md §4: cilium/cilium pkg/k8s/apis/cilium.io/v2/types.go).
// kwok stands in for the CNI in these tests and gives pods IPs of its own; this overrides them.

import type { ControlPlane } from './controlplane.js';

/** The node IP the CiliumEndpoints of these tests name (any address; nothing routes to it). */
export const ENDPOINT_NODE_IP = '10.255.0.1';

/**
 * Makes pod `namespace/name` a pod Cilium manages with `ip`: its status podIP(s) set to `ip`, and a
 * ready CiliumEndpoint of the same name with `ip` and endpoint id `id`.
 */
export async function ciliumManages(cp: ControlPlane, pod: { namespace?: string; name: string }, ip: string, id: number): Promise<void> {
  const namespace = pod.namespace ?? 'default';
  await cp.kubectl([
    'patch',
    'pod',
    pod.name,
    '-n',
    namespace,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { podIP: ip, podIPs: [{ ip }] } }),
  ]);
  await cp.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumEndpoint',
      metadata: { name: pod.name, namespace },
      status: { id, state: 'ready', networking: { node: ENDPOINT_NODE_IP, addressing: [{ ipv4: ip }] } },
    }),
  });
}
