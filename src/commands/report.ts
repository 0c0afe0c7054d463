// `report`: one-shot and read-only. Per migrated node, is Cilium ready (and why not), and the
// pods Cilium does not manage with the reaper's verdict and evidence: the same detect() the
// reaper acts on. Against a live cluster it lists once (informers until synced, then stops);
// against a snapshot file, or the example snapshot when no cluster is configured.

import { parseArgs } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
import { createLogger } from '../logger.js';
import type { FullClusterView } from '../cluster/memory.js';
import { isReaperSynced } from '../reaper/controller.js';
import { detect } from '../reaper/detect.js';
import { buildReport, formatReportTable, type Report } from '../reaper/report.js';
import { COMMON_OPTIONS, EXAMPLE_SNAPSHOT, loadConfig, openView, parseLevel, UsageError, type CommonFlags } from './common.js';

export const REPORT_USAGE = `Flags for report:
  --config FILE          YAML configuration (the reaper section decides the verdicts)
  --kubeconfig FILE      Read a live cluster (default: $KUBECONFIG, or in-cluster credentials)
  --cluster-state FILE   Read a snapshot (kubectl get nodes,ciliumnodes,ciliumendpoints,pods -A -o yaml)
  --node-label KEY=VAL   The label on migrated nodes (default cni=cilium); overrides the config file
  -o, --output FORMAT    table (default) or json
  --timeout SECONDS      Give up when the cluster's caches have not synced by then (default 60)
  --log-level LEVEL      Logs go to stderr (default warn)
`;

interface ReportFlags extends CommonFlags {
  output: string;
  timeout: string;
  'log-level': string;
}

function parseReportFlags(args: string[]): ReportFlags {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...COMMON_OPTIONS,
      output: { type: 'string', short: 'o', default: 'table' },
      timeout: { type: 'string', default: '60' },
      'log-level': { type: 'string', default: 'warn' },
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  if (values.output !== 'table' && values.output !== 'json') throw new UsageError(`-o must be table or json, got ${JSON.stringify(values.output)}`);
  const timeout = Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError(`--timeout must be a positive number of seconds, got ${JSON.stringify(values.timeout)}`);
  return values as ReportFlags;
}

function sourceOf(flags: ReportFlags, kc: KubeConfig | undefined): string {
  if (kc) return `cluster ${kc.getCurrentCluster()?.server ?? '(unknown server)'}`;
  return `snapshot ${flags['cluster-state'] ?? EXAMPLE_SNAPSHOT}`;
}

/** Builds the report; exported for tests. Logs go to stderr, so stdout is only the report. */
export async function runReport(args: string[]): Promise<{ report: Report; text: string }> {
  const flags = parseReportFlags(args);
  const config = loadConfig(flags);
  const log = createLogger({ level: parseLevel(flags['log-level']), destination: process.stderr });
  const source = await openView(flags, config, log, { withReaperCaches: true });
  try {
    await waitForCaches(source.view, Number(flags.timeout) * 1000);
    const report = buildReport(detect(source.view, config, new Date()), config, sourceOf(flags, source.kc));
    const text = flags.output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatReportTable(report);
    return { report, text };
  } finally {
    await source.stop();
  }
}

/** Bounded poll: a snapshot is synced at once; informers after their first list. */
async function waitForCaches(view: FullClusterView, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!isReaperSynced(view)) {
    if (Date.now() > deadline) {
      throw new Error(`the cluster's caches did not sync within ${timeoutMs / 1000}s: ${JSON.stringify({ ...view.syncState(), ...view.reaperSyncState() })}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function reportCommand(args: string[]): Promise<number> {
  const { text } = await runReport(args);
  process.stdout.write(text);
  return 0;
}
