// Summarises a V8 .cpuprofile (node --cpu-prof, e.g. `npm run bench -- --only floor --cpu-prof DIR`)
// without DevTools: where the serving time went, by component (each sample is charged to the
// nearest frame on its stack that names one), then the top functions by self time.
// Usage: tsx bench/profile-summary.ts FILE [REQUESTS]   (REQUESTS: to print µs per request)

import { readFileSync } from 'node:fs';

interface Frame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: Frame;
  children?: number[];
}

const STARTUP = 'startup (module loading, snapshot, certificates)';
const RULES: Array<[RegExp, string]> = [
  [/pino|sonic-boom/, 'pino (the decision log line)'],
  [/modules\/(cjs|esm)|\/yaml\/|asn1js|jose|reflect-metadata|avvio|package_json/, STARTUP],
  [/secure-json-parse/, 'JSON parse (fastify: secure-json-parse)'],
  [/prom-client/, 'prom-client'],
  [/\/dist\/(webhooks|cluster|admission|modes)\//, 'the decision and the envelope (dist/webhooks, modes, cluster, admission)'],
  // JSON.parse and JSON.stringify are builtins V8 charges to their caller: here, mostly this module.
  [/\/dist\/server\/admission-route/, 'admission route (dist/server/admission-route.js: body, JSON.parse, reply)'],
  [/\/dist\/server\//, 'server (dist/server)'],
  [/fastify|find-my-way|toad-cache/, 'fastify (and what it calls)'],
];

export function summarise(file: string, requests?: number, top = 20): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));

  const category = (id: number): string => {
    const first = byId.get(id)!.callFrame;
    if (first.functionName === '(idle)') return '(idle)';
    if (first.functionName === '(garbage collector)') return 'garbage collector';
    if (first.functionName === 'compileSourceTextModule') return STARTUP;
    // node's own code (HTTP/2, TLS, streams) is charged to node even when the project called it
    // (writeHead, end): that is the part the floor pays too.
    if (/^node:/.test(first.url) && !/^node:internal\/(modules|fs)/.test(first.url)) return 'node: HTTP/2, TLS, streams';
    for (let cur: number | undefined = id, i = 0; cur !== undefined && i < 80; cur = parent.get(cur), i++) {
      const { url } = byId.get(cur)!.callFrame;
      for (const [re, name] of RULES) if (re.test(url)) return name;
    }
    return /^node:/.test(first.url) || /^write(String|Utf8String|v)/.test(first.functionName) ? 'node: HTTP/2, TLS, streams' : 'other (native, V8)';
  };

  const byCategory = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, us] of self) {
    const c = category(id);
    byCategory.set(c, (byCategory.get(c) ?? 0) + us);
    if (c === STARTUP) continue;
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const key = `${functionName || '(anonymous)'} ${url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  }
  const serving = [...byCategory].filter(([c]) => c !== '(idle)' && c !== STARTUP).reduce((a, [, us]) => a + us, 0);
  const lines = [...byCategory]
    .sort((a, b) => b[1] - a[1])
    .map(([c, us]) => {
      const share = c === '(idle)' || c === STARTUP ? '' : `${((100 * us) / serving).toFixed(1).padStart(5)}% of serving`;
      return `  ${(us / 1e6).toFixed(2).padStart(6)} s ${share.padEnd(17)} ${c}`;
    });
  const perRequest = requests ? `, ${(serving / requests).toFixed(0)} µs of CPU per request over ${requests} requests` : '';
  const fns = [...byFunction]
    .filter(([k]) => !k.startsWith('(idle)'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, us]) => `  ${((100 * us) / serving).toFixed(1).padStart(5)}%  ${k}`);
  return `serving time ${(serving / 1e6).toFixed(2)} s${perRequest}\nby component:\n${lines.join('\n')}\ntop functions (self time, % of serving):\n${fns.join('\n')}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const requests = process.argv[3] ? Number(process.argv[3]) : undefined;
  console.log(summarise(process.argv[2]!, requests));
}
