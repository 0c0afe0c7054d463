// A large cluster snapshot made of examples/migration-race.yaml's shapes: the race's one node
// (CiliumNode, Cilium agent, early pods sharing IPs with Cilium-managed ones, CiliumEndpoints)
// copied onto `nodes` migrated nodes, each with its own /24, names and uids, and the race's pods
// `copies` times on each node (IPs moved up by 20 per copy). `report` on 300 nodes with 3 copies
// prints about 3 MB of JSON, which is what the output tests need.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

const RACE_NODE = 'node-gke-cilium-1';
const RACE_HOST_IP = '10.128.0.21';

interface Item {
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string };
  [key: string]: unknown;
}

/** `{ apiVersion: v1, kind: List, items }`: the race on `nodes` nodes, `copies` times each, as JSON text (valid YAML). */
export function bigSnapshot(root: string, nodes: number, copies = 1): { text: string; pods: number; nodes: number } {
  if (copies < 1 || copies > 10) throw new Error('copies must be 1-10 (the IPs must stay inside the /24)');
  const race = parse(readFileSync(join(root, 'examples', 'migration-race.yaml'), 'utf8')) as { items: Item[] };
  const items: unknown[] = [];
  let pods = 0;
  for (let i = 0; i < nodes; i++) {
    const node = `node-gke-cilium-${i}`;
    const cidr = `10.${100 + Math.floor(i / 256)}.${i % 256}.`;
    const hostIp = `10.128.${Math.floor(i / 250)}.${(i % 250) + 2}`;
    // Pods and their CiliumEndpoints share a name: rename both the same way, per node and copy.
    const text = JSON.stringify(race.items).replaceAll(RACE_NODE, node).replaceAll(RACE_HOST_IP, hostIp);
    for (let copy = 0; copy < copies; copy++) {
      const moved = text.replace(/10\.244\.3\.(\d+)/g, (_, octet: string) => `${cidr}${Number(octet) + 20 * copy}`);
      for (const item of JSON.parse(moved) as Item[]) {
        const perNode = item.kind === 'Node' || item.kind === 'CiliumNode' || item.metadata.name.startsWith('cilium-');
        if (copy > 0 && perNode) continue; // one node, one CiliumNode, one agent
        if (item.kind === 'Pod' || item.kind === 'CiliumEndpoint') {
          item.metadata.name = perNode ? `${item.metadata.name}-n${i}` : `${item.metadata.name}-n${i}-c${copy}`;
          if (item.metadata.uid) item.metadata.uid = `${item.metadata.uid.slice(0, -8)}${String(i * 10 + copy).padStart(8, '0')}`;
        }
        if (item.kind === 'Pod') pods += 1;
        items.push(item);
      }
    }
  }
  return { text: JSON.stringify({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items }), pods, nodes };
}
