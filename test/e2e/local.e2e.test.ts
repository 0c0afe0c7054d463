// `npm run local` exactly as the README tells a newcomer to run it: it comes up, prints where the
// DaemonSet controller put the agents, the README's kubectl denial is what kubectl prints, the
// audit log is linked at .local/audit.log and the README's grep of it shows the denial's
// annotations, the reaper holds its Lease, and `npm run local:down` stops every process it started
// (no etcd, kube-apiserver, scheduler, controller-manager, kwok, webhook or reaper left behind, no
// pid file).
// Bounded: the tools are built (or found in the cache) first, then `up` gets 3 minutes.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools, sleep } from '../harness/controlplane.js';
import { ROOT } from '../harness/guard.js';

const LOCAL = join(ROOT, '.local');
const PID_FILE = join(LOCAL, 'local.pid');
const KUBECONFIG = join(LOCAL, 'kubeconfig');
const KUBECTL = join(LOCAL, 'bin', 'kubectl');
const AUDIT_LINK = join(LOCAL, 'audit.log');
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');
const UP_TIMEOUT_MS = 3 * 60_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, killed (SIGKILL) after timeoutMs. */
function run(bin: string, args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const kubectl = (args: string[]) => run(KUBECTL, [`--kubeconfig=${KUBECONFIG}`, ...args]);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Processes whose command line mentions `path` (the local cluster's temp dir), from /proc. */
function processesUnder(path: string): Array<{ pid: number; cmd: string }> {
  const found: Array<{ pid: number; cmd: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      if (cmd.includes(path)) found.push({ pid: Number(entry), cmd });
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

function lstatExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A pid file naming a live process: someone's local cluster is up, and this test would clobber it. */
function runningLocalCluster(): number | undefined {
  if (!existsSync(PID_FILE)) return undefined;
  const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}

describe('npm run local (README)', () => {
  let up: ChildProcess | undefined;
  let upExited: Promise<number | null> = Promise.resolve(null);
  let stdout = '';
  let stderr = '';
  let clusterDir = '';
  let started: Array<{ pid: number; cmd: string }> = [];

  beforeAll(async () => {
    const running = runningLocalCluster();
    if (running !== undefined) {
      throw new Error(`a local cluster is already running (pid ${running}, ${PID_FILE}); stop it with \`npm run local:down\` before running this test`);
    }
    // The first run builds the control-plane binaries (minutes); not part of the bound on `up`.
    await ensureTools({ log: (line) => process.stderr.write(`[tools] ${line}\n`) });

    up = spawn(process.execPath, [TSX, 'test/harness/local.ts', 'up'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = up;
    upExited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));

    const deadline = Date.now() + UP_TIMEOUT_MS;
    let exitedEarly = false;
    void upExited.then(() => (exitedEarly = true));
    while (!stdout.includes('Stop with Ctrl-C') && Date.now() < deadline && !exitedEarly) await sleep(250);
    if (!stdout.includes('Stop with Ctrl-C')) {
      throw new Error(
        `npm run local did not print "Stop with Ctrl-C" ${exitedEarly ? 'before exiting' : `within ${UP_TIMEOUT_MS / 1000} s`}\n--- stdout:\n${stdout}\n--- stderr:\n${stderr.slice(-4000)}`,
      );
    }
    // "webhook: https://127.0.0.1:PORT   (log: /tmp/cmg-cp-XXXX/logs/cilium-migration-guard.log)"
    const logPath = /webhook:.*\(log: (\S+)\/logs\/[^/\s]+\.log\)/.exec(stdout);
    if (!logPath?.[1]) throw new Error(`no webhook log path in the instructions:\n${stdout}`);
    clusterDir = logPath[1];
  }, 40 * 60_000);

  afterAll(async () => {
    // Only what this test started: the `up` process (which stops its children), then any child
    // of it still alive, by pid.
    if (up && up.exitCode === null && up.signalCode === null) {
      up.kill('SIGTERM');
      await Promise.race([upExited, sleep(30_000)]);
      if (up.exitCode === null && up.signalCode === null) up.kill('SIGKILL');
    }
    if (clusterDir) for (const { pid } of processesUnder(clusterDir)) process.kill(pid, 'SIGKILL');
  }, 60_000);

  it('starts etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kwok, the webhook and the reaper', () => {
    started = processesUnder(clusterDir);
    const names = started.map(({ cmd }) => cmd);
    for (const name of ['etcd', 'kube-apiserver', 'kube-scheduler', 'kube-controller-manager', 'kwok']) {
      expect(
        names.some((cmd) => cmd.split(' ')[0]?.endsWith(`/${name}`)),
        `${name} running under ${clusterDir}`,
      ).toBe(true);
    }
    expect(names.filter((cmd) => cmd.includes('dist/cli.js serve'))).toHaveLength(1);
    expect(names.filter((cmd) => cmd.includes('dist/cli.js reaper'))).toHaveLength(1);
    expect(existsSync(PID_FILE)).toBe(true);
  });

  it('prints `kubectl get pods -A -o wide` with the agents split by node as the webhook arranged them', async () => {
    const table = stdout.slice(stdout.indexOf('$ kubectl get pods -A -o wide'));
    const rows = table
      .split('\n')
      .slice(2) // the command and the header
      .map((line) => line.trim().split(/\s+/))
      .filter((cols) => cols.length >= 8 && /^kwok-/.test(cols[7] ?? ''));
    const nodesOf = (prefix: string) =>
      rows
        .filter((cols) => cols[1]?.startsWith(prefix))
        .map((cols) => cols[7])
        .sort();
    expect(nodesOf('aws-node-')).toEqual(['kwok-legacy-1', 'kwok-legacy-2']);
    expect(nodesOf('cilium-')).toEqual(['kwok-cilium-pending', 'kwok-cilium-ready']);
    expect(nodesOf('node-exporter-')).toEqual(['kwok-cilium-pending', 'kwok-cilium-ready', 'kwok-legacy-1', 'kwok-legacy-2']);
    expect(rows.every((cols) => cols[3] === 'Running')).toBe(true);
    expect(stdout).toContain('Warning: cilium-migration-guard added nodeAffinity cni NotIn [cilium] to kube-system/aws-node');
    // What the table shows is what the cluster holds.
    const live = await kubectl(['get', 'pods', '-n', 'kube-system', '-l', 'k8s-app=aws-node', '-o', 'jsonpath={.items[*].spec.nodeName}']);
    expect(live.stdout.trim().split(' ').sort()).toEqual(['kwok-legacy-1', 'kwok-legacy-2']);
  });

  it("kubectl prints the README's denial for a pod on a node where Cilium is not ready", async () => {
    const r = await kubectl(['run', 'web', '--image=nginx', '--overrides={"spec":{"nodeName":"kwok-cilium-pending"}}']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Error from server (Forbidden): admission webhook "pods.cilium-migration-guard.io" denied the request');
    expect(r.stderr).toContain('pod default/web cannot be placed on node kwok-cilium-pending yet');
  });

  it("keeps the API server's audit log at .local/audit.log, and the README's command shows the denial's annotations", async () => {
    expect(stdout).toContain(`audit log:  .local/audit.log   (-> ${clusterDir}/audit.log`);
    expect(lstatSync(AUDIT_LINK).isSymbolicLink()).toBe(true);
    expect(realpathSync(AUDIT_LINK)).toBe(realpathSync(join(clusterDir, 'audit.log')));

    // The README's transcript: the command right after the denial, and the lines it shows.
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const transcript = /\$ (grep [^\n]*\.local\/audit\.log)\n((?:[^$\n][^\n]*\n)+)/.exec(readme);
    expect(transcript, 'the README shows a grep of .local/audit.log with its output').not.toBeNull();
    const [, command, shown] = transcript as RegExpExecArray;
    expect(stdout).toContain(command); // `npm run local` prints the same command
    let last: Run | undefined;
    for (let i = 0; i < 20; i++) {
      // The audit backend writes each event as the request completes; allow it a moment.
      last = await run('/bin/sh', ['-c', command as string]);
      if (
        last.code === 0 &&
        (shown as string)
          .split('\n')
          .filter(Boolean)
          .every((line) => last!.stdout.includes(line))
      )
        break;
      await sleep(250);
    }
    expect(last?.code, last?.stderr).toBe(0);
    for (const line of (shown as string).split('\n').filter(Boolean)) expect(last?.stdout).toContain(line);
  });

  it('the reaper holds its Lease', async () => {
    let last: Run | undefined;
    for (let i = 0; i < 60; i++) {
      last = await kubectl(['get', 'lease', '-n', 'cilium-migration-guard', 'cilium-migration-guard-reaper', '-o', 'jsonpath={.spec.holderIdentity}']);
      if (last.code === 0 && last.stdout.trim() !== '') break;
      await sleep(500);
    }
    expect(last?.code, last?.stderr).toBe(0);
    expect(last?.stdout.trim()).toBe('local-reaper');
  });

  it('npm run local:down stops every process it started and removes the pid file', async () => {
    const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
    expect(alive(pid)).toBe(true);
    expect(started.length).toBeGreaterThanOrEqual(7);

    const down = await run(process.execPath, [TSX, 'test/harness/local.ts', 'down'], 60_000);
    expect(down.code, down.stderr).toBe(0);
    const code = await Promise.race([upExited, sleep(30_000).then(() => 'timeout' as const)]);
    expect(code, `npm run local did not exit after down\n${stderr.slice(-3000)}`).toBe(0);

    expect(existsSync(PID_FILE)).toBe(false);
    expect(existsSync(AUDIT_LINK) || lstatExists(AUDIT_LINK)).toBe(false); // the link goes with the cluster
    expect(alive(pid)).toBe(false);
    expect(started.filter((p) => alive(p.pid)).map((p) => p.cmd)).toEqual([]);
    expect(processesUnder(clusterDir)).toEqual([]);
    expect(existsSync(clusterDir)).toBe(false); // its temp dir is removed too
  }, 90_000);
});
