// The time budget of one admission request, from the outside in. Each layer gives up before the
// one around it, so what happens on a slow request is the documented behaviour (a 503, then the
// failurePolicy) rather than the API server's own client timeout.

/** The API server waits this long for an answer (the registrations' timeoutSeconds). */
export const WEBHOOK_TIMEOUT_SECONDS = 5;
/** The server answers 503 when a handler has not decided by then. */
export const HANDLER_TIMEOUT_MS = 4_000;
/** Each fallback API read; a binding may need two (node, then pod) within HANDLER_TIMEOUT_MS. */
export const LOOKUP_TIMEOUT_MS = 1_500;
/**
 * The node webhook's timeoutSeconds: the kubelet's registration waits on it, and its handler is a
 * pure function of the request (no lookups), so it needs far less than the others.
 */
export const NODE_WEBHOOK_TIMEOUT_SECONDS = 2;
