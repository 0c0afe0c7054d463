// `reaper`: the controller that removes early pods holding IPs Cilium does not manage
// (docs/reaper.md). Its own command, not a flag of `serve`: see docs/reaper.md for why.

import { hostname } from 'node:os';
import { createLogger } from '../logger.js';
import { startReaperService } from '../reaper/service.js';
import {
  COMMON_FLAGS,
  defaultListenHost,
  flagUsage,
  kubeConfigFrom,
  loadConfig,
  logLevelOf,
  parseCommandFlags,
  parsePort,
  UsageError,
  type CommonFlags,
  type FlagSpecs,
} from './common.js';
import { onShutdownSignal, ShuttingDown } from './signals.js';

const { config, 'node-label': nodeLabel, kubeconfig } = COMMON_FLAGS;
const REAPER_FLAGS = {
  config: { ...config, help: ['YAML configuration (the reaper section: action, target, grace, rate limits)'] },
  kubeconfig: { ...kubeconfig, help: ['The cluster (default: $KUBECONFIG, or in-cluster credentials); required'] },
  'node-label': nodeLabel,
  'dry-run': { type: 'boolean', help: ['Observe only: log, count and emit Events, remove nothing'] },
  'lease-name': {
    type: 'string',
    arg: 'NAME',
    default: 'cilium-migration-guard-reaper',
    help: ['Lease for leader election (default cilium-migration-guard-reaper)'],
  },
  'lease-namespace': { type: 'string', arg: 'NS', help: ['Namespace of the Lease (default $POD_NAMESPACE, else cilium-migration-guard)'] },
  identity: { type: 'string', arg: 'ID', help: ["This replica's name in the Lease (default $POD_NAME, else the hostname)"] },
  'no-leader-elect': { type: 'boolean', help: ['Act without a Lease (one replica only)'] },
  'metrics-port': { type: 'string', arg: 'N', default: '9090', help: ['Port of GET /healthz, /readyz, /metrics (default 9090)'] },
  'metrics-host': {
    type: 'string',
    arg: 'ADDR',
    help: ['Its address (default 127.0.0.1 locally; in a cluster ::, IPv6 and IPv4,', 'or 0.0.0.0 where the pod has no IPv6)'],
  },
  'log-level': { type: 'string', arg: 'LEVEL', default: 'info', help: ['trace, debug, info, warn, error (default info)'] },
} as const satisfies FlagSpecs;

export const REAPER_USAGE = flagUsage('reaper', REAPER_FLAGS);

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

interface ParsedReaper {
  flags: ReaperFlags;
  port: number;
  level: ReturnType<typeof logLevelOf>;
  nodeLabelSource: string;
}

function parseReaper(args: string[], env: NodeJS.ProcessEnv): ParsedReaper {
  const parsed = parseCommandFlags(args, REAPER_FLAGS, env);
  const flags = parsed.values as unknown as ReaperFlags;
  return {
    flags,
    port: parsePort(flags['metrics-port'], parsed.label('metrics-port')),
    level: logLevelOf(parsed),
    nodeLabelSource: parsed.label('node-label'),
  };
}

/** The flags of `reaper`: the command line, then CMG_* variables, then defaults (validated). */
export function parseReaperFlags(args: string[], env: NodeJS.ProcessEnv = process.env): ReaperFlags {
  return parseReaper(args, env).flags;
}

export async function reaperCommand(args: string[]): Promise<void> {
  const { flags, port, level, nodeLabelSource } = parseReaper(args, process.env);
  const config = loadConfig(flags, nodeLabelSource);
  const log = createLogger({ level });
  const kc = kubeConfigFrom(flags);
  if (!kc) throw new UsageError('reaper acts on a live cluster: give --kubeconfig, set $KUBECONFIG, or run in a cluster (use `report` for a snapshot)');
  const identity = flags.identity || process.env.POD_NAME || hostname();
  // Installed before the informers start and the probe port opens: a signal then still stops them and exits 0.
  const shutdown = onShutdownSignal(log);
  try {
    const host = flags['metrics-host'] ?? defaultListenHost();
    await shutdown.step(
      startReaperService({
        kc,
        config,
        log,
        identity,
        dryRun: Boolean(flags['dry-run']) || config.reaper.dryRun,
        ...(flags['no-leader-elect']
          ? {}
          : { lease: { namespace: flags['lease-namespace'] || process.env.POD_NAMESPACE || 'cilium-migration-guard', name: flags['lease-name'] } }),
        // Only the default "::" falls back to IPv4: an address given explicitly is kept, so a mistake shows.
        probe: { host, port, ipv4Fallback: flags['metrics-host'] === undefined },
      }),
      (service) => () => service.stop(),
    );
  } catch (err) {
    if (err instanceof ShuttingDown) return; // the signal handler cleans up and exits 0
    await shutdown.abort();
    throw err;
  }
}
