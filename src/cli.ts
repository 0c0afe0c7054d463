#!/usr/bin/env node
// The command line: `serve` runs both admission webhooks. The cluster view comes from live
// informers when a cluster is configured, from --cluster-state FILE when given, and otherwise
// from the example snapshot shipped in examples/ (the quick start: no cluster needed).

import { existsSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { ConfigError, defaultConfig, loadConfigFile, parseConfig, type Config } from './config.js';
import { liveReader, noReader, type ClusterReader } from './cluster/lookup.js';
import { loadSnapshot, SnapshotError } from './cluster/snapshot.js';
import { isSynced, type ClusterView } from './cluster/view.js';
import { createLogger, type Logger } from './logger.js';
import { Metrics } from './metrics.js';
import { startServer, type ServerHandle } from './server/serve.js';
import { daemonSetAffinityHandler } from './webhooks/daemonset-affinity.js';
import { podPlacementHandler } from './webhooks/pod-placement.js';

export const EXAMPLE_SNAPSHOT = fileURLToPath(new URL('../examples/cluster-state.yaml', import.meta.url));

const USAGE = `Usage: cilium-migration-guard <command> [flags]

Commands:
  serve     Serve the admission webhooks (POST /mutate/daemonsets, POST /validate/pods)
  help      Show this text

Flags for serve:
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

class UsageError extends Error {}

interface ServeFlags {
  config?: string;
  'node-label'?: string;
  'cluster-state'?: string;
  kubeconfig?: string;
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
      config: { type: 'string' },
      'node-label': { type: 'string' },
      'cluster-state': { type: 'string' },
      kubeconfig: { type: 'string' },
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

function loadConfig(flags: ServeFlags): Config {
  const base = flags.config ? loadConfigFile(flags.config) : defaultConfig;
  if (!flags['node-label']) return base;
  return parseConfig({ ...base, nodeLabel: flags['node-label'] }, '--node-label');
}

const inCluster = (): boolean => Boolean(process.env.KUBERNETES_SERVICE_HOST);

interface ViewSource {
  view: ClusterView;
  reader: ClusterReader;
  stop(): Promise<void>;
}

async function openView(flags: ServeFlags, config: Config, log: Logger): Promise<ViewSource> {
  const snapshotFile = flags['cluster-state'];
  const clusterConfigured = Boolean(flags.kubeconfig || process.env.KUBECONFIG || inCluster());
  if (snapshotFile || !clusterConfigured) {
    const file = snapshotFile ?? EXAMPLE_SNAPSHOT;
    const { view, counts, skipped } = loadSnapshot(file, config);
    if (!snapshotFile) {
      log.info({ file }, 'no cluster configured (no --kubeconfig, $KUBECONFIG or in-cluster credentials): serving from the example snapshot');
    }
    log.info({ file, counts, skipped }, 'cluster view: snapshot');
    return { view, reader: noReader, stop: async () => {} };
  }
  const kc = new KubeConfig();
  if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
  else kc.loadFromDefault();
  const { startLiveView } = await import('./cluster/informers.js');
  const live = await startLiveView(kc, config, log);
  log.info({ server: kc.getCurrentCluster()?.server }, 'cluster view: live informers');
  return { view: live.view, reader: liveReader(kc), stop: () => live.stop() };
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0-65535, got ${JSON.stringify(text)}`);
  return port;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
function parseLevel(text: string): (typeof LEVELS)[number] {
  const level = LEVELS.find((candidate) => candidate === text);
  if (!level) throw new UsageError(`--log-level must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(text)}`);
  return level;
}

async function serveCommand(args: string[]): Promise<void> {
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
  log.info(
    { url: handle.url, nodeLabel: `${config.nodeLabel.key}=${config.nodeLabel.value}`, ca: existsSync(`${flags['cert-dir']}/ca.crt`) ? `${flags['cert-dir']}/ca.crt` : undefined },
    'serving admission webhooks: POST /mutate/daemonsets, POST /validate/pods',
  );

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down: draining in-flight requests');
    // Stop accepting and drain first, then the informers the handlers read from.
    handle
      .close()
      .then(() => source.stop())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        await serveCommand(rest);
        return -1; // keeps running until a signal
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (err) {
    if (err instanceof UsageError || (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`error: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof ConfigError || err instanceof SnapshotError) {
      process.stderr.write(`error: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`error: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  }
}

// Run only as the entry point (bin links are symlinks, hence realpath), not when imported by tests.
if (process.argv[1] && realpathSync(fileURLToPath(import.meta.url)) === realpathSync(process.argv[1])) {
  main(process.argv.slice(2)).then((code) => {
    if (code >= 0) process.exit(code);
  });
}
