// Fallback reads for the webhook edge, on a cache miss (a pod or node the informers have not
// delivered yet). One GET, trimmed like the caches; undefined on 404; any other failure throws,
// so the caller knows the read failed (the placement webhook then lets the pod through with a
// warning that names the failure). Each call has a short deadline: see src/timeouts.ts.
//
// The deadline is enforced twice: an AbortSignal set on the request by a per-call middleware
// (aborts the HTTP request itself), and a Promise.race timer (also covers time spent before the
// request is sent, e.g. an exec credential plugin that hangs).

import {
  ApiException,
  CoreV1Api,
  Observable,
  type ConfigurationOptions,
  type KubeConfig,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import { trimNode, trimPod } from './trim.js';
import type { NodeInfo, PodInfo } from './view.js';
import { LOOKUP_TIMEOUT_MS } from '../timeouts.js';

export const DEFAULT_LOOKUP_TIMEOUT_MS = LOOKUP_TIMEOUT_MS;

export interface LookupOptions {
  timeoutMs?: number;
}

/** What the webhook edge reads when its cache has no answer. */
export interface ClusterReader {
  pod(namespace: string, name: string): Promise<PodInfo | undefined>;
  node(name: string): Promise<NodeInfo | undefined>;
}

/** Snapshot mode: there is no cluster to ask; the snapshot is the whole truth. */
export const noReader: ClusterReader = Object.freeze({
  pod: async () => undefined,
  node: async () => undefined,
});

export class LookupTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`reading ${what} from the API server timed out after ${ms} ms`);
    this.name = 'LookupTimeoutError';
  }
}

/**
 * Per-call client options that attach an AbortSignal to the HTTP request (client-node 2.x sends
 * RequestContext's signal to fetch). `makeSignal` runs when the request is about to be sent.
 */
export function abortOptions(makeSignal: () => AbortSignal): ConfigurationOptions {
  const abort: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(makeSignal());
      return new Observable(Promise.resolve(ctx));
    },
    post: (res) => new Observable(Promise.resolve(res)),
  };
  return { middleware: [abort], middlewareMergeStrategy: 'append' };
}

/** Per-call client options that abort the HTTP request after `ms`. */
export function timeoutOptions(ms: number): ConfigurationOptions {
  return abortOptions(() => AbortSignal.timeout(ms));
}

/**
 * Rejects with LookupTimeoutError after `ms`, or with the signal's reason when `signal` aborts,
 * whatever `promise` does: this also covers time spent before a request is sent (e.g. a hanging
 * credential plugin), which an AbortSignal on the request itself cannot.
 */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string, signal?: AbortSignal): Promise<T> {
  signal?.throwIfAborted();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LookupTimeoutError(what, ms)), ms);
    if (signal) signal.addEventListener('abort', (onAbort = () => reject(signal.reason)), { once: true });
  });
  try {
    return await Promise.race([promise, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/** The HTTP status the API server answered with; undefined when it did not answer (network, timeout, abort). */
export function httpStatus(err: unknown): number | undefined {
  return err instanceof ApiException ? (err.code as number) : undefined;
}

export function isNotFound(err: unknown): boolean {
  if (err instanceof ApiException) return err.code === 404;
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  return e?.code === 404 || e?.statusCode === 404;
}

function isAbort(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
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
