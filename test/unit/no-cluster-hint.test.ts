// With no cluster configured, `report` and `status` refuse to use the example snapshot and say what
// to pass: the kubectl command for a snapshot must list what that command reads (status also reads
// DaemonSets and Namespaces, as its --help says), or the user builds a snapshot that lacks them.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/main.js';

async function stderrOf(argv: string[]): Promise<{ code: number | 'running'; err: string }> {
  vi.stubEnv('KUBECONFIG', '');
  vi.stubEnv('KUBERNETES_SERVICE_HOST', '');
  let err = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  });
  try {
    return { code: await main(argv), err };
  } finally {
    spy.mockRestore();
  }
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('no cluster configured', () => {
  it('status: exit 2, and the snapshot command includes daemonsets and namespaces', async () => {
    const { code, err } = await stderrOf(['status']);
    expect(code).toBe(2);
    expect(err.split('\n')[0]).toContain('kubectl get nodes,ciliumnodes,ciliumendpoints,pods,daemonsets,namespaces -A -o yaml');
  });

  it('report: exit 2, and the snapshot command is what report reads', async () => {
    const { code, err } = await stderrOf(['report']);
    expect(code).toBe(2);
    expect(err.split('\n')[0]).toContain('kubectl get nodes,ciliumnodes,ciliumendpoints,pods -A -o yaml;');
  });
});

describe('a cluster that never answers', () => {
  it('status: exit 1, naming which caches did not sync, as report does', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'cmg-status-'));
    const file = join(dir, 'kubeconfig');
    await writeFile(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: c',
        'contexts: [{name: c, context: {cluster: k, user: u}}]',
        'clusters: [{name: k, cluster: {server: "http://127.0.0.1:1"}}]',
        'users: [{name: u, user: {token: t}}]',
      ].join('\n'),
    );
    try {
      const { code, err } = await stderrOf(['status', '--kubeconfig', file, '--timeout', '0.3', '--log-level', 'silent']);
      expect(code).toBe(1);
      expect(err).toContain("error: the cluster's caches did not sync within 0.3s");
      expect(err).toContain('"nodes":false');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
