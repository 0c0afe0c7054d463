// Summarises a V8 .heapsnapshot without DevTools: what holds the heap, by node type / constructor
// (self size), and by script, grouped by package: each module's source text (V8 keeps it for lazy
// compilation and Function.prototype.toString) plus the compiled code of its functions (bytecode,
// scope infos, constant pools, uncompiled data, reached from each function's SharedFunctionInfo).
// Self sizes only; retained sizes need a dominator tree, which this does not build.
//
// Take a snapshot of `serve` at idle (docs/benchmarks.md, section 3):
//   npm run build
//   node_modules/.bin/node --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=/tmp/snap dist/cli.js \
//     serve --cluster-state examples/cluster-state.yaml --cert-dir /tmp/certs --port 18443 &
//   sleep 4; kill -USR2 $!; sleep 10; kill $!
// Usage: tsx bench/heap-summary.ts FILE.heapsnapshot [TOP]

import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

const MB = (n: number): string => (n / 1048576).toFixed(2).padStart(7);

/** Which package a script URL or path belongs to: node_modules/<pkg>, node's own, or this project. */
export function packageOf(url: string): string {
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)(\/.*)?$/.exec(url);
  if (nm) {
    const pkg = nm[1]!;
    const rest = nm[2] ?? '';
    if (pkg === '@kubernetes/client-node') {
      if (rest.includes('/gen/models/')) return `${pkg} (gen/models)`;
      if (rest.includes('/gen/apis/')) return `${pkg} (gen/apis)`;
      if (rest.includes('/gen/types/')) return `${pkg} (gen/types: Observable/Promise APIs)`;
      if (rest.includes('/gen/')) return `${pkg} (gen, other)`;
    }
    return pkg;
  }
  if (url.startsWith('node:') || !url.includes('/')) return '(node internals)';
  if (/\/dist\//.test(url)) return '(this project: dist/)';
  return '(other)';
}

export interface Summary {
  total: number;
  byType: Array<[string, number, number]>;
  byPackage: Array<[string, number, number, number]>;
  scriptSource: number;
  compiled: number;
}

export function summarize(snap: Snapshot): Summary {
  const meta = snap.snapshot.meta;
  const NF = meta.node_fields.length;
  const EF = meta.edge_fields.length;
  const types = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const [typeI, nameI, sizeI, countI] = ['type', 'name', 'self_size', 'edge_count'].map((f) => meta.node_fields.indexOf(f)) as [number, number, number, number];
  const [eTypeI, eNameI, eToI] = ['type', 'name_or_index', 'to_node'].map((f) => meta.edge_fields.indexOf(f)) as [number, number, number];
  const { nodes, edges, strings } = snap;
  const n = nodes.length / NF;
  const firstEdge = new Uint32Array(n + 1);
  for (let i = 0, e = 0; i < n; i++) {
    firstEdge[i] = e;
    e += nodes[i * NF + countI]! * EF;
    firstEdge[i + 1] = e;
  }
  const type = (i: number): string => types[nodes[i * NF + typeI]!]!;
  const name = (i: number): string => strings[nodes[i * NF + nameI]!]!;
  const size = (i: number): number => nodes[i * NF + sizeI]!;
  function* out(i: number): Generator<[string, string, number]> {
    for (let e = firstEdge[i]!; e < firstEdge[i + 1]!; e += EF) {
      const et = edgeTypes[edges[e + eTypeI]!]!;
      const en = et === 'element' || et === 'hidden' ? String(edges[e + eNameI]) : strings[edges[e + eNameI]!]!;
      yield [et, en, edges[e + eToI]! / NF];
    }
  }

  let total = 0;
  const byType = new Map<string, [number, number]>();
  for (let i = 0; i < n; i++) {
    const t = type(i);
    // Objects, closures and native objects by name (constructor / function); the rest by V8 type.
    const key = t === 'object' || t === 'native' || (t === 'code' && name(i).startsWith('system /')) ? `${t}: ${name(i)}` : t;
    const cell = byType.get(key) ?? [0, 0];
    cell[0] += size(i);
    cell[1] += 1;
    byType.set(key, cell);
    total += size(i);
  }

  // Scripts: code nodes whose "source" edge leads to a string; their name is the URL.
  const seen = new Uint8Array(n);
  const byPackage = new Map<string, [number, number, number]>(); // source, compiled, scripts
  const scriptPackage = new Map<number, string>();
  let scriptSource = 0;
  for (let i = 0; i < n; i++) {
    if (type(i) !== 'code') continue;
    for (const [, en, to] of out(i)) {
      if (en !== 'source' || !type(to).includes('string') || seen[to]) continue;
      const pkg = packageOf(name(i));
      scriptPackage.set(i, pkg);
      seen[to] = 1;
      const cell = byPackage.get(pkg) ?? [0, 0, 0];
      cell[0] += size(to);
      cell[2] += 1;
      byPackage.set(pkg, cell);
      scriptSource += size(to);
    }
  }
  // Compiled code: from each SharedFunctionInfo with a "script" edge, the code-type nodes it reaches
  // through code-type nodes only (bytecode, constant pool, scope info...), each counted once.
  let compiled = 0;
  for (let i = 0; i < n; i++) {
    if (type(i) !== 'code' || seen[i]) continue;
    let script = -1;
    for (const [, en, to] of out(i)) if (en === 'script' && scriptPackage.has(to)) script = to;
    if (script < 0) continue;
    const pkg = scriptPackage.get(script)!;
    let bytes = 0;
    const stack = [i];
    seen[i] = 1;
    while (stack.length > 0) {
      const j = stack.pop()!;
      bytes += size(j);
      for (const [et, , to] of out(j)) {
        if (et === 'weak' || seen[to] || type(to) !== 'code' || scriptPackage.has(to)) continue;
        if (/^system \/ (Script|SharedFunctionInfo)$|shared function info/.test(name(to))) continue;
        seen[to] = 1;
        stack.push(to);
      }
    }
    byPackage.get(pkg)![1] += bytes;
    compiled += bytes;
  }

  return {
    total,
    byType: [...byType].map(([k, [s, c]]) => [k, s, c] as [string, number, number]).sort((a, b) => b[1] - a[1]),
    byPackage: [...byPackage].map(([k, [s, c, m]]) => [k, s, c, m] as [string, number, number, number]).sort((a, b) => b[1] + b[2] - a[1] - a[2]),
    scriptSource,
    compiled,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: tsx bench/heap-summary.ts FILE.heapsnapshot [TOP]\n');
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? 25);
  const s = summarize(JSON.parse(readFileSync(file, 'utf8')) as Snapshot);
  console.log(`${file}\nheap (sum of self sizes): ${MB(s.total)} MB`);
  console.log(`  module source text in the heap: ${MB(s.scriptSource)} MB; compiled code reached from its functions: ${MB(s.compiled)} MB\n`);
  console.log(`by node type / constructor (self size), top ${top}:`);
  for (const [k, sz, c] of s.byType.slice(0, top)) console.log(`  ${MB(sz)} MB  ${String(c).padStart(7)}  ${k}`);
  console.log('\nby package: module source MB, compiled code MB, scripts');
  for (const [k, src, code, m] of s.byPackage.slice(0, top)) console.log(`  ${MB(src)} ${MB(code)}  ${String(m).padStart(5)}  ${k}`);
}
