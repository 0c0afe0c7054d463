// `serve`: both admission webhooks over HTTPS, deciding from the cluster view.

import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isSynced } from '../cluster/view.js';
import { createLogger } from '../logger.js';
import { Metrics } from '../metrics.js';
import { startServer, type ServerHandle } from '../server/serve.js';
import { daemonSetAffinityHandler } from '../webhooks/daemonset-affinity.js';
import { podPlacementHandler } from '../webhooks/pod-placement.js';
import { COMMON_OPTIONS, inCluster, loadConfig, openView, parseLevel, parsePort, UsageError, type CommonFlags } from './common.js';
import { onShutdownSignal } from './signals.js';

export const SERVE_USAGE = `Flags for serve:
  --config FILE          YAML configuration (see README); defaults apply when omitted
  --node-label KEY=VAL   The label on migrated nodes (default cni=cilium); overrides the config file
  --cluster-state FILE   Decide from a snapshot (kubectl get nodes,ciliumnodes,pods -A -o yaml)
  --kubeconfig FILE      Watch a live cluster (default: $KUBECONFIG, or in-cluster credentials)
  --cert-dir DIR         Directory with tls.crt and tls.key (default: certs)
  --no-generate-cert     Fail instead of generating a local CA and serving cert when none is found
  --host ADDR            Listen address (default 127.0.0.1 locally, 0.0.0.0 in a cluster)
  --port N               Listen port (default 8443)
  --log-level LEVEL      trace, debug, info, warn, error (default info)
`;

interface ServeFlags extends CommonFlags {
  'cert-dir': string;
  'no-generate-cert'?: boolean;
  host?: string;
  port: string;
  'log-level': string;
}

function parseServeFlags(args: string[]): ServeFlags {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...COMMON_OPTIONS,
      'cert-dir': { type: 'string', default: 'certs' },
      'no-generate-cert': { type: 'boolean' },
      host: { type: 'string' },
      port: { type: 'string', default: '8443' },
      'log-level': { type: 'string', default: 'info' },
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  return values as ServeFlags;
}

export async function serveCommand(args: string[]): Promise<void> {
  const flags = parseServeFlags(args);
  const port = parsePort(flags.port);
  const config = loadConfig(flags);
  const log = createLogger({ level: parseLevel(flags['log-level']) });
  const metrics = new Metrics();
  const source = await openView(flags, config, log);

  let handle: ServerHandle;
  try {
    handle = await startServer({
      handlers: [
        { path: '/mutate/daemonsets', handler: daemonSetAffinityHandler(config) },
        { path: '/validate/pods', handler: podPlacementHandler(config, source.view, source.reader) },
      ],
      readiness: () => ({ ready: isSynced(source.view), detail: source.view.syncState() }),
      metrics,
      logger: log,
      certDir: flags['cert-dir'],
      ...(flags['no-generate-cert'] || inCluster() ? {} : { generateCert: {} }),
      host: flags.host ?? (inCluster() ? '0.0.0.0' : '127.0.0.1'),
      port,
    });
  } catch (err) {
    await source.stop();
    throw err;
  }
  const caFile = `${flags['cert-dir']}/ca.crt`;
  log.info(
    { url: handle.url, nodeLabel: `${config.nodeLabel.key}=${config.nodeLabel.value}`, ...(existsSync(caFile) ? { ca: caFile } : {}) },
    'serving admission webhooks: POST /mutate/daemonsets, POST /validate/pods',
  );
  // Stop accepting and drain first, then the informers the handlers read from.
  onShutdownSignal(log, async () => {
    await handle.close();
    await source.stop();
  });
}
