// Kubernetes Events for people running `kubectl describe pod`: one per removal or finding, on the
// pod (in its namespace) and on its node (in "default", where cluster-scoped objects' events go).
// The Event name is derived from (object uid, reason, action), so a repeat is a patch of the same
// Event (count + 1), not a new object per resync. A failed Event is logged, never fatal: the pino
// line carries the same evidence.

import { createHash } from 'node:crypto';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from '../logger.js';
import { isAlreadyExists, type ReaperApi } from './api.js';

const REPORTING_CONTROLLER = 'cilium-migration-guard';
/** Events API limit on message length. */
const MAX_MESSAGE = 1024;

export interface EventSubject {
  kind: 'Pod' | 'Node';
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
}

export class EventRecorder {
  private readonly counts = new Map<string, number>();

  constructor(
    private readonly api: Pick<ReaperApi, 'createEvent' | 'patchEvent'>,
    private readonly instance: string,
    private readonly now: () => Date,
    private readonly log: Logger,
  ) {}

  async record(subject: EventSubject, details: EventDetails): Promise<void> {
    const namespace = subject.kind === 'Node' ? 'default' : (subject.namespace ?? 'default');
    const digest = createHash('sha256').update(`${subject.uid ?? subject.name}|${details.reason}|${details.action}`).digest('hex').slice(0, 16);
    const name = `${subject.name}.${digest}`;
    const count = (this.counts.get(name) ?? 0) + 1;
    this.counts.set(name, count);
    const at = this.now();
    const message = details.message.length > MAX_MESSAGE ? `${details.message.slice(0, MAX_MESSAGE - 3)}...` : details.message;
    try {
      if (count === 1) {
        try {
          await this.api.createEvent(this.build(name, namespace, subject, details, message, at));
          return;
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
          // Written by a previous leader or an earlier run of this one: fall through to a patch.
        }
      }
      await this.api.patchEvent(namespace, name, { count: Math.max(count, 2), lastTimestamp: at.toISOString(), message });
    } catch (err) {
      this.log.warn({ err, event: { namespace, name, reason: details.reason }, subject }, 'could not record a Kubernetes Event');
    }
  }

  private build(name: string, namespace: string, subject: EventSubject, details: EventDetails, message: string, at: Date): CoreV1Event {
    return {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: 'v1',
        kind: subject.kind,
        name: subject.name,
        ...(subject.kind === 'Pod' && subject.namespace ? { namespace: subject.namespace } : {}),
        ...(subject.uid ? { uid: subject.uid } : {}),
      },
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
