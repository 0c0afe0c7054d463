// Kubernetes Events for people running `kubectl describe pod`: one per removal or finding, on the
// pod (in its namespace) and on its node (in "default", where cluster-scoped objects' events go).
// The Event name is derived from (object uid, reason, action, related pod), so a repeat is a patch
// of the same Event (count + 1), not a new object per resync; a node Event names its pod in the key
// (and in `related`), so every removal on a node gets its own node Event with its own message.
//   - create 409 (an earlier leader or run wrote it): patch it instead;
//   - patch 404 (kube-apiserver deleted it after its TTL, --event-ttl, 1 h by default): create it again;
//   - the counts held in memory are bounded: at most MAX_TRACKED names, none older than the TTL.
// A failed Event is logged, never fatal: the pino line carries the same evidence.

import { createHash } from 'node:crypto';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from '../logger.js';
import { isAlreadyExists, isNotFound, type CallOptions, type ReaperApi } from './api.js';

const REPORTING_CONTROLLER = 'cilium-migration-guard';
/** Events API limit on message length. */
const MAX_MESSAGE = 1024;
/** Names whose count is remembered; beyond it the least recently written are forgotten (their next write creates or patches). */
export const MAX_TRACKED = 4_096;
/** kube-apiserver's default --event-ttl: a count older than this belongs to an Event that is likely gone. */
export const EVENT_TTL_MS = 3_600_000;

export interface EventSubject {
  /** DaemonSet: the reconciler's Events (src/reconciler), in the DaemonSet's namespace. */
  kind: 'Pod' | 'Node' | 'DaemonSet';
  name: string;
  namespace?: string;
  uid?: string;
}

export interface EventDetails {
  type: 'Normal' | 'Warning';
  reason: string;
  /** What was done: Delete, Evict, DryRun, Report, Skip. */
  action: string;
  message: string;
  /** The pod a node Event is about: part of the Event's identity, and written as `related`. */
  related?: { kind: 'Pod'; namespace: string; name: string; uid?: string };
}

export class EventRecorder {
  /** Event name → count written and when; in least-recently-written order (Map insertion order). */
  private readonly counts = new Map<string, { count: number; at: number }>();

  constructor(
    private readonly api: Pick<ReaperApi, 'createEvent' | 'patchEvent'>,
    private readonly instance: string,
    private readonly now: () => Date,
    private readonly log: Logger,
  ) {}

  async record(subject: EventSubject, details: EventDetails, options?: CallOptions): Promise<void> {
    const namespace = subject.kind === 'Node' ? 'default' : (subject.namespace ?? 'default');
    const related = details.related ? `|${details.related.uid ?? `${details.related.namespace}/${details.related.name}`}` : '';
    const digest = createHash('sha256')
      .update(`${subject.uid ?? subject.name}|${details.reason}|${details.action}${related}`)
      .digest('hex')
      .slice(0, 16);
    const name = `${subject.name}.${digest}`;
    const at = this.now();
    this.forgetOld(at.getTime());
    const previous = this.counts.get(name);
    const count = (previous?.count ?? 0) + 1;
    this.remember(name, count, at.getTime());
    const message = details.message.length > MAX_MESSAGE ? `${details.message.slice(0, MAX_MESSAGE - 3)}...` : details.message;
    const create = async (): Promise<boolean> => {
      try {
        await this.api.createEvent(this.build(name, namespace, subject, details, message, at), options);
        this.remember(name, 1, at.getTime());
        return true;
      } catch (err) {
        if (isAlreadyExists(err)) return false; // written by a previous leader or an earlier run of this one: patch it
        throw err;
      }
    };
    try {
      if (count === 1 && (await create())) return;
      try {
        await this.api.patchEvent(namespace, name, { count: Math.max(count, 2), lastTimestamp: at.toISOString(), message }, options);
        this.remember(name, Math.max(count, 2), at.getTime());
      } catch (err) {
        // Deleted by kube-apiserver after its TTL: a new Event (count 1), not a patch that 404s forever.
        if (!isNotFound(err)) throw err;
        if (!(await create())) await this.api.patchEvent(namespace, name, { count: 2, lastTimestamp: at.toISOString(), message }, options);
      }
    } catch (err) {
      this.counts.delete(name); // unknown state: the next write starts with a create
      this.log.warn({ err, event: { namespace, name, reason: details.reason }, subject }, 'could not record a Kubernetes Event');
    }
  }

  /** Names whose count is held (for tests and metrics). */
  get tracked(): number {
    return this.counts.size;
  }

  private remember(name: string, count: number, at: number): void {
    this.counts.delete(name); // re-insert: most recently written last
    this.counts.set(name, { count, at });
    while (this.counts.size > MAX_TRACKED) {
      const oldest = this.counts.keys().next();
      if (oldest.done) break;
      this.counts.delete(oldest.value);
    }
  }

  /** Drops counts older than the Event TTL (oldest first, so this stops at the first fresh one). */
  private forgetOld(now: number): void {
    for (const [name, entry] of this.counts) {
      if (now - entry.at <= EVENT_TTL_MS) break;
      this.counts.delete(name);
    }
  }

  private build(name: string, namespace: string, subject: EventSubject, details: EventDetails, message: string, at: Date): CoreV1Event {
    return {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: subject.kind === 'DaemonSet' ? 'apps/v1' : 'v1',
        kind: subject.kind,
        name: subject.name,
        ...(subject.kind !== 'Node' && subject.namespace ? { namespace: subject.namespace } : {}),
        ...(subject.uid ? { uid: subject.uid } : {}),
      },
      ...(details.related
        ? {
            related: {
              apiVersion: 'v1',
              kind: details.related.kind,
              namespace: details.related.namespace,
              name: details.related.name,
              ...(details.related.uid ? { uid: details.related.uid } : {}),
            },
          }
        : {}),
      type: details.type,
      reason: details.reason,
      action: details.action,
      message,
      count: 1,
      firstTimestamp: at,
      lastTimestamp: at,
      source: { component: REPORTING_CONTROLLER },
      reportingComponent: REPORTING_CONTROLLER,
      reportingInstance: this.instance.slice(0, 128),
    };
  }
}
