// One line of evidence per assessment, the same words in Events, logs and the report table.

import type { Evidence } from './detect.js';

export function describeEvidence(e: Evidence): string {
  const parts: string[] = [];
  if (e.sharedWith.length > 0) {
    const others = e.sharedWith.map((p) => `${p.namespace}/${p.name}${p.node ? ` on ${p.node}` : ''}${p.managedByCilium ? ' (managed by Cilium)' : ''}`);
    parts.push(`IP ${e.ip} also held by ${others.join(', ')}`);
  } else {
    parts.push(`IP ${e.ip} held by no other pod`);
  }
  parts.push(
    e.ciliumEndpoint.found
      ? `CiliumEndpoint has ${e.ciliumEndpoint.ips.join(', ') || 'no addresses'}${e.ciliumEndpoint.state ? ` (state ${e.ciliumEndpoint.state})` : ''}, not ${e.ip}`
      : 'no CiliumEndpoint',
  );
  if (e.ipamUsedBy !== undefined) parts.push(`CiliumNode ipam.used[${e.ip}]: ${e.ipamUsedBy ?? 'none'}`);
  if (e.inCiliumPodCIDRs !== undefined) parts.push(`${e.inCiliumPodCIDRs ? 'inside' : 'outside'} Cilium's pod CIDRs`);
  const agent = [e.agentPod, e.ciliumReadySource ? `per ${e.ciliumReadySource}` : undefined].filter(Boolean).join(', ');
  parts.push(`pod started ${e.podStartTime ?? 'unknown'}, Cilium ready since ${e.ciliumReadySince ?? 'unknown'}${agent ? ` (${agent})` : ''}`);
  parts.push(e.controller ? `owner ${e.controller.kind}/${e.controller.name}` : 'no controller owner');
  return parts.join('; ');
}
