// The webhook server of the integration tests: the real server (TLS, HTTP/2, limits) with the
// DaemonSet and pod webhooks deciding from the embedded example cluster, on a free loopback port,
// with a locally generated serving pair. Extra handlers let a test add routes of its own.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ensureServingCert } from '../../src/certs/local.js';
import { loadSnapshot } from '../../src/cluster/snapshot.js';
import { isSynced, webhookSyncState } from '../../src/cluster/view.js';
import { defaultConfig } from '../../src/config.js';
import { EXAMPLE_SNAPSHOT } from '../../src/main.js';
import { Metrics } from '../../src/metrics.js';
import { startServer, type ServeOptions, type ServerHandle } from '../../src/server/start.js';
import { daemonSetAffinityHandler } from '../../src/webhooks/daemonset-affinity.js';
import { podPlacementHandler } from '../../src/webhooks/pod-placement.js';
import { WEBHOOK_PATHS } from '../../src/webhooks/routes.js';

export interface ExampleServer {
  server: ServerHandle;
  /** The CA that signed the serving pair (for clients). */
  caPem: string;
  /** Closes the server and removes its certificate directory. */
  close(): Promise<void>;
}

export async function startExampleServer(options: {
  logger: Logger;
  metrics?: Metrics;
  /** Routes added after the two webhooks. */
  handlers?: ServeOptions['handlers'];
}): Promise<ExampleServer> {
  const dir = await mkdtemp(join(tmpdir(), 'cmg-example-server-'));
  try {
    const caPem = (await ensureServingCert(dir)).caPem ?? '';
    const { view } = loadSnapshot(EXAMPLE_SNAPSHOT, defaultConfig);
    const server = await startServer({
      handlers: [
        { path: WEBHOOK_PATHS.daemonSets, handler: daemonSetAffinityHandler(defaultConfig, view) },
        { path: WEBHOOK_PATHS.pods, handler: podPlacementHandler(defaultConfig, view) },
        ...(options.handlers ?? []),
      ],
      readiness: () => ({ ready: isSynced(view), detail: webhookSyncState(view) }),
      metrics: options.metrics ?? new Metrics({ defaultMetrics: false }),
      logger: options.logger,
      certDir: dir,
      host: '127.0.0.1',
      port: 0,
    });
    return {
      server,
      caPem,
      close: async () => {
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
