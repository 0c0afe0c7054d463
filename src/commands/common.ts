// What every command shares: flag parsing helpers, configuration, and opening the cluster view.

import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { defaultConfig, loadConfigFile, parseConfig, type Config } from '../config.js';
import { liveReader, noReader, type ClusterReader } from '../cluster/lookup.js';
import type { FullClusterView } from '../cluster/memory.js';
import { loadSnapshot } from '../cluster/snapshot.js';
import type { Logger } from '../logger.js';

export const EXAMPLE_SNAPSHOT = fileURLToPath(new URL('../../examples/cluster-state.yaml', import.meta.url));

/** A mistake in the command line: printed with the usage text, exit code 2. */
export class UsageError extends Error {}

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export function parseLevel(text: string): (typeof LEVELS)[number] {
  const level = LEVELS.find((candidate) => candidate === text);
  if (!level) throw new UsageError(`--log-level must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(text)}`);
  return level;
}

export function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0-65535, got ${JSON.stringify(text)}`);
  return port;
}

export interface CommonFlags {
  config?: string;
  'node-label'?: string;
  'cluster-state'?: string;
  kubeconfig?: string;
}

/** parseArgs option specs for CommonFlags, shared by every command. */
export const COMMON_OPTIONS = {
  config: { type: 'string' },
  'node-label': { type: 'string' },
  'cluster-state': { type: 'string' },
  kubeconfig: { type: 'string' },
} as const;

export function loadConfig(flags: CommonFlags): Config {
  const base = flags.config ? loadConfigFile(flags.config) : defaultConfig;
  if (!flags['node-label']) return base;
  return parseConfig({ ...base, nodeLabel: flags['node-label'] }, '--node-label');
}

export const inCluster = (): boolean => Boolean(process.env.KUBERNETES_SERVICE_HOST);

export function kubeConfigFrom(flags: CommonFlags): KubeConfig | undefined {
  if (!(flags.kubeconfig || process.env.KUBECONFIG || inCluster())) return undefined;
  const kc = new KubeConfig();
  if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
  else kc.loadFromDefault();
  return kc;
}

export interface ViewSource {
  view: FullClusterView;
  reader: ClusterReader;
  /** The live cluster, when there is one. */
  kc?: KubeConfig;
  /** Resolves once every cache has listed (at once for a snapshot). */
  whenSynced(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The cluster view: a snapshot file when given, live informers when a cluster is configured,
 * otherwise the example snapshot shipped in examples/ (said in the log).
 */
export async function openView(
  flags: CommonFlags,
  config: Config,
  log: Logger,
  options: { withReaperCaches?: boolean } = {},
): Promise<ViewSource> {
  const snapshotFile = flags['cluster-state'];
  const kc = snapshotFile ? undefined : kubeConfigFrom(flags);
  if (!kc) {
    const file = snapshotFile ?? EXAMPLE_SNAPSHOT;
    const { view, counts, skipped } = loadSnapshot(file, config);
    if (!snapshotFile) {
      log.info({ file }, 'no cluster configured (no --kubeconfig, $KUBECONFIG or in-cluster credentials): using the example snapshot');
    }
    log.info({ file, counts, skipped }, 'cluster view: snapshot');
    return { view, reader: noReader, whenSynced: async () => {}, stop: async () => {} };
  }
  const { startLiveView } = await import('../cluster/informers.js');
  const live = await startLiveView(kc, config, log, options);
  log.info({ server: kc.getCurrentCluster()?.server }, 'cluster view: live informers');
  return { view: live.view, reader: liveReader(kc), kc, whenSynced: () => live.whenSynced(), stop: () => live.stop() };
}
