// One control plane shared by the end-to-end files that can live together in one cluster, started
// once per `vitest run` by the e2e project's globalSetup (test/harness/global-setup.ts) instead of
// once per file: each start of etcd, kube-apiserver, kube-scheduler, kube-controller-manager and
// kwok costs seconds of both cores.
//
// A file may share when it only touches what it creates itself: its own nodes (addNodes, unique
// names), namespaces and objects, and no cluster-wide switch — no webhook registration, no
// assertion over every node or pod, no restart or reconfiguration of the API server. Files that
// need any of that call startControlPlane() for their own. Sharing files run one after another
// (the e2e project runs files serially), so they never run at the same time.
//
// A file opts in by calling sharedControlPlane(); globalSetup looks for that call in the files of
// the run and starts the shared control plane only when one of them has it. Run outside that
// globalSetup, sharedControlPlane() starts a control plane of the file's own.

import { inject } from 'vitest';
import { attachControlPlane, startControlPlane, type ControlPlane, type ControlPlaneInfo, type StartOptions } from './controlplane.js';

/** The call globalSetup looks for in a test file's source. */
export const SHARED_MARKER = 'sharedControlPlane(';
export const PROVIDE_KEY = 'cmgSharedControlPlane';

/** What globalSetup provides: the shared control plane, why it could not start, or null (not started). */
export type SharedControlPlane = ControlPlaneInfo | { error: string } | null;

declare module 'vitest' {
  export interface ProvidedContext {
    cmgSharedControlPlane: SharedControlPlane;
  }
}

/**
 * The shared control plane (stop() leaves it running for the next file), or, when none is
 * provided, one of this file's own (stop() stops it). Add nodes with addNodes().
 */
export async function sharedControlPlane(opts: Pick<StartOptions, 'log'> = {}): Promise<ControlPlane> {
  let info: SharedControlPlane | undefined;
  try {
    info = inject(PROVIDE_KEY);
  } catch {
    info = undefined; // not running under vitest's e2e project
  }
  if (info && 'error' in info) throw new Error(`the shared control plane did not start: ${info.error}`);
  if (info) return attachControlPlane(info);
  return startControlPlane(opts);
}
