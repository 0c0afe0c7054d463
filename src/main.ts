// The command line. Each command lives in src/commands/; this file only dispatches and turns
// errors into exit codes: 2 for a usage mistake, 1 for anything else, with one clear line.
// The executable entry point is cli.ts, which checks the Node version first.

import { ConfigError } from './config.js';
import { SnapshotError } from './cluster/snapshot.js';
import { LintInputError } from './lint/load.js';
import { LiveReadError } from './lint/live.js';
import { UsageError } from './commands/common.js';
import { LINT_USAGE, lintCommand } from './commands/lint.js';
import { REAPER_USAGE, reaperCommand } from './commands/reaper.js';
import { REGISTRATION_USAGE, registrationCommand } from './commands/registration.js';
import { REPORT_USAGE, reportCommand } from './commands/report.js';
import { SERVE_USAGE, serveCommand } from './commands/serve.js';
import { STATUS_USAGE, statusCommand } from './commands/status.js';

export { EXAMPLE_SNAPSHOT } from './commands/common.js';

/** A command either finishes with an exit code, or keeps running until a signal ('running'). */
type Command = (args: string[]) => Promise<number | 'running'>;

const COMMANDS: Record<string, { summary: string; run: Command; usage: string }> = {
  serve: {
    summary: 'Serve the admission webhooks (POST /mutate/daemonsets, /validate/pods, /mutate/nodes, /validate/cilium-config)',
    run: async (args) => (await serveCommand(args), 'running'),
    usage: SERVE_USAGE,
  },
  reaper: {
    summary: 'Remove pods that started before Cilium and hold IPs it does not manage (leader-elected)',
    run: async (args) => (await reaperCommand(args), 'running'),
    usage: REAPER_USAGE,
  },
  report: {
    summary: "Print, per migrated node, whether Cilium is ready and the pods the reaper would act on, and the nodes waiting on Cilium's startup taint",
    run: reportCommand,
    usage: REPORT_USAGE,
  },
  lint: {
    summary: "Check Cilium's configuration for known migration misconfigurations (files with -f, or the live cluster)",
    run: lintCommand,
    usage: LINT_USAGE,
  },
  status: {
    summary: 'The migration at a glance: nodes per state, unmanaged pods, DaemonSets out of line, modes, webhook health (exit 3: needs attention)',
    run: statusCommand,
    usage: STATUS_USAGE,
  },
  registration: {
    summary: 'Print the webhook registrations for a config (the DaemonSet entries match only what its rules can)',
    run: registrationCommand,
    usage: REGISTRATION_USAGE,
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(12)} ${command.summary}`);
  return `Usage: cilium-migration-guard <command> [flags]\n\nCommands:\n${lines.join('\n')}\n  help         Show this text\n\n${Object.values(COMMANDS)
    .map((command) => command.usage)
    .join('\n')}`;
}

export async function main(argv: string[]): Promise<number | 'running'> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      process.stdout.write(usage());
      return 0;
    }
    const command = COMMANDS[name];
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(usage());
      return 0;
    }
    return await command.run(rest);
  } catch (err) {
    const parseError = err instanceof TypeError && String((err as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS');
    if (err instanceof UsageError || parseError) {
      process.stderr.write(`error: ${(err as Error).message}\n\n${usage()}`);
      return 2;
    }
    const known = err instanceof ConfigError || err instanceof SnapshotError || err instanceof LintInputError || err instanceof LiveReadError;
    process.stderr.write(`error: ${known ? (err as Error).message : ((err as Error)?.message ?? String(err))}\n`);
    return 1;
  }
}
