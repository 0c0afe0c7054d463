// The API server's audit log (JSON lines, written by the harness's --audit-log-path with
// DEFAULT_AUDIT_POLICY) read back for assertions. The API server appends while tests read, so
// a last line without its newline is a write in progress: it is left for the next read.

import { readFileSync } from 'node:fs';
import { waitFor, type ControlPlane } from './controlplane.js';

/** The fields of an audit.k8s.io/v1 Event the tests read. */
export interface AuditEvent {
  verb: string;
  stage: string;
  requestURI: string;
  userAgent?: string;
  user?: { username?: string; groups?: string[] };
  impersonatedUser?: { username?: string; groups?: string[] };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number; message?: string; reason?: string };
  annotations?: Record<string, string>;
  requestObject?: any;
  responseObject?: any;
}

/** Every complete event in the audit log so far, oldest first (T: a looser type for tests that read more fields). */
export function auditEvents<T = AuditEvent>(cp: Pick<ControlPlane, 'auditLogPath'>): T[] {
  const text = readFileSync(cp.auditLogPath, 'utf8');
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return complete
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as T);
}

/** Waits until an event matching `predicate` is in the audit log, and returns it. */
export function findAudit<T = AuditEvent>(cp: Pick<ControlPlane, 'auditLogPath'>, predicate: (e: T) => unknown, timeoutMs = 15_000): Promise<T> {
  return waitFor('the audit event', async () => auditEvents<T>(cp).find(predicate), { timeoutMs });
}
