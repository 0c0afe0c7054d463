#!/usr/bin/env node
// The executable entry point. It checks the Node version before anything else is loaded: the
// dependencies need Node 24 or later, and an older runtime would otherwise fail deep inside a
// module with a stack trace instead of saying what is wrong.

const MIN_NODE_MAJOR = 24;
const major = Number(process.versions.node.split('.')[0]);
if (major < MIN_NODE_MAJOR) {
  process.stderr.write(
    `error: cilium-migration-guard needs Node.js ${MIN_NODE_MAJOR} or later, this is ${process.version}. ` +
      'Run it through npm (npm start), which uses the Node runtime the project pins, or from the container image.\n',
  );
  process.exitCode = 1; // no process.exit(): the line above may still be on its way into a pipe
} else {
  const { main } = await import('./main.js');
  const { exitWhenFlushed } = await import('./commands/output.js');
  const code = await main(process.argv.slice(2));
  // Not process.exit(): output to a pipe may still be queued (commands/output.ts).
  if (code !== 'running') await exitWhenFlushed(code);
}
