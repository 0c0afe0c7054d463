// `lint`: named checks over Cilium's effective configuration (docs/lint.md). On files (-f, for CI
// and GitOps; no cluster needed) or, without -f, on the live cluster (--kubeconfig or $KUBECONFIG),
// listed once. Exit codes: 0 no error findings, 1 error findings (or input that cannot be read),
// 2 a usage mistake.

import { parseArgs } from 'node:util';
import { envName, kubeConfigFrom, UsageError } from './common.js';
import { parseCidr } from '../lint/cidr.js';
import { loadFiles } from '../lint/load.js';
import { DEFAULT_LINT_OPTIONS, exitCodeFor, formatFindings, lint } from '../lint/run.js';
import type { Finding, LintInput, LintOptions } from '../lint/types.js';

export const LINT_USAGE = `Flags for lint (exit code 0: no error findings, 1: error findings or unreadable input, 2: usage;
the single-valued flags can also come from the environment variable in brackets, a flag wins):
  -f, --filename FILE       Lint these files (repeat -f): cilium-config, CiliumNodeConfigs, the agent
                            DaemonSet, Nodes, CiliumNodes, Pods, netd, ip-masq-agent, or Helm values;
                            multi-document YAML and Lists. Without -f: the live cluster
  --kubeconfig FILE         Read a live cluster (default: $KUBECONFIG, or in-cluster credentials) [CMG_KUBECONFIG]
  -o, --output FORMAT       table (default) or json [CMG_OUTPUT]
  --node-label KEY=VAL      The label on migrated nodes (default cni=cilium) [CMG_NODE_LABEL]
  --cilium-namespace NS     Where cilium-config and the agent live (live default kube-system; with -f,
                            only the cilium-config in NS is read, any namespace when not given)
                            [CMG_CILIUM_NAMESPACE]
  --peered-cidr CIDR        A peered VPC range pods reach without masquerading (repeat; ENI check)
  --interface NAME          An interface name the nodes have (repeat; ENI check)
  --timeout SECONDS         Give up on the live cluster after this long (default 30) [CMG_TIMEOUT]
`;

/** Single-valued flags that may come from CMG_* (an empty variable counts as unset, as for the other commands). */
const FROM_ENV = ['kubeconfig', 'output', 'node-label', 'cilium-namespace', 'timeout'] as const;

interface LintArgs {
  files: string[];
  kubeconfig?: string;
  output: 'table' | 'json';
  settings: LintOptions;
  ciliumNamespace?: string;
  timeoutMs: number;
}

export function parseLintArgs(args: string[], env: NodeJS.ProcessEnv = process.env): LintArgs {
  const { values: given, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      filename: { type: 'string', short: 'f', multiple: true },
      kubeconfig: { type: 'string' },
      output: { type: 'string', short: 'o' },
      'node-label': { type: 'string' },
      'cilium-namespace': { type: 'string' },
      'peered-cidr': { type: 'string', multiple: true },
      interface: { type: 'string', multiple: true },
      timeout: { type: 'string' },
    },
  });
  const fromEnv: Partial<Record<(typeof FROM_ENV)[number], string>> = {};
  for (const name of FROM_ENV) {
    const text = env[envName(name)];
    if (given[name] === undefined && text !== undefined && text !== '') fromEnv[name] = text;
  }
  const values = { output: 'table', 'node-label': 'cni=cilium', timeout: '30', ...fromEnv, ...stripUndefined(given) };
  const label = (name: (typeof FROM_ENV)[number], flag = `--${name}`) => (fromEnv[name] !== undefined ? envName(name) : flag);
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])} (files go after -f)`);
  if (values.output !== 'table' && values.output !== 'json')
    throw new UsageError(`${label('output', '-o')} must be table or json, got ${JSON.stringify(values.output)}`);
  const nodeLabel = values['node-label'];
  const eq = nodeLabel.indexOf('=');
  if (eq <= 0 || eq === nodeLabel.length - 1) throw new UsageError(`${label('node-label')} must be KEY=VALUE, got ${JSON.stringify(nodeLabel)}`);
  const peered = values['peered-cidr'] ?? [];
  const bad = peered.find((text) => !parseCidr(text));
  if (bad !== undefined) throw new UsageError(`--peered-cidr must be a CIDR, got ${JSON.stringify(bad)}`);
  const timeout = Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0)
    throw new UsageError(`${label('timeout')} must be a positive number of seconds, got ${JSON.stringify(values.timeout)}`);
  return {
    files: values.filename ?? [],
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    output: values.output,
    settings: {
      ...DEFAULT_LINT_OPTIONS,
      nodeLabel: { key: nodeLabel.slice(0, eq), value: nodeLabel.slice(eq + 1) },
      peeredCIDRs: peered,
      interfaces: values.interface ?? [],
    },
    ...(values['cilium-namespace'] ? { ciliumNamespace: values['cilium-namespace'] } : {}),
    timeoutMs: timeout * 1000,
  };
}

function stripUndefined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export interface LintRun {
  findings: Finding[];
  source: string;
  text: string;
  exitCode: number;
}

export async function runLint(args: string[]): Promise<LintRun> {
  const parsed = parseLintArgs(args);
  let input: LintInput;
  let source: string;
  if (parsed.files.length > 0) {
    input = loadFiles(parsed.files, undefined, parsed.ciliumNamespace).input;
    source = parsed.files.join(', ');
  } else {
    const kc = kubeConfigFrom({ ...(parsed.kubeconfig ? { kubeconfig: parsed.kubeconfig } : {}) });
    if (!kc) throw new UsageError('nothing to lint: give -f FILE (repeatable), or a cluster with --kubeconfig (or $KUBECONFIG)');
    const { readLiveInput } = await import('../lint/live.js');
    input = await readLiveInput(kc, { ciliumNamespace: parsed.ciliumNamespace ?? 'kube-system', timeoutMs: parsed.timeoutMs });
    source = `cluster ${kc.server}`;
  }
  const findings = lint(input, parsed.settings);
  const text = parsed.output === 'json' ? `${JSON.stringify({ source, findings }, null, 2)}\n` : formatFindings(findings, source);
  return { findings, source, text, exitCode: exitCodeFor(findings) };
}

export async function lintCommand(args: string[]): Promise<number> {
  const { text, exitCode } = await runLint(args);
  process.stdout.write(text);
  return exitCode;
}
