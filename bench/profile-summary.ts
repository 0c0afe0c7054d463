// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by package, so a
// bench run's profile can be read without DevTools. Usage: tsx bench/profile-summary.ts FILE [N]

import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

export function summarise(file: string, top = 25): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const short = url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/');
    fn.set(`${functionName || '(anonymous)'} ${short}:${lineNumber + 1}`, (fn.get(`${functionName || '(anonymous)'} ${short}:${lineNumber + 1}`) ?? 0) + us);
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    const where = m ? m[1]! : url.startsWith('node:') ? `node:${url.slice(5).split('/')[0]}` : url.includes('/dist/') ? `dist/${url.split('/dist/')[1]!.split('/')[0]}` : functionName.startsWith('(') ? functionName : url ? 'other' : '(native/V8)';
    pkg.set(where, (pkg.get(where) ?? 0) + us);
  }
  const lines = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `  ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`)
      .join('\n');
  return `total ${(total / 1e6).toFixed(2)} s sampled\nby package:\n${lines(pkg, 15)}\nby function (self):\n${lines(fn, top)}`;
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(summarise(process.argv[2]!, Number(process.argv[3] ?? 25)));
