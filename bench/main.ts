// `npm run bench [-- --quick] [-- --only floor,api,scale]`: prints figures, asserts nothing.
//   0. the pure decisions in-process;
//   1. server floor vs. this webhook (h2load over HTTP/2 + TLS on 127.0.0.1);
// Only loopback is contacted; every loop is bounded; every process started is stopped.

import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { runDecisions } from './admission.js';
import { FULL, QUICK, runFloor } from './floor.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    runs: { type: 'string' },
    scenarios: { type: 'string' },
    'cpu-prof': { type: 'string' },
    compare: { type: 'string' },
  },
});
const parts = new Set((values.only ?? 'decisions,floor').split(','));
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
  console.log(`\n## 1. Server floor vs. this webhook (h2load, ${options.runs} run(s), medians; each cell "floor / webhook")`);
  await runFloor(options);
}
