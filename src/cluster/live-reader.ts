// Fallback reads for the webhook edge, on a cache miss (a pod or node the informers have not
// delivered yet). One GET, trimmed like the caches; undefined on 404; any other failure throws,
// so the caller knows the read failed (the placement webhook then lets the pod through with a
// warning that names the failure). Each call has a short deadline: see src/timeouts.ts.

import { CoreV1Api, type ConfigurationOptions, type KubeConfig } from '@kubernetes/client-node';
import { LOOKUP_TIMEOUT_MS } from '../timeouts.js';
import { isAbort, isNotFound, LookupTimeoutError, timeoutOptions, withDeadline } from './kube-client.js';
import type { ClusterReader } from './reader.js';
import { trimNode, trimPod } from './trim.js';
import type { NodeInfo, PodInfo } from './view.js';

export const DEFAULT_LOOKUP_TIMEOUT_MS = LOOKUP_TIMEOUT_MS;

export interface LookupOptions {
  timeoutMs?: number;
}

const clients = new WeakMap<KubeConfig, CoreV1Api>();

function coreApi(kc: KubeConfig): CoreV1Api {
  let api = clients.get(kc);
  if (!api) clients.set(kc, (api = kc.makeApiClient(CoreV1Api)));
  return api;
}

async function read<T, R>(what: string, ms: number, call: (options: ConfigurationOptions) => Promise<T>, trim: (raw: T) => R): Promise<R | undefined> {
  try {
    return trim(await withDeadline(call(timeoutOptions(ms)), ms, what));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    if (isAbort(err)) throw new LookupTimeoutError(what, ms);
    throw err;
  }
}

export function readPod(kc: KubeConfig, namespace: string, name: string, options: LookupOptions = {}): Promise<PodInfo | undefined> {
  const ms = options.timeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS;
  return read(`pod ${namespace}/${name}`, ms, (o) => coreApi(kc).readNamespacedPod({ namespace, name }, o), trimPod);
}

export function readNode(kc: KubeConfig, name: string, options: LookupOptions = {}): Promise<NodeInfo | undefined> {
  const ms = options.timeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS;
  return read(`node ${name}`, ms, (o) => coreApi(kc).readNode({ name }, o), trimNode);
}

/** The live reader: one GET per call against the cluster of `kc`. */
export function liveReader(kc: KubeConfig, options: LookupOptions = {}): ClusterReader {
  return {
    pod: (namespace, name) => readPod(kc, namespace, name, options),
    node: (name) => readNode(kc, name, options),
  };
}
