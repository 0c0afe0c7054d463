// The HTTP/2 fast path (AdmissionRoutes.serveStream) answers on the stream itself, without node's
// compatibility layer: what that layer did for every stream (an 'error' listener, among others)
// must still be done for each one the fast path takes. A hostile or unlucky client here is one
// that resets its stream at an awkward moment; the webhook must never crash (an uncaught 'error'
// on a stream ends the process, and with it every pod write the webhook guards).

import { constants, type ClientHttp2Session } from 'node:http2';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics.js';
import { MAX_BODY_BYTES } from '../../src/server/admission-route.js';
import { WEBHOOK_PATHS } from '../../src/webhooks/routes.js';
import { capturingLogger, h2Session, postJson } from '../support/https-client.js';
import { startExampleServer, type ExampleServer } from '../support/example-server.js';
import { bindingRequest, review } from '../support/reviews.js';

let example: ExampleServer;
let session: ClientHttp2Session;
const metrics = new Metrics({ defaultMetrics: false });
const { logger } = capturingLogger();

beforeAll(async () => {
  example = await startExampleServer({ logger, metrics });
  session = await h2Session(example.server.url, example.caPem);
});

afterAll(async () => {
  session?.close();
  await example?.close();
});

// An uncaught exception would end the webhook's process; here it is caught and asserted on.
let uncaught: Error[] = [];
const onUncaught = (err: Error): void => void uncaught.push(err);
beforeEach(() => {
  uncaught = [];
  process.on('uncaughtException', onUncaught);
});
afterEach(() => {
  process.off('uncaughtException', onUncaught);
});

/** Opens a stream with `headers` and resets it at once with `code`; resolves when it closed. */
function openAndReset(headers: Record<string, string>, code: number): Promise<void> {
  const stream = session.request(headers, { endStream: false });
  stream.on('error', () => {});
  stream.close(code);
  return new Promise((resolve) => stream.once('close', () => resolve()));
}

describe('a client that resets its stream', () => {
  it.each([
    ['CANCEL', constants.NGHTTP2_CANCEL],
    ['INTERNAL_ERROR', constants.NGHTTP2_INTERNAL_ERROR],
  ])('right after headers that declare a body over 7 MiB (%s): answered or dropped, never a crash, and the next request is answered', async (_name, code) => {
    for (const contentType of ['application/json', 'application/json; charset=UTF-8']) {
      await openAndReset({ ':method': 'POST', ':path': WEBHOOK_PATHS.pods, 'content-type': contentType, 'content-length': String(MAX_BODY_BYTES + 1) }, code);
    }
    // The server stream's 'error' (if any) is emitted on a later tick.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(uncaught.map(String)).toEqual([]);
    const next = await postJson(session, WEBHOOK_PATHS.pods, review(bindingRequest('default', 'web-7d4b9c-x2x1z', 'node-cilium-pending')));
    expect(next.status).toBe(200);
  });
});
