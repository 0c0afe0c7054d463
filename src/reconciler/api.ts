// The reconciler's API calls, behind one interface so it can be tested without a cluster. RBAC
// (manifests/components/reconciler) is written from this list:
//   list daemonsets (apps/v1, all namespaces)          what to judge
//   patch daemonsets                                    the fix: a JSON patch whose first op tests metadata.resourceVersion
//   list namespaces (labelSelector cilium-migration-guard.io/mode)   the mode in force per namespace
//   create, patch events                                 (the reaper's grant) an Event on each DaemonSet

import { AppsV1Api, CoreV1Api, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { abortOptions, httpStatus, withDeadline } from '../cluster/kube-client.js';
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

function client(options: CallOptions | undefined, defaultMs: number) {
  const ms = options?.timeoutMs ?? defaultMs;
  const signal = () => AbortSignal.any([AbortSignal.timeout(ms), ...(options?.signal ? [options.signal] : [])]);
  return { ms, client: abortOptions(signal) };
}

export function liveReconcilerApi(kc: KubeConfig, events: Pick<ReaperApi, 'createEvent' | 'patchEvent'>): ReconcilerApi {
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  return {
    ...events,
    async listDaemonSets(options) {
      const out: DaemonSetObject[] = [];
      let cont: string | undefined;
      do {
        const { ms, client: c } = client(options, LIST_TIMEOUT_MS);
        const page = await withDeadline(
          apps.listDaemonSetForAllNamespaces({ limit: 500, ...(cont ? { _continue: cont } : {}) }, c),
          ms,
          'DaemonSet list',
          options?.signal,
        );
        for (const item of page.items) {
          const m = item.metadata ?? {};
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
            // The decision reads the pod template; client-node's camelCase model is the API's JSON.
            spec: JSON.parse(JSON.stringify(item.spec ?? {})),
          });
        }
        cont = page.metadata?._continue || undefined;
      } while (cont);
      return out;
    },
    async listModeLabels(options) {
      const { ms, client: c } = client(options, LIST_TIMEOUT_MS);
      const list = await withDeadline(core.listNamespace({ labelSelector: MODE_LABEL }, c), ms, 'Namespace list', options?.signal);
      return modeLabelsOf(list.items as Array<{ metadata?: { name?: string; labels?: Record<string, string> } }>);
    },
    async patchDaemonSet(namespace, name, patch, options) {
      const { ms, client: c } = client(options, WRITE_TIMEOUT_MS);
      try {
        await withDeadline(
          apps.patchNamespacedDaemonSet(
            { namespace, name, body: patch, fieldManager: 'cilium-migration-guard' },
            setHeaderOptions('Content-Type', 'application/json-patch+json', c),
          ),
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
