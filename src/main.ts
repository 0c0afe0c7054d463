// The command line. Each command lives in src/commands/; this file only dispatches and turns
// errors into exit codes: 2 for a usage mistake, 1 for anything else, with one clear line.
// The executable entry point is cli.ts, which checks the Node version first.
// Each command's module is imported when that command runs (and all of them only to print the
// usage text): the reaper and `report` do not load the webhook's server stack (fastify and the
// rest: about 16 MB of RSS, docs/benchmarks.md "Scale").

import { ConfigError } from './config.js';
import { SnapshotError } from './cluster/snapshot.js';
import { LintInputError } from './lint/load.js';
import { LiveReadError } from './lint/live.js';
import { UsageError } from './commands/common.js';

export { EXAMPLE_SNAPSHOT } from './commands/common.js';

/** A command either finishes with an exit code, or keeps running until a signal ('running'). */
type Command = (args: string[]) => Promise<number | 'running'>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run: Command; usage: string }> }> = {
  serve: {
    summary: 'Serve the admission webhooks (POST /mutate/daemonsets, /validate/pods, /mutate/nodes, /validate/cilium-config)',
    load: async () => {
      const m = await import('./commands/serve.js');
      return { run: async (args) => (await m.serveCommand(args), 'running'), usage: m.SERVE_USAGE };
    },
  },
  reaper: {
    summary: 'Remove pods that started before Cilium and hold IPs it does not manage (leader-elected)',
    load: async () => {
      const m = await import('./commands/reaper.js');
      return { run: async (args) => (await m.reaperCommand(args), 'running'), usage: m.REAPER_USAGE };
    },
  },
  report: {
    summary: "Print, per migrated node, whether Cilium is ready and the pods the reaper would act on, and the nodes waiting on Cilium's startup taint",
    load: async () => {
      const m = await import('./commands/report.js');
      return { run: m.reportCommand, usage: m.REPORT_USAGE };
    },
  },
  lint: {
    summary: "Check Cilium's configuration for known migration misconfigurations (files with -f, or the live cluster)",
    load: async () => {
      const m = await import('./commands/lint.js');
      return { run: m.lintCommand, usage: m.LINT_USAGE };
    },
  },
  status: {
    summary: 'The migration at a glance: nodes per state, unmanaged pods, DaemonSets out of line, modes, webhook health (exit 3: needs attention)',
    load: async () => {
      const m = await import('./commands/status.js');
      return { run: m.statusCommand, usage: m.STATUS_USAGE };
    },
  },
  registration: {
    summary: 'Print the webhook registrations for a config (the DaemonSet entries match only what its rules can)',
    load: async () => {
      const m = await import('./commands/registration.js');
      return { run: m.registrationCommand, usage: m.REGISTRATION_USAGE };
    },
  },
};

async function usage(): Promise<string> {
  const lines = Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(12)} ${command.summary}`);
  const usages = await Promise.all(Object.values(COMMANDS).map(async (command) => (await command.load()).usage));
  return `Usage: cilium-migration-guard <command> [flags]\n\nCommands:\n${lines.join('\n')}\n  help         Show this text\n\n${usages.join('\n')}`;
}

export async function main(argv: string[]): Promise<number | 'running'> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      process.stdout.write(await usage());
      return 0;
    }
    const command = COMMANDS[name];
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(await usage());
      return 0;
    }
    return await (await command.load()).run(rest);
  } catch (err) {
    const parseError = err instanceof TypeError && String((err as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS');
    if (err instanceof UsageError || parseError) {
      process.stderr.write(`error: ${(err as Error).message}\n\n${await usage()}`);
      return 2;
    }
    const known = err instanceof ConfigError || err instanceof SnapshotError || err instanceof LintInputError || err instanceof LiveReadError;
    process.stderr.write(`error: ${known ? (err as Error).message : ((err as Error)?.message ?? String(err))}\n`);
    return 1;
  }
}
