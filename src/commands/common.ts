// What every command shares: flag parsing helpers, configuration, and opening the cluster view.

import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { defaultConfig, loadConfigFile, parseConfig, type Config } from '../config.js';
import { liveReader } from '../cluster/live-reader.js';
import { loadKubeAccess, type KubeAccess } from '../cluster/kube-config.js';
import { noReader, type ClusterReader } from '../cluster/reader.js';
import type { FullClusterView } from '../cluster/view.js';
import { loadSnapshot } from '../cluster/snapshot.js';
import type { Logger } from '../logger.js';

export const EXAMPLE_SNAPSHOT = fileURLToPath(new URL('../../examples/cluster-state.yaml', import.meta.url));

/** A mistake in the command line (or in a CMG_* environment variable): printed with the usage text, exit code 2. */
export class UsageError extends Error {}

// ---------------------------------------------------------------------------------------------
// Flags, and the environment variables that stand in for them

/** One flag of a command: its parseArgs type plus what the usage text says about it. */
export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Strings only; a boolean is false unless given. */
  default?: string;
  /** The value's placeholder in the usage text, e.g. FILE. */
  arg?: string;
  /** The usage text, one string per line (wrapped by hand at about 100 columns). */
  help: readonly string[];
}
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** `--foo-bar` can also be given as `CMG_FOO_BAR`. */
export const envName = (flag: string): string => `CMG_${flag.toUpperCase().replace(/-/g, '_')}`;

/** Where a flag's value came from: the command line, its CMG_* variable, its default, or nowhere. */
export type FlagSource = 'flag' | 'env' | 'default' | 'unset';

export interface ParsedFlags {
  values: Record<string, string | boolean | undefined>;
  source: Record<string, FlagSource>;
  /** How to name the flag in an error about its value: `--port`, or `CMG_PORT` when the value came from there. */
  label(name: string): string;
}

const BOOLEAN_TEXT: Readonly<Record<string, boolean>> = { true: true, '1': true, false: false, '0': false };

/**
 * node:util parseArgs (strict, no positionals) plus, for every flag not on the command line, its
 * CMG_* environment variable, then its default: a flag wins over the variable, which wins over
 * the default. A variable set to the empty string counts as unset (Kubernetes renders an empty
 * `value:` that way). Booleans take true/1/false/0; anything else is a UsageError naming the variable.
 */
export function parseCommandFlags(args: string[], specs: FlagSpecs, env: NodeJS.ProcessEnv = process.env): ParsedFlags {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, spec] of Object.entries(specs)) options[name] = { type: spec.type, ...(spec.short ? { short: spec.short } : {}) };
  const parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  const given = parsed.values as Record<string, string | boolean | undefined>;

  const values: ParsedFlags['values'] = {};
  const source: ParsedFlags['source'] = {};
  for (const [name, spec] of Object.entries(specs)) {
    const variable = envName(name);
    const text = env[variable];
    if (given[name] !== undefined) {
      values[name] = given[name];
      source[name] = 'flag';
    } else if (text !== undefined && text !== '') {
      if (spec.type === 'boolean') {
        const value = BOOLEAN_TEXT[text];
        if (value === undefined) throw new UsageError(`${variable} must be true, 1, false or 0 (it stands for --${name}), got ${JSON.stringify(text)}`);
        values[name] = value;
      } else {
        values[name] = text;
      }
      source[name] = 'env';
    } else if (spec.default !== undefined) {
      values[name] = spec.default;
      source[name] = 'default';
    } else {
      source[name] = 'unset';
    }
  }
  return { values, source, label: (name) => (source[name] === 'env' ? envName(name) : `--${name}`) };
}

const USAGE_WIDTH = 100;

/** The usage text of a command's flags, each with its environment variable in brackets. */
export function flagUsage(command: string, specs: FlagSpecs): string {
  const lefts = Object.entries(specs).map(([name, spec]) => `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.arg ? ` ${spec.arg}` : ''}`);
  const column = Math.max(...lefts.map((left) => left.length)) + 2;
  const pad = ' '.repeat(2 + column);
  const lines = [`Flags for ${command} (or the environment variable in brackets, booleans true/false/1/0; a flag wins):`];
  Object.entries(specs).forEach(([name, spec], i) => {
    const tag = `[${envName(name)}]`;
    const help = [...spec.help];
    const last = help.length - 1;
    const rows = help.map((text, j) => `${j === 0 ? `  ${(lefts[i] ?? '').padEnd(column)}` : pad}${text}`);
    if ((rows[last] ?? '').length + 1 + tag.length <= USAGE_WIDTH) rows[last] = `${rows[last] ?? ''} ${tag}`;
    else rows.push(`${pad}${tag}`);
    lines.push(...rows);
  });
  return `${lines.join('\n')}\n`;
}

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export function parseLevel(text: string, label = '--log-level'): (typeof LEVELS)[number] {
  const level = LEVELS.find((candidate) => candidate === text);
  if (!level) throw new UsageError(`${label} must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(text)}`);
  return level;
}

/** 0 (any free port) suits a listener; a Service's port starts at 1 (the API server's IsValidPortNum). */
export function parsePort(text: string, label = '--port', min: 0 | 1 = 0): number {
  const port = Number(text);
  if (text.trim() === '' || !Number.isInteger(port) || port < min || port > 65535)
    throw new UsageError(`${label} must be ${min}-65535, got ${JSON.stringify(text)}`);
  return port;
}

export interface CommonFlags {
  config?: string;
  'node-label'?: string;
  'cluster-state'?: string;
  kubeconfig?: string;
}

/** The flags every command shares (report and serve take all four; reaper all but --cluster-state). */
export const COMMON_FLAGS = {
  config: { type: 'string', arg: 'FILE', help: ['YAML configuration (see README); defaults apply when omitted'] },
  'node-label': { type: 'string', arg: 'KEY=VAL', help: ['The label on migrated nodes (default cni=cilium); overrides the config file'] },
  'cluster-state': { type: 'string', arg: 'FILE', help: ['Decide from a snapshot (kubectl get nodes,ciliumnodes,pods -A -o yaml)'] },
  kubeconfig: { type: 'string', arg: 'FILE', help: ['Watch a live cluster (default: $KUBECONFIG, or in-cluster credentials)'] },
} as const satisfies FlagSpecs;

/** A command's log level, named by where it came from in an error. */
export function logLevelOf(parsed: ParsedFlags): (typeof LEVELS)[number] {
  return parseLevel(String(parsed.values['log-level']), parsed.label('log-level'));
}

/** `nodeLabelSource` names where --node-label came from in an error (`CMG_NODE_LABEL` from the environment). */
export function loadConfig(flags: CommonFlags, nodeLabelSource = '--node-label'): Config {
  const base = flags.config ? loadConfigFile(flags.config) : defaultConfig;
  if (!flags['node-label']) return base;
  return parseConfig({ ...base, nodeLabel: flags['node-label'] }, nodeLabelSource);
}

export const inCluster = (): boolean => Boolean(process.env.KUBERNETES_SERVICE_HOST);

/**
 * The listen address when none is given: loopback locally; in a cluster "::", every address of
 * both families (dual-stack on Linux), falling back to 0.0.0.0 where the pod has no IPv6
 * (the ipv4Fallback option of startServer and startProbeServer, server/listen.ts).
 */
export const defaultListenHost = (): string => (inCluster() ? '::' : '127.0.0.1');

/**
 * The live cluster: --kubeconfig, else $KUBECONFIG, else in-cluster credentials; undefined when
 * none is configured (cluster/kube-config.ts: how each is read, as client-go reads it).
 */
export function kubeConfigFrom(flags: CommonFlags, env: NodeJS.ProcessEnv = process.env): KubeAccess | undefined {
  return loadKubeAccess(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}, { env });
}

export interface ViewSource {
  view: FullClusterView;
  reader: ClusterReader;
  /** The live cluster, when there is one. */
  kc?: KubeAccess;
  /** Resolves once every cache has listed (at once for a snapshot). */
  whenSynced(): Promise<void>;
  /** Live caches whose watch is down right now, with since when (never any for a snapshot). */
  disconnected(): Record<string, string>;
  stop(): Promise<void>;
}

/**
 * The cluster view: a snapshot file when given, live informers when a cluster is configured,
 * otherwise the example snapshot shipped in examples/ (said in the log) — unless the command
 * must not pass off an example as the user's cluster (`exampleIfNoCluster: false`).
 */
export async function openView(
  flags: CommonFlags,
  config: Config,
  log: Logger,
  options: { withReaperCaches?: boolean; withoutUnscheduledPods?: boolean; exampleIfNoCluster?: boolean; snapshotKinds?: string } = {},
): Promise<ViewSource> {
  const snapshotFile = flags['cluster-state'];
  const kc = snapshotFile ? undefined : kubeConfigFrom(flags);
  if (!kc && !snapshotFile && options.exampleIfNoCluster === false) {
    throw new UsageError(
      'no cluster configured: pass --kubeconfig (or set $KUBECONFIG, or run in a cluster), or --cluster-state FILE ' +
        `(kubectl get ${options.snapshotKinds ?? 'nodes,ciliumnodes,ciliumendpoints,pods'} -A -o yaml; examples/migration-race.yaml reproduces the race)`,
    );
  }
  if (!kc) {
    const file = snapshotFile ?? EXAMPLE_SNAPSHOT;
    const { view, counts, skipped } = loadSnapshot(file, config);
    if (!snapshotFile) {
      log.info({ file }, 'no cluster configured (no --kubeconfig, $KUBECONFIG or in-cluster credentials): using the example snapshot');
    }
    log.info({ file, counts, skipped }, 'cluster view: snapshot');
    return { view, reader: noReader, whenSynced: async () => {}, disconnected: () => ({}), stop: async () => {} };
  }
  const { startLiveView } = await import('../cluster/informers.js');
  const { exampleIfNoCluster: _, snapshotKinds: __, ...liveOptions } = options;
  const live = await startLiveView(kc, config, log, liveOptions);
  log.info({ server: kc.server, credentials: kc.describe }, 'cluster view: live informers');
  return {
    view: live.view,
    reader: liveReader(kc),
    kc,
    whenSynced: () => live.whenSynced(),
    disconnected: () => live.disconnected(),
    stop: () => live.stop(),
  };
}
