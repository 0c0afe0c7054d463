// `reaper`: the controller that removes early pods holding IPs Cilium does not manage
// (docs/reaper.md). Its own command, not a flag of `serve`: see docs/reaper.md for why.

import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { createLogger } from '../logger.js';
import { startReaperService } from '../reaper/service.js';
import { COMMON_OPTIONS, inCluster, kubeConfigFrom, loadConfig, parseLevel, parsePort, UsageError, type CommonFlags } from './common.js';
import { onShutdownSignal } from './signals.js';

export const REAPER_USAGE = `Flags for reaper:
  --config FILE          YAML configuration (the reaper section: action, target, grace, rate limits)
  --kubeconfig FILE      The cluster (default: $KUBECONFIG, or in-cluster credentials); required
  --node-label KEY=VAL   The label on migrated nodes (default cni=cilium); overrides the config file
  --dry-run              Observe only: log, count and emit Events, remove nothing
  --lease-name NAME      Lease for leader election (default cilium-migration-guard-reaper)
  --lease-namespace NS   Namespace of the Lease (default $POD_NAMESPACE, else cilium-migration-guard)
  --identity ID          This replica's name in the Lease (default $POD_NAME, else the hostname)
  --no-leader-elect      Act without a Lease (one replica only)
  --metrics-port N       Port of GET /healthz, /readyz, /metrics (default 9090)
  --metrics-host ADDR    Its address (default 0.0.0.0 in a cluster, 127.0.0.1 locally)
  --log-level LEVEL      trace, debug, info, warn, error (default info)
`;

interface ReaperFlags extends CommonFlags {
  'dry-run'?: boolean;
  'lease-name': string;
  'lease-namespace'?: string;
  identity?: string;
  'no-leader-elect'?: boolean;
  'metrics-port': string;
  'metrics-host'?: string;
  'log-level': string;
}

export function parseReaperFlags(args: string[]): ReaperFlags {
  const { config, 'node-label': nodeLabel, kubeconfig } = COMMON_OPTIONS;
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config,
      'node-label': nodeLabel,
      kubeconfig,
      'dry-run': { type: 'boolean' },
      'lease-name': { type: 'string', default: 'cilium-migration-guard-reaper' },
      'lease-namespace': { type: 'string' },
      identity: { type: 'string' },
      'no-leader-elect': { type: 'boolean' },
      'metrics-port': { type: 'string', default: '9090' },
      'metrics-host': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  return values as ReaperFlags;
}

export async function reaperCommand(args: string[]): Promise<void> {
  const flags = parseReaperFlags(args);
  const port = parsePort(flags['metrics-port']);
  const config = loadConfig(flags);
  const log = createLogger({ level: parseLevel(flags['log-level']) });
  const kc = kubeConfigFrom(flags);
  if (!kc) throw new UsageError('reaper acts on a live cluster: give --kubeconfig, set $KUBECONFIG, or run in a cluster (use `report` for a snapshot)');
  const identity = flags.identity || process.env.POD_NAME || hostname();
  const service = await startReaperService({
    kc,
    config,
    log,
    identity,
    dryRun: Boolean(flags['dry-run']) || config.reaper.dryRun,
    ...(flags['no-leader-elect']
      ? {}
      : { lease: { namespace: flags['lease-namespace'] || process.env.POD_NAMESPACE || 'cilium-migration-guard', name: flags['lease-name'] } }),
    probe: { host: flags['metrics-host'] ?? (inCluster() ? '0.0.0.0' : '127.0.0.1'), port },
  });
  onShutdownSignal(log, () => service.stop());
}
