// A test's local HTTP(S) server on loopback: listen on any free port, and close it without
// waiting for kept-alive connections (the clients under test keep theirs open).

import https from 'node:https';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Listens on 127.0.0.1, a free port; resolves with the server's base URL (https for a TLS server). */
export async function listenOnLoopback(server: Server | https.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const scheme = server instanceof https.Server ? 'https' : 'http';
  return `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Closes the server now, open connections included. */
export async function closeNow(server: Server | https.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}
