// Importing @kubernetes/client-node costs ~50 MB of RSS (every entry point of it, KubeConfig
// included, loads its generated APIs and models; docs/benchmarks.md, "Scale"). No command loads it
// at run time any more: each command's module graph, as a fresh process resolves it, holds no
// module of client-node (only kube-config.ts's fallback for exec/auth-provider users imports it,
// lazily, and `import type` is erased).

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);

/** Every module URL a fresh process resolves while importing `targets`. */
async function loadedBy(...targets: string[]): Promise<string[]> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'test/support/loaded-modules.mjs', ...targets], { cwd: root, timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '[]') as string[];
}

const clientNode = (urls: string[]) => urls.filter((url) => url.includes('/node_modules/@kubernetes/client-node/'));

describe('no command loads @kubernetes/client-node at run time', () => {
  it('the probe sees client-node when it is imported (control)', async () => {
    expect(clientNode(await loadedBy('@kubernetes/client-node')).length).toBeGreaterThan(100);
  }, 60_000);

  it.each([
    ['serve (and the informers and namespace modes it starts)', ['./src/main.ts', './src/commands/serve.ts', './src/cluster/informers.ts']],
    ['reaper', ['./src/commands/reaper.ts', './src/reaper/service.ts']],
    ['status, report, lint', ['./src/commands/status.ts', './src/commands/report.ts', './src/commands/lint.ts']],
  ])(
    '%s',
    async (_name, targets) => {
      const urls = await loadedBy(...targets);
      expect(urls.filter((url) => url.includes('/src/')).length).toBeGreaterThan(20); // the probe saw the graph
      expect(clientNode(urls)).toEqual([]);
    },
    60_000,
  );
});
