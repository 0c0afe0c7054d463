// The reaper's full pass, detect(), over an in-memory view (a snapshot built here, no API server)
// holding the same objects part 3 writes: the pass alone, at sizes beyond what this machine can
// write to an API server in a few minutes, to show how it grows.

import { performance } from 'node:perf_hooks';
import { parseSnapshot } from '../src/cluster/snapshot.js';
import type { FullClusterView } from '../src/cluster/view.js';
import { defaultConfig } from '../src/config.js';
import { detect } from '../src/reaper/detect.js';
import { fmt, median, table } from './stats.js';

const ipOf = (i: number) => `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const nodeIp = (i: number) => `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

function view(nodes: number, pods: number): FullClusterView {
  const at = new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const running = (ip: string) => ({
    phase: 'Running',
    podIP: ip,
    podIPs: [{ ip }],
    startTime: at,
    conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: at }],
  });
  const items: unknown[] = [];
  for (let i = 0; i < nodes; i++) {
    const name = `scale-node-${i}`;
    const labelled = i % 2 === 0;
    items.push({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: labelled ? { cni: 'cilium' } : {} } });
    if (!labelled) continue;
    items.push({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNode',
      metadata: { name },
      spec: { addresses: [{ type: 'InternalIP', ip: nodeIp(i) }], ipam: { podCIDRs: [`10.${64 + (i >> 8)}.${i & 255}.0/24`] } },
    });
    items.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `cilium-${name}`, namespace: 'kube-system', labels: { 'k8s-app': 'cilium' } },
      spec: { nodeName: name, hostNetwork: true, containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium:v1.18.4' }] },
      status: running(nodeIp(i)),
    });
  }
  for (let i = 0; i < pods; i++) {
    const node = i % nodes;
    const name = `app-${i}`;
    items.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'scale' },
      spec: { nodeName: `scale-node-${node}`, containers: [{ name: 'app', image: 'pause' }] },
      status: running(ipOf(i)),
    });
    if (node % 2 === 0 && i % 100 !== 1) {
      items.push({
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumEndpoint',
        metadata: { name, namespace: 'scale' },
        status: { id: 1000, state: 'ready', networking: { node: nodeIp(node), addressing: [{ ipv4: ipOf(i) }] } },
      });
    }
  }
  return parseSnapshot(JSON.stringify({ apiVersion: 'v1', kind: 'List', items }), defaultConfig).view;
}

export function passCurve(sizes: Array<{ nodes: number; pods: number }>): void {
  const rows: string[][] = [];
  for (const size of sizes) {
    const v = view(size.nodes, size.pods);
    const times: number[] = [];
    for (let i = 0; i < 7; i++) {
      const t0 = performance.now();
      detect(v, defaultConfig, new Date());
      times.push(performance.now() - t0);
    }
    const ms = median(times.slice(2)); // the first two warm the JIT
    rows.push([`${size.nodes} / ${size.pods}`, fmt(ms, 1), fmt((ms * 1000) / size.pods, 2)]);
  }
  console.log(table(['nodes / pods (in memory)', 'detect() ms, median of 5', 'µs per pod'], rows));
}
