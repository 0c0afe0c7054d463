// The namespaces' mode labels, as the webhooks read them: one informer on Namespaces with the
// label selector `cilium-migration-guard.io/mode` (label exists), so only labelled namespaces are
// listed and watched, each kept as name → label value and nothing else.
//
// Until the first list completes (or when RBAC forbids it) every namespace gets the configured
// mode: the webhooks keep serving, and readiness does not wait on this optional cache, because
// a webhook that never becomes ready would fail DaemonSet writes closed over a missing label.
// The list and watch are cluster/informers.ts's (startInformer: raw JSON, bookmarks, 410 relist),
// restarted after errors with capped backoff (1 s → 30 s here); until then namespaces keep their
// last known mode, unlabelled ones the configured mode.

import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { KubeAccess } from '../cluster/kube-config.js';
import { startInformer } from '../cluster/informers.js';
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

export function startNamespaceModes(
  kc: KubeAccess,
  logger: Logger,
  options: { backoffMs?: { initial: number; max: number }; clock?: Clock } = {},
): LiveNamespaceModes {
  const labels = new Map<string, string>();
  const backoff = options.backoffMs ?? { initial: 1_000, max: 30_000 };
  let stopped = false;
  const informer = startInformer(
    kc,
    {
      name: 'namespaceModes',
      what: 'namespace mode labels',
      path: '/api/v1/namespaces',
      labelSelector: MODE_LABEL,
      // Only the name and the label are kept.
      trim: (raw) => {
        const meta = raw.metadata as { name?: unknown; labels?: Record<string, unknown> } | undefined;
        const name = typeof meta?.name === 'string' ? meta.name : '';
        const value = meta?.labels?.[MODE_LABEL];
        return name ? { name, value: typeof value === 'string' ? value : undefined } : undefined;
      },
      store: (trimmed) => {
        const { name, value } = trimmed as { name: string; value: string | undefined };
        if (value !== undefined) labels.set(name, value);
        else labels.delete(name);
      },
      remove: (_namespace, name) => labels.delete(name),
    },
    logger,
    { backoff: { initialMs: backoff.initial, maxMs: backoff.max }, ...(options.clock ? { clock: options.clock } : {}) },
  );
  return {
    modeLabel: (namespace) => labels.get(namespace),
    synced: () => informer.synced(),
    all: () => Object.fromEntries(labels),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await informer.stop();
    },
  };
}
