// Every API call the reaper makes besides its informers and its Lease, behind one interface so the
// actuator can be tested without a cluster. RBAC (manifests) is written from this list:
//   get pods, get ciliumendpoints.cilium.io   (the re-read before acting)
//   delete pods, create pods/eviction          (the removal, with uid + resourceVersion preconditions)
//   create, patch events                       (core v1, in the pod's namespace; node events in default)
//
// Every call takes the caller's AbortSignal (the pass's: aborted when leadership is lost or the
// reaper stops) and a deadline; both abort the HTTP request itself (raw-api.ts request()) and a
// timer covers time spent before the request is sent.

import type { CoreV1Event } from '@kubernetes/client-node';
import { httpStatus, isNotFound, withDeadline } from '../cluster/kube-client.js';
import type { KubeAccess } from '../cluster/kube-config.js';
import { request, seg } from '../cluster/raw-api.js';
import { trimCiliumEndpoint, trimPod } from '../cluster/trim.js';
import type { CiliumEndpointInfo, PodInfo } from '../cluster/view.js';

export type RemovalAction = 'delete' | 'evict';

export interface Preconditions {
  uid: string;
  resourceVersion?: string;
}

export interface CallOptions {
  /** Aborts the request (the pass was interrupted). */
  signal?: AbortSignal;
  /** Deadline of this request; the defaults below when absent. */
  timeoutMs?: number;
}

/**
 * removed: accepted (the pod terminates with its own grace period). gone: 404. changed: 409, the
 * uid or resourceVersion precondition failed. blocked: the Eviction API's 429 whose status names a
 * PodDisruptionBudget (cause type DisruptionBudget). Any other 429 throws RemovalThrottledError;
 * anything else (e.g. the eviction's 500 when several PDBs select the pod) throws the ApiStatusError.
 */
export type RemovalOutcome = 'removed' | 'gone' | 'changed' | 'blocked';

/** A 429 that is not a PodDisruptionBudget: the API server (API Priority and Fairness) asks us to slow down. */
export class RemovalThrottledError extends Error {
  constructor(
    /** From the Retry-After header (or status.details.retryAfterSeconds); undefined when neither was sent. */
    readonly retryAfterMs: number | undefined,
  ) {
    super(`the API server throttled the request (429)${retryAfterMs !== undefined ? `; retry after ${retryAfterMs / 1000}s` : ''}`);
    this.name = 'RemovalThrottledError';
  }
}

export interface ReaperApi {
  readPod(namespace: string, name: string, options?: CallOptions): Promise<PodInfo | undefined>;
  readCiliumEndpoint(namespace: string, name: string, options?: CallOptions): Promise<CiliumEndpointInfo | undefined>;
  remove(action: RemovalAction, namespace: string, name: string, preconditions: Preconditions, options?: CallOptions): Promise<RemovalOutcome>;
  createEvent(event: CoreV1Event, options?: CallOptions): Promise<void>;
  /** JSON merge patch of an existing Event. */
  patchEvent(namespace: string, name: string, patch: Record<string, unknown>, options?: CallOptions): Promise<void>;
}

/**
 * Deadline of each re-read GET. Two of them (pod, CEP) take at most 4 s, well inside the leader's
 * renew deadline (10 s); leadership is checked again after them, right before the removal.
 */
export const REREAD_TIMEOUT_MS = 2_000;
/** Deadline of a removal or Event write (the actuator shortens a removal's to the time left as leader). */
export const WRITE_TIMEOUT_MS = 5_000;

interface StatusBody {
  reason?: string;
  message?: string;
  details?: { retryAfterSeconds?: number; causes?: Array<{ reason?: string; type?: string; message?: string }> };
}

/** An API error's Status: raw-api's ApiStatusError keeps it as text, client-node's ApiException as text or object. */
function statusOf(err: unknown): StatusBody {
  const body: unknown = (err as { body?: unknown } | null)?.body;
  if (body && typeof body === 'object') return body as StatusBody;
  if (typeof body !== 'string') return {};
  try {
    return JSON.parse(body) as StatusBody;
  } catch {
    return {};
  }
}

/**
 * The eviction's PDB refusal: kube-apiserver (pkg/registry/core/pod/storage/eviction.go) answers 429
 * with a status cause of type "DisruptionBudget" (policy/v1 DisruptionBudgetCause), both when the
 * budget allows no disruption and when its status is not computed yet. In the JSON, a cause's type
 * is serialized as "reason".
 */
export function isDisruptionBudgetRefusal(err: unknown): boolean {
  if (httpStatus(err) !== 429) return false;
  const status = statusOf(err);
  return (status.details?.causes ?? []).some((c) => c.reason === 'DisruptionBudget' || c.type === 'DisruptionBudget');
}

function retryAfterMs(err: unknown): number | undefined {
  // ApiStatusError: the Retry-After header, else the Status's details (raw-api.ts); ApiException: its headers.
  const e = err as { retryAfterSeconds?: unknown; headers?: Record<string, string | undefined> } | null;
  if (typeof e?.retryAfterSeconds === 'number') return e.retryAfterSeconds * 1000;
  const headers = e?.headers ?? {};
  const header = headers['retry-after'] ?? headers['Retry-After'];
  const seconds = header !== undefined && /^\d+$/.test(header.trim()) ? Number(header) : statusOf(err).details?.retryAfterSeconds;
  return typeof seconds === 'number' && Number.isFinite(seconds) ? seconds * 1000 : undefined;
}

/** Options for one request: aborted by the caller's signal or at the deadline, whichever comes first. */
function requestOptions(options: CallOptions | undefined, defaultMs: number) {
  const ms = options?.timeoutMs ?? defaultMs;
  return { ms, call: { timeoutMs: ms, ...(options?.signal ? { signal: options.signal } : {}) } };
}

const podPath = (namespace: string, name: string) => `/api/v1/namespaces/${seg(namespace)}/pods/${seg(name)}`;

export function liveReaperApi(kc: KubeAccess): ReaperApi {
  return {
    async readPod(namespace, name, options) {
      const { ms, call } = requestOptions(options, REREAD_TIMEOUT_MS);
      try {
        return trimPod(await withDeadline(request(kc, { path: podPath(namespace, name), ...call }), ms, `pod ${namespace}/${name}`, options?.signal));
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },

    async readCiliumEndpoint(namespace, name, options) {
      const { ms, call } = requestOptions(options, REREAD_TIMEOUT_MS);
      try {
        const raw: unknown = await withDeadline(
          request(kc, { path: `/apis/cilium.io/v2/namespaces/${seg(namespace)}/ciliumendpoints/${seg(name)}`, ...call }),
          ms,
          `CiliumEndpoint ${namespace}/${name}`,
          options?.signal,
        );
        return trimCiliumEndpoint(raw);
      } catch (err) {
        // No such CEP. (A missing CEP CRD also answers 404, but then the reaper does not act at all.)
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },

    async remove(action, namespace, name, preconditions, options) {
      const { ms, call } = requestOptions(options, WRITE_TIMEOUT_MS);
      const what = `${action} of pod ${namespace}/${name}`;
      try {
        if (action === 'delete') {
          // No gracePeriodSeconds: the pod's own terminationGracePeriodSeconds applies.
          const body = { preconditions };
          await withDeadline(request(kc, { method: 'DELETE', path: podPath(namespace, name), body, ...call }), ms, what, options?.signal);
        } else {
          await withDeadline(
            request(kc, {
              method: 'POST',
              path: `${podPath(namespace, name)}/eviction`,
              body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { namespace, name }, deleteOptions: { preconditions } },
              ...call,
            }),
            ms,
            what,
            options?.signal,
          );
        }
        return 'removed';
      } catch (err) {
        switch (httpStatus(err)) {
          case 404:
            return 'gone';
          case 409:
            return 'changed';
          case 429:
            if (action === 'evict' && isDisruptionBudgetRefusal(err)) return 'blocked';
            throw new RemovalThrottledError(retryAfterMs(err));
          default:
            throw err;
        }
      }
    },

    async createEvent(event, options) {
      const { ms, call } = requestOptions(options, WRITE_TIMEOUT_MS);
      await withDeadline(
        request(kc, { method: 'POST', path: `/api/v1/namespaces/${seg(event.metadata.namespace ?? 'default')}/events`, body: event, ...call }),
        ms,
        'Event create',
        options?.signal,
      );
    },

    async patchEvent(namespace, name, patch, options) {
      const { ms, call } = requestOptions(options, WRITE_TIMEOUT_MS);
      await withDeadline(
        request(kc, {
          method: 'PATCH',
          path: `/api/v1/namespaces/${seg(namespace)}/events/${seg(name)}`,
          body: patch,
          contentType: 'application/merge-patch+json',
          ...call,
        }),
        ms,
        'Event patch',
        options?.signal,
      );
    },
  };
}

export function isAlreadyExists(err: unknown): boolean {
  return httpStatus(err) === 409;
}

export { isNotFound };
