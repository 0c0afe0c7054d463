// The real command line: `node dist/cli.js lint -f FILE…` as CI runs it — no cluster, the
// fixtures of test/fixtures/lint, the exit code and what stdout/stderr say.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDist, CLI, ROOT } from '../harness/guard.js';
import { cleanEnv } from '../support/clean-env.js';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'lint');

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, env: cleanEnv(), timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cmg-lint-'));
  await buildDist();
}, 120_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lint -f (the built CLI)', () => {
  it('prints the findings and exits 1 on an error finding', async () => {
    const r = await run(['lint', '-f', join(FIXTURES, 'native-routing-cidr', 'trigger.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('ERROR    native-routing-cidr');
    expect(r.stdout).toContain('10.245.7.0/24 (Node pool-b-1) lies outside ipv4-native-routing-cidr 10.244.0.0/16');
    expect(r.stdout).toContain('1 error, 0 warnings, 1 info');
    expect(r.stderr).toBe('');
  });

  it('exits 0 with warnings only; refuses two cilium-configs, naming the file', async () => {
    const r = await run(['lint', '-f', join(FIXTURES, 'hubble-cardinality', 'ok.yaml'), '-f', join(FIXTURES, 'eni-masquerade', 'pattern-trigger.yaml')]);
    // Two cilium-configs: refused, naming the second file.
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('pattern-trigger.yaml: document 0: a second cilium-config');
    const ok = await run(['lint', '-f', join(FIXTURES, 'eni-masquerade', 'pattern-trigger.yaml'), '--interface', 'eth0']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).not.toContain('WARNING  eni-masquerade');
    expect(ok.stdout).toContain('0 errors, 0 warnings');
    const warn = await run(['lint', '-f', join(FIXTURES, 'eni-masquerade', 'pattern-trigger.yaml')]);
    expect(warn.code).toBe(0);
    expect(warn.stdout).toContain('WARNING  eni-masquerade');
  });

  it('merges several files (-f repeated): cilium-config in one, the Nodes in another', async () => {
    const [config, nodes] = (await import('node:fs')).readFileSync(join(FIXTURES, 'native-routing-cidr', 'trigger.yaml'), 'utf8').split(/^---$/m);
    await writeFile(join(dir, 'config.yaml'), config!);
    await writeFile(join(dir, 'nodes.yaml'), nodes!);
    const only = await run(['lint', '-f', join(dir, 'config.yaml')]);
    expect(only.stdout).not.toContain('native-routing-cidr');
    const both = await run(['lint', '-f', join(dir, 'config.yaml'), '-f', join(dir, 'nodes.yaml')]);
    expect(both.code).toBe(1);
    expect(both.stdout).toContain('10.245.7.0/24 (Node pool-b-1)');
  });

  it('reads Helm values and answers JSON with -o json', async () => {
    const r = await run(['lint', '-o', 'json', '-f', join(FIXTURES, 'native-routing-cidr', 'values-trigger.yaml')]);
    expect(r.code).toBe(1);
    const body = JSON.parse(r.stdout) as { findings: { id: string; severity: string; subject: string }[] };
    expect(body.findings.find((f) => f.id === 'native-routing-cidr')).toMatchObject({ severity: 'error', subject: expect.stringContaining('Helm values') });
  });

  it('names the file of bad input (exit 1) and says usage mistakes (exit 2)', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cilium-config\n');
    const r = await run(['lint', '-f', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^error: ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid YAML`));
    const missing = await run(['lint', '-f', join(dir, 'missing.yaml')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('missing.yaml: cannot be read: ENOENT');
    const usage = await run(['lint', '-o', 'yaml', '-f', bad]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('-o must be table or json');
    // A cluster that does not answer: a clear error naming what was being read, exit 1.
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]\n' +
        'users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
    const down = await run(['lint', '--kubeconfig', kubeconfig, '--timeout', '5']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^error: reading \S+ .*from the API server failed: /);
    const nothing = await run(['lint']);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain('nothing to lint: give -f FILE');
  });
});
