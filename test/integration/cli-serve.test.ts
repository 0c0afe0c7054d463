// The real command line: `node dist/cli.js serve` (and `reaper`) as separate processes, the way an
// operator or the README runs them. No cluster here: the example snapshot, or a kubeconfig whose
// API server port is closed (informers that never sync). Every wait is bounded and every child is
// stopped in finally/afterAll.

import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts, sleep, startChild, stopChild, waitFor, type Child } from '../harness/controlplane.js';
import { buildDist, CLI, ROOT } from '../harness/guard.js';
import { h2Session, postJson } from '../support/https-client.js';
import { cleanEnv } from '../support/clean-env.js';

type LogLine = Record<string, unknown> & { msg?: string };

const EXAMPLE_STATE = join(ROOT, 'examples', 'cluster-state.yaml');

let dir = '';
let certDir = ''; // filled by the quick-start case; later cases reuse the pair
const children: Child[] = [];

let spawned = 0;
function cli(name: string, args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Child {
  spawned += 1;
  const child = startChild(`${name}-${spawned}`, process.execPath, [CLI, ...args], dir, env);
  children.push(child);
  return child;
}

function logOf(child: Child): LogLine[] {
  if (!existsSync(child.logPath)) return [];
  return readFileSync(child.logPath, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as LogLine];
      } catch {
        return [];
      }
    });
}

const rawLog = (child: Child): string => (existsSync(child.logPath) ? readFileSync(child.logPath, 'utf8') : '');

function waitForLog(child: Child, what: string, match: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
  return waitFor(what, async () => logOf(child).find(match), { timeoutMs, intervalMs: 100, children: [child] });
}

/** SIGTERM, then the exit code; SIGKILL and fail when it does not exit within boundMs. */
async function terminate(child: Child, boundMs = 15_000): Promise<number | null> {
  const started = Date.now();
  child.proc.kill('SIGTERM');
  const timedOut = await Promise.race([child.exited.then(() => false), sleep(boundMs).then(() => true)]);
  if (timedOut) {
    child.proc.kill('SIGKILL');
    throw new Error(`${child.name} did not exit within ${boundMs} ms of SIGTERM\n${rawLog(child).slice(-3000)}`);
  }
  expect(Date.now() - started).toBeLessThan(boundMs);
  return child.exitCode ?? null;
}

function get(url: string, ca?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(url, { timeout: 3_000, ...(ca ? { ca } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A kubeconfig pointing at 127.0.0.1:<a port nothing listens on>: informers that never sync. */
async function unreachableKubeconfig(): Promise<string> {
  const [closed] = (await freePorts(1)) as [number];
  const file = join(dir, `kubeconfig-closed-${closed}`);
  await writeFile(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{name: gone, cluster: {server: 'https://127.0.0.1:${closed}', insecure-skip-tls-verify: true}}]`,
      'users: [{name: u, user: {token: t}}]',
      'contexts: [{name: gone, context: {cluster: gone, user: u}}]',
      'current-context: gone',
      '',
    ].join('\n'),
  );
  return file;
}

/** Whether this machine can listen on "::" at all (else the IPv4 fallback is what gets tested). */
function ipv6Listens(): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(0, '::', () => server.close(() => resolve(true)));
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cmg-cli-serve-'));
  await mkdir(join(dir, 'logs'), { recursive: true });
  certDir = join(dir, 'certs');
  await buildDist();
}, 180_000);

afterAll(async () => {
  for (const child of children) await stopChild(child, 5_000);
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('node dist/cli.js serve', () => {
  it("quick start: no cluster → the example snapshot, a generated CA, and the README's denial over HTTP/2", async () => {
    const [port] = (await freePorts(1)) as [number];
    const child = cli('quickstart', ['serve', '--cert-dir', certDir, '--port', String(port)]);
    try {
      await waitForLog(child, 'the serving log line', (l) => String(l.msg).startsWith('serving admission webhooks'));
      const log = logOf(child);
      expect(log.some((l) => String(l.msg).includes('using the example snapshot'))).toBe(true);
      for (const file of ['ca.crt', 'tls.crt', 'tls.key']) expect(existsSync(join(certDir, file)), file).toBe(true);

      const ca = readFileSync(join(certDir, 'ca.crt'), 'utf8');
      const session = await h2Session(`https://127.0.0.1:${port}`, ca);
      try {
        const res = await postJson(session, '/validate/pods', {
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          request: {
            uid: '1234-abcd',
            operation: 'CREATE',
            kind: { group: '', version: 'v1', kind: 'Binding' },
            resource: { group: '', version: 'v1', resource: 'pods' },
            subResource: 'binding',
            namespace: 'default',
            name: 'web-7d4b9c-x2x1z',
            object: {
              apiVersion: 'v1',
              kind: 'Binding',
              metadata: { name: 'web-7d4b9c-x2x1z', namespace: 'default' },
              target: { apiVersion: 'v1', kind: 'Node', name: 'node-cilium-pending' },
            },
          },
        });
        expect(res.status).toBe(200);
        const { response } = JSON.parse(res.body) as { response: { uid: string; allowed: boolean; status: { code: number; message: string } } };
        expect(response.uid).toBe('1234-abcd');
        expect(response.allowed).toBe(false);
        expect(response.status.code).toBe(403);
        expect(response.status.message).toContain('pod default/web-7d4b9c-x2x1z cannot be placed on node node-cilium-pending yet');
        expect(response.status.message).toContain('no CiliumNode "node-cilium-pending" exists yet; Cilium agent pod kube-system/cilium-q9z4m is not Ready');
        expect(response.status.message).toContain('duplicate pod IPs');
      } finally {
        session.close();
      }

      // A running serve ends on SIGTERM with exit 0.
      expect(await terminate(child)).toBe(0);
      expect(logOf(child).map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'server closed']));
    } finally {
      await stopChild(child, 5_000);
    }
  });

  it('CMG_PORT (no --port) sets the port', async () => {
    const [port] = (await freePorts(1)) as [number];
    const child = cli('env-port', ['serve', '--cert-dir', certDir], cleanEnv({ CMG_PORT: String(port) }));
    try {
      const serving = await waitForLog(child, 'the serving log line', (l) => String(l.msg).startsWith('serving admission webhooks'));
      expect(serving.url).toBe(`https://127.0.0.1:${port}`);
      const ca = readFileSync(join(certDir, 'ca.crt'), 'utf8');
      expect((await get(`https://127.0.0.1:${port}/healthz`, ca)).status).toBe(200);
      expect(await terminate(child)).toBe(0);
    } finally {
      await stopChild(child, 5_000);
    }
  });

  it('a flag wins over its variable: --port over CMG_PORT; CMG_LOG_LEVEL=warn keeps the info lines out', async () => {
    const [port, other] = (await freePorts(2)) as [number, number];
    const child = cli('env-flag', ['serve', '--cert-dir', certDir, '--port', String(port)], cleanEnv({ CMG_PORT: String(other), CMG_LOG_LEVEL: 'warn' }));
    try {
      const ca = readFileSync(join(certDir, 'ca.crt'), 'utf8');
      await waitFor('/healthz on the --port', async () => ((await get(`https://127.0.0.1:${port}/healthz`, ca)).status === 200 ? true : undefined), {
        timeoutMs: 20_000,
        intervalMs: 100,
        children: [child],
      });
      await expect(get(`https://127.0.0.1:${other}/healthz`, ca)).rejects.toThrow(/ECONNREFUSED/);
      expect(await terminate(child)).toBe(0);
      expect(logOf(child).filter((l) => l.level === 'info')).toEqual([]);
    } finally {
      await stopChild(child, 5_000);
    }
  });

  it('a bad CMG_* value exits 2 naming the variable, before listening', async () => {
    const child = cli('env-bad', ['serve', '--cert-dir', certDir], cleanEnv({ CMG_NO_GENERATE_CERT: 'yes' }));
    try {
      const code = await Promise.race([child.exited, sleep(15_000).then(() => 'timeout' as const)]);
      expect(code).toBe(2);
      expect(rawLog(child)).toContain('CMG_NO_GENERATE_CERT must be true, 1, false or 0');
    } finally {
      await stopChild(child, 5_000);
    }
  });

  it('/readyz follows the informers: 503 naming the unsynced caches while the API server is unreachable; SIGTERM then exits 0', async () => {
    const kubeconfig = await unreachableKubeconfig();
    const [port] = (await freePorts(1)) as [number];
    const child = cli('unsynced', ['serve', '--kubeconfig', kubeconfig, '--cert-dir', join(dir, 'certs-unsynced'), '--port', String(port)]);
    try {
      const caFile = join(dir, 'certs-unsynced', 'ca.crt');
      const ca = await waitFor(
        'ca.crt and /healthz 200',
        async () => {
          if (!existsSync(caFile)) return undefined;
          const pem = readFileSync(caFile, 'utf8');
          return (await get(`https://127.0.0.1:${port}/healthz`, pem)).status === 200 ? pem : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 100, children: [child] },
      );
      expect(logOf(child).some((l) => l.msg === 'cluster view: live informers')).toBe(true);

      // Stays 503 for about 2 s (bounded: 10 polls), naming every cache that has not synced.
      for (let i = 0; i < 10; i++) {
        const readyz = await get(`https://127.0.0.1:${port}/readyz`, ca);
        expect(readyz.status).toBe(503);
        const body = JSON.parse(readyz.body) as Record<string, unknown>;
        // `disconnected` names the caches whose list has failed so far (each with since when).
        const { disconnected = {}, ...rest } = body;
        expect(rest).toEqual({ ready: false, caches: { nodes: false, ciliumnodes: false, agentPods: false, unscheduledPods: false } });
        expect(Object.keys(disconnected as object).every((c) => ['nodes', 'ciliumnodes', 'agentPods', 'unscheduledPods'].includes(c))).toBe(true);
        await sleep(200);
      }
      expect((await get(`https://127.0.0.1:${port}/healthz`, ca)).status).toBe(200);

      expect(await terminate(child)).toBe(0);
      expect(logOf(child).map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'server closed']));
    } finally {
      await stopChild(child, 5_000);
    }
  });

  it('SIGTERM during start-up (certificate bootstrap against an unreachable API server) exits 0 without ever listening', async () => {
    const kubeconfig = await unreachableKubeconfig();
    const [port] = (await freePorts(1)) as [number];
    const child = cli('startup-sigterm', [
      'serve',
      '--kubeconfig',
      kubeconfig,
      '--cert-dir',
      join(dir, 'certs-startup'),
      '--cert-secret',
      'cilium-migration-guard/cilium-migration-guard-tls',
      '--port',
      String(port),
    ]);
    try {
      await waitForLog(child, 'a failed bootstrap attempt', (l) => l.msg === 'certificate bootstrap failed; retrying');
      expect(await terminate(child, 10_000)).toBe(0);
      const log = logOf(child);
      expect(log.find((l) => l.msg === 'shutting down')).toMatchObject({ signal: 'SIGTERM', during: 'start-up' });
      expect(log.some((l) => String(l.msg).startsWith('serving admission webhooks'))).toBe(false);
      await expect(get(`https://127.0.0.1:${port}/healthz`)).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      await stopChild(child, 5_000);
    }
  });

  it('in a cluster the default host is "::", which also accepts IPv4 clients (or 0.0.0.0 where IPv6 is off)', async () => {
    const v6 = await ipv6Listens();
    const [port] = (await freePorts(1)) as [number];
    // KUBERNETES_SERVICE_HOST makes it "in a cluster"; --cluster-state keeps it off the network; the
    // pair from the quick-start case is used as is (no generation in a cluster).
    const child = cli(
      'in-cluster',
      ['serve', '--cluster-state', EXAMPLE_STATE, '--cert-dir', certDir, '--port', String(port)],
      cleanEnv({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }),
    );
    try {
      const serving = await waitForLog(child, 'the serving log line', (l) => String(l.msg).startsWith('serving admission webhooks'));
      const ca = readFileSync(join(certDir, 'ca.crt'), 'utf8');
      if (v6) {
        expect(serving.url).toBe(`https://[::]:${port}`);
        expect(logOf(child).some((l) => String(l.msg).includes('IPv6 is unavailable'))).toBe(false);
        // An IPv4 client on 127.0.0.1 reaches the "::" listener (dual-stack), and so does ::1.
        expect((await get(`https://127.0.0.1:${port}/healthz`, ca)).status).toBe(200);
        expect((await get(`https://[::1]:${port}/healthz`, ca)).status).toBe(200);
      } else {
        // IPv6 is off on this machine: the fallback is what runs.
        expect(serving.url).toBe(`https://0.0.0.0:${port}`);
        expect(logOf(child).find((l) => String(l.msg).includes('IPv6 is unavailable'))).toMatchObject({ host: '::', fallback: '0.0.0.0' });
        expect((await get(`https://127.0.0.1:${port}/healthz`, ca)).status).toBe(200);
      }
      expect(await terminate(child)).toBe(0);
    } finally {
      await stopChild(child, 5_000);
    }
  });
});

describe('node dist/cli.js reaper', () => {
  it('in a cluster its probe port defaults to "::" (IPv4 clients too); SIGTERM while its caches cannot sync exits 0', async () => {
    const v6 = await ipv6Listens();
    const kubeconfig = await unreachableKubeconfig();
    const [port] = (await freePorts(1)) as [number];
    const child = cli(
      'reaper',
      ['reaper', '--kubeconfig', kubeconfig, '--no-leader-elect', '--identity', 'test', '--dry-run'],
      cleanEnv({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443', CMG_METRICS_PORT: String(port) }),
    );
    try {
      const started = await waitForLog(child, 'the reaper started line', (l) => l.msg === 'reaper started');
      expect(started.probe).toBe(v6 ? `http://[::]:${port}` : `http://0.0.0.0:${port}`);
      expect((await get(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const readyz = await get(`http://127.0.0.1:${port}/readyz`);
      expect(readyz.status).toBe(503);
      expect(JSON.parse(readyz.body)).toMatchObject({ ready: false, detail: { nodes: false } });
      expect(await terminate(child)).toBe(0);
      expect(logOf(child).map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'reaper stopped']));
    } finally {
      await stopChild(child, 5_000);
    }
  });
});
