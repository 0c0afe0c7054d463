// The time budget of one admission request, from the outside in. Each layer gives up before the
// one around it, so what happens on a slow request is the documented behaviour (a 503, then the
// failurePolicy) rather than the API server's own client timeout.
//
// The pod webhook is on the path of every bind and every pod created with spec.nodeName, and it
// fails open: when it is unreachable, each placement waits for its timeout before the API server
// ignores it. So its timeout is short (2 s): an outage adds at most ~2 s to a bind (measured in
// test/e2e/blast-radius.e2e.test.ts). DaemonSet writes are rare and the webhook's answer matters
// there (fail closed), so those entries keep 5 s. One server serves both with one handler budget,
// which therefore fits the shorter one.

/** The API server waits this long for the DaemonSet entries (their timeoutSeconds). */
export const DAEMONSET_WEBHOOK_TIMEOUT_SECONDS = 5;
/** The API server waits this long for the pod webhook (its timeoutSeconds). */
export const POD_WEBHOOK_TIMEOUT_SECONDS = 2;
/** The server answers 503 when a handler has not decided by then: below the shortest timeout. */
export const HANDLER_TIMEOUT_MS = 1_500;
/** Each fallback API read; a binding may need two (node, then pod) within HANDLER_TIMEOUT_MS. */
export const LOOKUP_TIMEOUT_MS = 600;
/**
 * The node webhook's timeoutSeconds: the kubelet's registration waits on it, and its handler is a
 * pure function of the request (no lookups), so it needs far less than the others.
 */
export const NODE_WEBHOOK_TIMEOUT_SECONDS = 2;
