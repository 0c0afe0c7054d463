// `npm run bench [-- --quick] [-- --only floor,api,scale]`: prints figures, asserts nothing.
//   0. the pure decisions in-process;
//   1. server floor vs. this webhook (h2load over HTTP/2 + TLS on 127.0.0.1);
//   2. through the real API server (local control plane): the latency the webhook adds;
//   3. scale: nodes / pods in the API server; the webhook's and the reaper's sync, memory, latency;
//   4. a peer (Kyverno, built from the Go module proxy) doing the same DaemonSet mutation, side by side.
// Only loopback is contacted; every loop is bounded; every process started is stopped.

import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { runDecisions } from './admission.js';
import { runApiServer } from './apiserver.js';
import { passCurve } from './detect-pass.js';
import { FULL, QUICK, runFloor } from './floor.js';
import { runPeer } from './peer.js';
import { runScale } from './scale.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    runs: { type: 'string' },
    scenarios: { type: 'string' },
    'cpu-prof': { type: 'string' },
    compare: { type: 'string' },
    n: { type: 'string' },
    sizes: { type: 'string' },
    'peer-profile': { type: 'string' },
    'node-flags': { type: 'string' },
  },
});
const parts = new Set((values.only ?? 'decisions,floor,api,scale,peer').split(','));
const quick = values.quick ?? false;

console.log(`node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), ${new Date().toISOString()}${quick ? ', --quick' : ''}`);
if (parts.has('decisions')) {
  console.log('\n## 0. Decisions in-process');
  await runDecisions(quick ? 0.2 : 1);
}
if (parts.has('floor')) {
  const options = { ...(quick ? QUICK : FULL) };
  if (values.runs) options.runs = Number(values.runs);
  if (values.scenarios) options.only = values.scenarios.split(',');
  if (values.compare) options.compare = values.compare;
  if (values['cpu-prof']) options.nodeFlags = ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`];
  // e.g. --node-flags=--max-semi-space-size=4: the webhook's node flags only (not the floor's).
  if (values['node-flags']) options.nodeFlags = [...(options.nodeFlags ?? []), ...values['node-flags'].split(' ').filter(Boolean)];
  console.log(`\n## 1. Server floor vs. this webhook (h2load, ${options.runs} run(s), medians; each cell "floor / webhook")`);
  await runFloor(options);
}
if (parts.has('api')) {
  const n = Number(values.n ?? (quick ? 100 : 300));
  console.log(`\n## 2. Through the real API server (local control plane; ${n} rounds of each kind, one request at a time)`);
  await runApiServer(n);
}
if (parts.has('scale')) {
  // "200/2000,2000/20000": nodes/pods, each size built on the previous one.
  const sizes = (values.sizes ?? (quick ? '200/2000' : '200/2000,2000/20000')).split(',').map((s) => {
    const [nodes, pods] = s.split('/').map(Number);
    if (!nodes || !pods) throw new Error(`--sizes: expected NODES/PODS[,NODES/PODS…], got ${JSON.stringify(s)}`);
    return { nodes, pods };
  });
  console.log(`\n## 3. Scale (${sizes.map((s) => `${s.nodes} nodes / ${s.pods} pods`).join(', then ')}; half the nodes labelled)`);
  await runScale(sizes, quick ? 2 : 4, values.compare);
  console.log('\n  The full pass alone over an in-memory view of the same objects (no API server), further out:');
  passCurve([...sizes, ...(quick ? [] : [{ nodes: 5000, pods: 50000 }])]);
}
if (parts.has('peer')) {
  const n = Number(values.n ?? (quick ? 50 : 200));
  console.log(`\n## 4. A peer: Kyverno doing the same DaemonSet mutation, through the same API server (${n} DaemonSet creates per phase, one at a time)`);
  const profileDir = values['peer-profile'];
  await runPeer({ n, runs: quick ? 1 : 3, seconds: quick ? 2 : 3, warmupSeconds: 1, ...(profileDir ? { profileDir } : {}) });
}
