// `report`: one-shot and read-only. Per migrated node, is Cilium ready (and why not), and the
// pods Cilium does not manage with the reaper's verdict and evidence: the same detect() the
// reaper acts on. Against a live cluster it lists once (informers until synced, then stops);
// against a snapshot file, or the example snapshot when no cluster is configured. Nodes carrying
// Cilium's startup taint are listed too, with how long and whether the taint is stuck.

import type { KubeAccess } from '../cluster/kube-config.js';
import { describeManagedDataplane, managedDataplaneIn } from '../cluster/managed-dataplane.js';
import { createLogger } from '../logger.js';
import { isReaperSynced, type FullClusterView } from '../cluster/view.js';
import { startupTaintStatuses } from '../cluster/startup-taint.js';
import { detect } from '../reaper/detect.js';
import { buildReport, formatReportTable, type Report } from '../reaper/report-format.js';
import { loadFiles } from '../lint/load.js';
import { DEFAULT_LINT_OPTIONS, formatLintSection, lint } from '../lint/run.js';
import { lintPodsOf } from '../lint/from-view.js';
import type { Finding, LintInput } from '../lint/types.js';
import { daemonSetReport, formatDaemonSetReport, readDaemonSets, type DaemonSetReport } from '../reconciler/report.js';
import {
  COMMON_FLAGS,
  envName,
  flagUsage,
  loadConfig,
  logLevelOf,
  openView,
  parseCommandFlags,
  UsageError,
  type CommonFlags,
  type FlagSpecs,
} from './common.js';

const REPORT_FLAGS = {
  config: { ...COMMON_FLAGS.config, help: ['YAML configuration (the reaper section decides the verdicts)'] },
  kubeconfig: { ...COMMON_FLAGS.kubeconfig, help: ['Read a live cluster (default: $KUBECONFIG, or in-cluster credentials)'] },
  'cluster-state': { ...COMMON_FLAGS['cluster-state'], help: ['Read a snapshot (kubectl get nodes,ciliumnodes,ciliumendpoints,pods -A -o yaml)'] },
  'node-label': COMMON_FLAGS['node-label'],
  output: { type: 'string', short: 'o', arg: 'FORMAT', default: 'table', help: ['table (default) or json'] },
  timeout: { type: 'string', arg: 'SECONDS', default: '60', help: ["Give up when the cluster's caches have not synced by then (default 60)"] },
  'log-level': { type: 'string', arg: 'LEVEL', default: 'warn', help: ['Logs go to stderr (default warn)'] },
} as const satisfies FlagSpecs;

export const REPORT_USAGE = flagUsage('report', REPORT_FLAGS);

interface ReportFlags extends CommonFlags {
  output: string;
  timeout: string;
  'log-level': string;
}

interface ParsedReport {
  flags: ReportFlags;
  timeoutMs: number;
  level: ReturnType<typeof logLevelOf>;
  nodeLabelSource: string;
}

function parseReportFlags(args: string[], env: NodeJS.ProcessEnv): ParsedReport {
  const parsed = parseCommandFlags(args, REPORT_FLAGS, env);
  const flags = parsed.values as unknown as ReportFlags;
  if (flags.output !== 'table' && flags.output !== 'json') {
    throw new UsageError(`${parsed.source.output === 'env' ? envName('output') : '-o'} must be table or json, got ${JSON.stringify(flags.output)}`);
  }
  const timeout = Number(flags.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) {
    throw new UsageError(`${parsed.label('timeout')} must be a positive number of seconds, got ${JSON.stringify(flags.timeout)}`);
  }
  return { flags, timeoutMs: timeout * 1000, level: logLevelOf(parsed), nodeLabelSource: parsed.label('node-label') };
}

function sourceOf(flags: ReportFlags, kc: KubeAccess | undefined): string {
  if (kc) return `cluster ${kc.server}`;
  return `snapshot ${flags['cluster-state'] ?? ''}`;
}

/** Builds the report; exported for tests. Logs go to stderr, so stdout is only the report. */
/** The report, plus what a cloud-run Cilium means for it (the migration does not apply there), DaemonSets out of line, and the lint findings. */
export type ReportWithDataplane = Report & { managedDataplane?: string; daemonSets?: DaemonSetReport; lint?: Finding[]; lintError?: string };

/** What the lint section reads before the caches sync: a LintInput, or the reason it could not be read. */
type LintRead = { input?: LintInput; fromCluster: boolean } | { error: string };

/**
 * Starts the lint section's read (never rejects). Against a cluster it reads everything but pods:
 * those come from the report's own pod cache once synced (lintSection), not a second list of
 * every pod (docs/benchmarks.md "Scale").
 */
async function readLint(flags: ReportFlags, kc: KubeAccess | undefined, config: ReturnType<typeof loadConfig>, timeoutMs: number): Promise<LintRead> {
  try {
    if (kc) {
      const { readLiveInput } = await import('../lint/live.js');
      return { input: await readLiveInput(kc, { ciliumNamespace: config.cilium.namespace, timeoutMs, withoutPods: true }), fromCluster: true };
    }
    if (flags['cluster-state']) return { input: loadFiles([flags['cluster-state']], undefined, config.cilium.namespace).input, fromCluster: false };
    return { fromCluster: false };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** The lint checks (docs/lint.md) over the same cluster or snapshot; a read failure is said, not fatal. */
function lintSection(read: LintRead, view: FullClusterView, config: ReturnType<typeof loadConfig>): Pick<ReportWithDataplane, 'lint' | 'lintError'> {
  if ('error' in read) return { lintError: read.error };
  if (!read.input) return {};
  const settings = { ...DEFAULT_LINT_OPTIONS, nodeLabel: config.nodeLabel };
  try {
    return { lint: lint(read.fromCluster ? { ...read.input, ...lintPodsOf(view.pods()) } : read.input, settings) };
  } catch (err) {
    return { lintError: (err as Error).message };
  }
}

export async function runReport(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ report: ReportWithDataplane; text: string }> {
  const { flags, timeoutMs, level, nodeLabelSource } = parseReportFlags(args, env);
  const config = loadConfig(flags, nodeLabelSource);
  const log = createLogger({ level, destination: process.stderr });
  // A report about the example snapshot, mistaken for one about the user's cluster, would mislead.
  const source = await openView(flags, config, log, { withReaperCaches: true, withoutUnscheduledPods: true, exampleIfNoCluster: false });
  // The lint section reads the rest of the cluster on its own (never rejects): started now, its
  // reads overlap the caches' instead of following them; its pods come from the caches.
  const linting = readLint(flags, source.kc, config, timeoutMs);
  try {
    await waitForCaches(source.view, timeoutMs);
    const now = new Date();
    const tainted = startupTaintStatuses(source.view.nodes(), source.view, config, now);
    const managed = managedDataplaneIn(source.view);
    const note = managed ? describeManagedDataplane(managed) : undefined;
    const daemonSets = daemonSetReport(await readDaemonSets(source.kc, flags['cluster-state']), source.view, config);
    const report: ReportWithDataplane = {
      ...buildReport(detect(source.view, config, now), config, sourceOf(flags, source.kc), tainted),
      ...(note ? { managedDataplane: note } : {}),
      daemonSets,
      ...lintSection(await linting, source.view, config),
    };
    // Sections print before the summary line, which stays last.
    const sections = [formatDaemonSetReport(daemonSets), ...(report.lint || report.lintError ? [formatLintSection(report.lint, report.lintError)] : [])];
    const text = flags.output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : `${note ? `NOTE: ${note}.\n\n` : ''}${formatReportTable(report, sections)}`;
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
      throw new Error(`the cluster's caches did not sync within ${timeoutMs / 1000}s: ${JSON.stringify(view.syncState())}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function reportCommand(args: string[]): Promise<number> {
  const { text } = await runReport(args);
  process.stdout.write(text);
  return 0;
}
