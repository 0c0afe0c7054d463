// Fallback reads for the webhook edge, on a cache miss (a pod or node the informers have not
// delivered yet). One GET, trimmed like the caches; undefined on 404; any other failure throws,
// so the caller knows the read failed (the placement webhook then lets the pod through with a
// warning that names the failure). Each call has a short deadline: see src/timeouts.ts.

import { LOOKUP_TIMEOUT_MS } from '../timeouts.js';
import { isAbort, isNotFound, LookupTimeoutError, withDeadline } from './kube-client.js';
import type { KubeAccess } from './kube-config.js';
import { request, seg } from './raw-api.js';
import type { ClusterReader } from './reader.js';
import { trimNode, trimPod } from './trim.js';
import type { NodeInfo, PodInfo } from './view.js';

export const DEFAULT_LOOKUP_TIMEOUT_MS = LOOKUP_TIMEOUT_MS;

export interface LookupOptions {
  timeoutMs?: number;
}

async function read<R>(kc: KubeAccess, what: string, path: string, ms: number, trim: (raw: unknown) => R): Promise<R | undefined> {
  try {
    return trim(await withDeadline(request(kc, { path, timeoutMs: ms }), ms, what));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    if (isAbort(err)) throw new LookupTimeoutError(what, ms);
    throw err;
  }
}

export function readPod(kc: KubeAccess, namespace: string, name: string, options: LookupOptions = {}): Promise<PodInfo | undefined> {
  const ms = options.timeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS;
  return read(kc, `pod ${namespace}/${name}`, `/api/v1/namespaces/${seg(namespace)}/pods/${seg(name)}`, ms, trimPod);
}

export function readNode(kc: KubeAccess, name: string, options: LookupOptions = {}): Promise<NodeInfo | undefined> {
  const ms = options.timeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS;
  return read(kc, `node ${name}`, `/api/v1/nodes/${seg(name)}`, ms, trimNode);
}

/** The live reader: one GET per call against the cluster of `kc`. */
export function liveReader(kc: KubeAccess, options: LookupOptions = {}): ClusterReader {
  return {
    pod: (namespace, name) => readPod(kc, namespace, name, options),
    node: (name) => readNode(kc, name, options),
  };
}
