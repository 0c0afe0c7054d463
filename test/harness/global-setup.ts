// The e2e project's globalSetup: starts the shared control plane (test/harness/shared.ts) when a
// test file of this run calls sharedControlPlane(), hands its address to the files with
// provide(), and stops it after the last file.

import { readFileSync } from 'node:fs';
import { sep } from 'node:path';
import type { TestProject } from 'vitest/node';
import { controlPlaneInfo, startControlPlane, type ControlPlane } from './controlplane.js';
import { PROVIDE_KEY, SHARED_MARKER } from './shared.js';

function wanted(project: TestProject): boolean {
  // The files of this run (all projects), known before globalSetup runs: vitest 5 keeps them in
  // state.pathsSet (internal, hence the guarded access). Unknown means start it: a file that
  // needs it must not fail for want of it.
  const state = project.vitest.state as unknown as { pathsSet?: Set<string> };
  const files = [...(state.pathsSet ?? [])].filter((f) => f.includes(`${sep}test${sep}e2e${sep}`));
  if (files.length === 0) return true;
  return files.some((f) => {
    try {
      return readFileSync(f, 'utf8').includes(SHARED_MARKER);
    } catch {
      return true;
    }
  });
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (!wanted(project)) {
    project.provide(PROVIDE_KEY, null);
    return undefined;
  }
  const started = Date.now();
  let cp: ControlPlane;
  try {
    cp = await startControlPlane({ log: (line) => process.stderr.write(`[shared controlplane] ${line}\n`) });
  } catch (err) {
    // The files that share it fail with this message; the rest of the run (unit tests too) goes on.
    project.provide(PROVIDE_KEY, { error: err instanceof Error ? err.message : String(err) });
    return undefined;
  }
  process.stderr.write(`[shared controlplane] up in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  project.provide(PROVIDE_KEY, controlPlaneInfo(cp));
  return () => cp.stop();
}
