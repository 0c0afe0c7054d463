// The one contract every webhook adapts to: an admission request in, a decision out.
// Handlers never see HTTP; the server (server/app.ts) owns routes, envelopes and metrics.

import type { Decision } from './decision.js';
import type { AdmissionRequest } from './types.js';

export interface AdmissionHandler {
  /** Stable name used in metrics labels and logs, e.g. "daemonset-affinity". */
  readonly name: string;
  handle(request: AdmissionRequest): Decision | Promise<Decision>;
}
