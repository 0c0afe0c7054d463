// Every API call the reaper makes besides its informers and its Lease, behind one interface so the
// actuator can be tested without a cluster. RBAC (manifests) is written from this list:
//   get pods, get ciliumendpoints.cilium.io   (the re-read before acting)
//   delete pods, create pods/eviction          (the removal, with uid + resourceVersion preconditions)
//   create, patch events                       (core v1, in the pod's namespace; node events in default)

import { ApiException, CoreV1Api, CustomObjectsApi, setHeaderOptions, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import { isNotFound, readPod, timeoutOptions, withDeadline } from '../cluster/lookup.js';
import { trimCiliumEndpoint } from '../cluster/trim.js';
import type { CiliumEndpointInfo, PodInfo } from '../cluster/view.js';

export type RemovalAction = 'delete' | 'evict';

export interface Preconditions {
  uid: string;
  resourceVersion?: string;
}

/**
 * removed: accepted (the pod terminates with its own grace period). gone: 404. changed: 409, the
 * uid or resourceVersion precondition failed. blocked: 429, a PodDisruptionBudget refused the eviction.
 */
export type RemovalOutcome = 'removed' | 'gone' | 'changed' | 'blocked';

export interface ReaperApi {
  readPod(namespace: string, name: string): Promise<PodInfo | undefined>;
  readCiliumEndpoint(namespace: string, name: string): Promise<CiliumEndpointInfo | undefined>;
  remove(action: RemovalAction, namespace: string, name: string, preconditions: Preconditions): Promise<RemovalOutcome>;
  createEvent(event: CoreV1Event): Promise<void>;
  /** JSON merge patch of an existing Event. */
  patchEvent(namespace: string, name: string, patch: Record<string, unknown>): Promise<void>;
}

const READ_TIMEOUT_MS = 5_000;
const WRITE_TIMEOUT_MS = 10_000;

function code(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

export function liveReaperApi(kc: KubeConfig): ReaperApi {
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  return {
    readPod: (namespace, name) => readPod(kc, namespace, name, { timeoutMs: READ_TIMEOUT_MS }),

    async readCiliumEndpoint(namespace, name) {
      const what = `CiliumEndpoint ${namespace}/${name}`;
      try {
        const raw: unknown = await withDeadline(
          custom.getNamespacedCustomObject({ group: 'cilium.io', version: 'v2', namespace, plural: 'ciliumendpoints', name }, timeoutOptions(READ_TIMEOUT_MS)),
          READ_TIMEOUT_MS,
          what,
        );
        return trimCiliumEndpoint(raw);
      } catch (err) {
        if (isNotFound(err)) return undefined; // no such CEP (or no CEP CRD at all): not managed
        throw err;
      }
    },

    async remove(action, namespace, name, preconditions) {
      const options = timeoutOptions(WRITE_TIMEOUT_MS);
      try {
        if (action === 'delete') {
          // No gracePeriodSeconds: the pod's own terminationGracePeriodSeconds applies.
          await core.deleteNamespacedPod({ namespace, name, body: { preconditions } }, options);
        } else {
          await core.createNamespacedPodEviction(
            { namespace, name, body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { namespace, name }, deleteOptions: { preconditions } } },
            options,
          );
        }
        return 'removed';
      } catch (err) {
        switch (code(err)) {
          case 404:
            return 'gone';
          case 409:
            return 'changed';
          case 429:
            if (action === 'evict') return 'blocked';
            throw err;
          default:
            throw err;
        }
      }
    },

    async createEvent(event) {
      await core.createNamespacedEvent({ namespace: event.metadata.namespace ?? 'default', body: event }, timeoutOptions(WRITE_TIMEOUT_MS));
    },

    async patchEvent(namespace, name, patch) {
      await core.patchNamespacedEvent(
        { namespace, name, body: patch },
        setHeaderOptions('Content-Type', 'application/merge-patch+json', timeoutOptions(WRITE_TIMEOUT_MS)),
      );
    },
  };
}

export function isAlreadyExists(err: unknown): boolean {
  return code(err) === 409;
}
