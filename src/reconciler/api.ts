// The reconciler's API calls, behind one interface so it can be tested without a cluster. RBAC
// (manifests/components/reconciler) is written from this list:
//   list daemonsets (apps/v1, all namespaces)          what to judge
//   patch daemonsets                                    the fix: a JSON patch whose first op tests metadata.resourceVersion
//   list namespaces (labelSelector cilium-migration-guard.io/mode)   the mode in force per namespace
//   create, patch events                                 (the reaper's grant) an Event on each DaemonSet

import { httpStatus, withDeadline } from '../cluster/kube-client.js';
import type { KubeAccess } from '../cluster/kube-config.js';
import { request, seg, type RawObject } from '../cluster/raw-api.js';
import { MODE_LABEL } from '../modes/mode.js';
import { modeLabelsOf } from '../modes/namespace-modes.js';
import type { JsonPatchOp } from '../admission/types.js';
import type { CallOptions, ReaperApi } from '../reaper/api.js';
import { WRITE_TIMEOUT_MS } from '../reaper/api.js';
import type { DaemonSetObject } from './findings.js';

/** patched: written. changed: the resourceVersion test failed (someone wrote it since the list). gone: 404. */
export type PatchOutcome = 'patched' | 'changed' | 'gone';

export interface ReconcilerApi extends Pick<ReaperApi, 'createEvent' | 'patchEvent'> {
  listDaemonSets(options?: CallOptions): Promise<DaemonSetObject[]>;
  /** Namespace name → its cilium-migration-guard.io/mode label, for labelled namespaces only. */
  listModeLabels(options?: CallOptions): Promise<Record<string, string>>;
  patchDaemonSet(namespace: string, name: string, patch: JsonPatchOp[], options?: CallOptions): Promise<PatchOutcome>;
}

const LIST_TIMEOUT_MS = 30_000;

/** A call's deadline and signal, for request() and withDeadline() alike. */
function timing(options: CallOptions | undefined, defaultMs: number) {
  const ms = options?.timeoutMs ?? defaultMs;
  return { ms, call: { timeoutMs: ms, ...(options?.signal ? { signal: options.signal } : {}) } };
}

interface RawListAnswer {
  items?: RawObject[];
  metadata?: { continue?: string };
}

export function liveReconcilerApi(kc: KubeAccess, events: Pick<ReaperApi, 'createEvent' | 'patchEvent'>): ReconcilerApi {
  return {
    ...events,
    async listDaemonSets(options) {
      const out: DaemonSetObject[] = [];
      let cont: string | undefined;
      do {
        const { ms, call } = timing(options, LIST_TIMEOUT_MS);
        const page = await withDeadline(
          request<RawListAnswer>(kc, { path: '/apis/apps/v1/daemonsets', query: { limit: 500, continue: cont }, ...call }),
          ms,
          'DaemonSet list',
          options?.signal,
        );
        for (const item of page?.items ?? []) {
          const m = (item.metadata ?? {}) as DaemonSetObject['metadata'];
          if (!m.name) continue;
          out.push({
            metadata: {
              name: m.name,
              ...(m.namespace ? { namespace: m.namespace } : {}),
              ...(m.uid ? { uid: m.uid } : {}),
              ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}),
              ...(m.labels ? { labels: m.labels } : {}),
              ...(m.annotations ? { annotations: m.annotations } : {}),
            },
            // The decision reads the pod template, as the API's JSON.
            spec: (item.spec ?? {}) as DaemonSetObject['spec'],
          });
        }
        cont = page?.metadata?.continue || undefined;
      } while (cont);
      return out;
    },
    async listModeLabels(options) {
      const { ms, call } = timing(options, LIST_TIMEOUT_MS);
      const list = await withDeadline(
        request<{ items?: Array<{ metadata?: { name?: string; labels?: Record<string, string> } }> }>(kc, {
          path: '/api/v1/namespaces',
          query: { labelSelector: MODE_LABEL },
          ...call,
        }),
        ms,
        'Namespace list',
        options?.signal,
      );
      return modeLabelsOf(list?.items ?? []);
    },
    async patchDaemonSet(namespace, name, patch, options) {
      const { ms, call } = timing(options, WRITE_TIMEOUT_MS);
      try {
        await withDeadline(
          request(kc, {
            method: 'PATCH',
            path: `/apis/apps/v1/namespaces/${seg(namespace)}/daemonsets/${seg(name)}`,
            query: { fieldManager: 'cilium-migration-guard' },
            body: patch,
            contentType: 'application/json-patch+json',
            ...call,
          }),
          ms,
          `patch of DaemonSet ${namespace}/${name}`,
          options?.signal,
        );
        return 'patched';
      } catch (err) {
        const status = httpStatus(err);
        if (status === 404) return 'gone';
        // A failed JSON-patch "test" op is 422 (Invalid); a conflict on write is 409.
        if (status === 422 || status === 409) return 'changed';
        throw err;
      }
    },
  };
}
