// A webhook's verdict before it is put on the wire, and the helpers that build one.
// Policy code returns a Decision; only toResponse() (review.ts) turns it into an AdmissionResponse.

import type { JsonPatchOp } from './types.js';

export interface Decision {
  allowed: boolean;
  /** Short machine-readable cause, used in logs, metrics and audit annotations. */
  reason: string;
  /** Text a person reads in kubectl when the request is denied. */
  message?: string;
  /** HTTP-like status code for a denial (403 by default). */
  code?: number;
  patch?: JsonPatchOp[];
  warnings?: string[];
  /** Unprefixed keys; the API server stores them as "<webhook name>/<key>". */
  audit?: Record<string, string>;
  /** The node the request is about, for the decision log line. */
  node?: string;
  /** The enforcement mode in force (src/modes/mode.ts); absent for webhooks without modes. */
  mode?: 'enforce' | 'warn' | 'audit';
  /** In warn or audit mode: what enforce would have done instead of admitting unchanged. */
  wouldBe?: 'denied' | 'patched';
}

export interface DecisionExtras {
  message?: string;
  warnings?: string[];
  audit?: Record<string, string>;
}

export function allowed(reason: string, extras: DecisionExtras = {}): Decision {
  return { allowed: true, reason, ...extras };
}

export function denied(reason: string, message: string, extras: Omit<DecisionExtras, 'message'> = {}): Decision {
  return { allowed: false, reason, message, code: 403, ...extras };
}

export function patched(reason: string, patch: JsonPatchOp[], extras: DecisionExtras = {}): Decision {
  return { allowed: true, reason, patch, ...extras };
}
