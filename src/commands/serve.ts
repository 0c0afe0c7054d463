// `serve`: both admission webhooks over HTTPS, deciding from the cluster view.

import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CertController } from '../certs/controller.js';
import { parseSecretRef, type SecretRef } from '../certs/secret.js';
import { isSynced } from '../cluster/view.js';
import { createLogger } from '../logger.js';
import { Metrics } from '../metrics.js';
import { startServer, type ServerHandle } from '../server/serve.js';
import { servingCertSans } from '../server/tls.js';
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
  --cert-secret NS/NAME  In-cluster certificates: keep a CA and serving pair in this Secret (created
                         once, shared by all replicas, rotated before expiry) and write the pair
                         into --cert-dir; needs a cluster (default: off, use --cert-dir as is)
  --webhook-config NAME  With --cert-secret: keep the caBundle of the Mutating- and
                         ValidatingWebhookConfiguration NAME equal to the Secret's CA bundle
  --service NAME         The Service in front of the webhook, for the certificate's DNS names
                         (default cilium-migration-guard, in the --cert-secret namespace)
  --host ADDR            Listen address (default 127.0.0.1 locally, 0.0.0.0 in a cluster)
  --port N               Listen port (default 8443)
  --log-level LEVEL      trace, debug, info, warn, error (default info)
`;

interface ServeFlags extends CommonFlags {
  'cert-dir': string;
  'no-generate-cert'?: boolean;
  'cert-secret'?: string;
  'webhook-config'?: string;
  service: string;
  host?: string;
  port: string;
  'log-level': string;
}

export function parseServeFlags(args: string[]): ServeFlags {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...COMMON_OPTIONS,
      'cert-dir': { type: 'string', default: 'certs' },
      'no-generate-cert': { type: 'boolean' },
      'cert-secret': { type: 'string' },
      'webhook-config': { type: 'string' },
      service: { type: 'string', default: 'cilium-migration-guard' },
      host: { type: 'string' },
      port: { type: 'string', default: '8443' },
      'log-level': { type: 'string', default: 'info' },
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  if (values['webhook-config'] && !values['cert-secret']) throw new UsageError('--webhook-config needs --cert-secret (the CA it injects)');
  return values as ServeFlags;
}

function secretRef(text: string): SecretRef {
  try {
    return parseSecretRef(text);
  } catch (err) {
    throw new UsageError(`--cert-secret: ${(err as Error).message}`);
  }
}

export async function serveCommand(args: string[]): Promise<void> {
  const flags = parseServeFlags(args);
  const port = parsePort(flags.port);
  const config = loadConfig(flags);
  const log = createLogger({ level: parseLevel(flags['log-level']) });
  const metrics = new Metrics();
  const certSecret = flags['cert-secret'] ? secretRef(flags['cert-secret']) : undefined;
  const source = await openView(flags, config, log);

  let certs: CertController | undefined;
  let handle: ServerHandle;
  try {
    if (certSecret) {
      if (!source.kc) throw new UsageError('--cert-secret needs a cluster (--kubeconfig, $KUBECONFIG or in-cluster credentials)');
      certs = new CertController({
        kc: source.kc,
        secret: certSecret,
        ...(flags['webhook-config'] ? { webhookConfig: flags['webhook-config'] } : {}),
        certDir: flags['cert-dir'],
        sans: servingCertSans({ serviceName: flags.service, namespace: certSecret.namespace }),
        logger: log,
        registry: metrics.registry,
      });
      // The Secret and the pair on disk exist before the listener starts.
      await certs.bootstrap();
    }
    handle = await startServer({
      handlers: [
        { path: '/mutate/daemonsets', handler: daemonSetAffinityHandler(config) },
        { path: '/validate/pods', handler: podPlacementHandler(config, source.view, source.reader) },
      ],
      readiness: () => ({ ready: isSynced(source.view), detail: source.view.syncState() }),
      metrics,
      logger: log,
      certDir: flags['cert-dir'],
      ...(flags['no-generate-cert'] || certSecret || inCluster() ? {} : { generateCert: {} }),
      host: flags.host ?? (inCluster() ? '0.0.0.0' : '127.0.0.1'),
      port,
    });
  } catch (err) {
    certs?.stop();
    await source.stop();
    throw err;
  }
  if (certs) {
    const watcher = handle.certWatcher;
    certs.onPairWritten(() => watcher.check()); // reload at once rather than at the watcher's next event
    certs.start();
  }
  const caFile = `${flags['cert-dir']}/ca.crt`;
  log.info(
    { url: handle.url, nodeLabel: `${config.nodeLabel.key}=${config.nodeLabel.value}`, ...(existsSync(caFile) ? { ca: caFile } : {}) },
    'serving admission webhooks: POST /mutate/daemonsets, POST /validate/pods',
  );
  // Stop accepting and drain first, then the informers the handlers read from.
  onShutdownSignal(log, async () => {
    certs?.stop();
    await handle.close();
    await source.stop();
  });
}
