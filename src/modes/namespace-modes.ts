// The namespaces' mode labels, as the webhooks read them: one informer on Namespaces with the
// label selector `cilium-migration-guard.io/mode` (label exists), so only labelled namespaces are
// listed and watched, each kept as name → label value and nothing else.
//
// Until the first list completes (or when RBAC forbids it) every namespace gets the configured
// mode: the webhooks keep serving, and readiness does not wait on this optional cache, because
// a webhook that never becomes ready would fail DaemonSet writes closed over a missing label.
// Errors restart the informer with capped backoff (the same behaviour as cluster/informers.ts).

import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { CoreV1Api, ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { MODE_LABEL, type NamespaceModes } from './mode.js';

export interface LiveNamespaceModes extends NamespaceModes {
  synced(): boolean;
  /** Labelled namespaces known, name → label value (for `status` and tests). */
  all(): Record<string, string>;
  stop(): Promise<void>;
}

/** A fixed set (a snapshot, tests). */
export function staticNamespaceModes(labels: Record<string, string>): NamespaceModes & { all(): Record<string, string> } {
  const map = new Map(Object.entries(labels));
  return { modeLabel: (namespace) => map.get(namespace), all: () => Object.fromEntries(map) };
}

/** The mode label of Namespace objects (from a snapshot or a list), by name. */
export function modeLabelsOf(namespaces: Iterable<{ metadata?: { name?: string; labels?: Record<string, string> } }>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const ns of namespaces) {
    const value = ns.metadata?.labels?.[MODE_LABEL];
    if (ns.metadata?.name && typeof value === 'string') out[ns.metadata.name] = value;
  }
  return out;
}

/** The mode labels of the v1 Namespace objects in a snapshot file (single objects or Lists). */
export function modeLabelsInFile(path: string): Record<string, string> {
  const namespaces: Array<{ metadata?: { name?: string; labels?: Record<string, string> } }> = [];
  for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
    const value = doc.toJS() as { kind?: string; items?: unknown[] } | null;
    const items = Array.isArray(value?.items) ? value.items : [value];
    for (const item of items as Array<{ kind?: string; apiVersion?: string; metadata?: { name?: string; labels?: Record<string, string> } }>) {
      if ((item?.kind === 'Namespace' && item.apiVersion === 'v1') || value?.kind === 'NamespaceList') namespaces.push(item);
    }
  }
  return modeLabelsOf(namespaces);
}

export function startNamespaceModes(kc: KubeConfig, logger: Logger, options: { backoffMs?: { initial: number; max: number } } = {}): LiveNamespaceModes {
  const log = logger.child({ cache: 'namespaceModes' });
  const core = kc.makeApiClient(CoreV1Api);
  const labels = new Map<string, string>();
  const backoff = options.backoffMs ?? { initial: 1_000, max: 30_000 };
  let delay = backoff.initial;
  let synced = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const list = async (): Promise<KubernetesListObject<KubernetesObject>> => {
    const result = await core.listNamespace({ labelSelector: MODE_LABEL });
    setImmediate(() => {
      if (stopped) return;
      delay = backoff.initial;
      if (!synced) log.info({ labelled: labels.size }, 'namespace mode labels cache synced');
      synced = true;
    });
    return result as KubernetesListObject<KubernetesObject>;
  };
  const informer = new ListWatch<KubernetesObject>('/api/v1/namespaces', new Watch(kc), list, false, MODE_LABEL);
  const apply = (raw: KubernetesObject): void => {
    const name = raw.metadata?.name;
    const value = raw.metadata?.labels?.[MODE_LABEL];
    if (!name) return;
    if (typeof value === 'string') labels.set(name, value);
    else labels.delete(name);
    // Keep only what is read in the informer's own cache.
    const target = raw as Record<string, unknown>;
    for (const field of Object.keys(target)) if (field !== 'apiVersion' && field !== 'kind') delete target[field];
    target.metadata = { name, resourceVersion: raw.metadata?.resourceVersion, labels: typeof value === 'string' ? { [MODE_LABEL]: value } : {} };
  };
  informer.on('add', apply);
  informer.on('update', apply);
  informer.on('delete', (raw) => {
    if (raw?.metadata?.name) labels.delete(raw.metadata.name);
  });
  const failed = (err: unknown): void => {
    if (stopped || timer) return;
    log.warn({ err, retryInMs: delay }, 'namespace mode labels informer failed; namespaces keep their last known mode, unlabelled ones the configured mode');
    const wait = delay;
    delay = Math.min(delay * 2, backoff.max);
    timer = setTimeout(() => {
      timer = undefined;
      void run();
    }, wait);
    timer.unref();
  };
  informer.on('error', failed);
  const run = async (): Promise<void> => {
    if (stopped) return;
    try {
      await informer.start();
    } catch (err) {
      failed(err);
    }
  };
  void run();

  return {
    modeLabel: (namespace) => labels.get(namespace),
    synced: () => synced,
    all: () => Object.fromEntries(labels),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      await informer.stop();
    },
  };
}
