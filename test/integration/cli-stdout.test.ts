// `serve` when its stdout misbehaves (issue 9.4), through the real CLI: stdout is a FIFO whose
// reader the test controls. A reader that is gone (closed pipe) or stalled (a full pipe nobody
// reads) must not stop SIGTERM from ending the process within its deadline, and with a stalled
// reader the log lines waiting in memory stay bounded (the rest dropped and counted).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts, sleep } from '../harness/controlplane.js';
import { buildDist, CLI } from '../harness/guard.js';
import { MAX_QUEUED_LOG_BYTES } from '../../src/logger.js';
import { pod } from '../support/fixtures.js';
import { podRequest, review } from '../support/reviews.js';
import { eventually, h2Session, postJson } from '../support/https-client.js';
import { WEBHOOK_PATHS } from '../../src/webhooks/routes.js';
import { cleanEnv } from '../support/clean-env.js';

/** Kubernetes' default terminationGracePeriodSeconds: SIGTERM must end the process well within it. */
const EXIT_BOUND_MS = 10_000;

let dir = '';
const started: ChildProcess[] = [];

interface Served {
  proc: ChildProcess;
  port: number;
  ca: string;
  /** The FIFO's read end, held by the test (never read). */
  readFd: number | undefined;
  exited: Promise<number | null>;
  stderr: () => string;
}

/** `serve` with stdout on a FIFO the test holds open for reading but never reads. */
async function serveOnFifo(name: string): Promise<Served> {
  const fifo = join(dir, `${name}.fifo`);
  expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
  const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeFd = openSync(fifo, constants.O_WRONLY);
  const [port] = (await freePorts(1)) as [number];
  const certDir = join(dir, `certs-${name}`);
  let proc: ChildProcess;
  try {
    proc = spawn(process.execPath, [CLI, 'serve', '--port', String(port), '--cert-dir', certDir], {
      cwd: dir,
      env: cleanEnv(),
      stdio: ['ignore', writeFd, 'pipe'],
    });
  } finally {
    closeSync(writeFd);
  }
  started.push(proc);
  let stderr = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  const up = await eventually(async () => (await healthz(port, join(certDir, 'ca.crt'))) === 200, 30_000, 200);
  if (!up) throw new Error(`serve did not come up\n${stderr}`);
  return { proc, port, ca: readFileSync(join(certDir, 'ca.crt'), 'utf8'), readFd, exited, stderr: () => stderr };
}

function healthz(port: number, caFile: string): Promise<number> {
  return new Promise((resolve) => {
    let ca: string;
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch {
      return resolve(0);
    }
    const req = httpsRequest(`https://127.0.0.1:${port}/healthz`, { ca, agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}

function metrics(served: Served): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`https://127.0.0.1:${served.port}/metrics`, { ca: served.ca, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const metricValue = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

/** `count` admission requests over one HTTP/2 session, `concurrency` at a time: one decision log line each. */
async function decisions(served: Served, count: number, concurrency = 32): Promise<void> {
  const session: ClientHttp2Session = await h2Session(`https://127.0.0.1:${served.port}`, served.ca);
  try {
    const body = review(podRequest(pod('nginx-pod')));
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) {
          next += 1;
          const res = await postJson(session, WEBHOOK_PATHS.pods, body);
          expect(res.status).toBe(200);
        }
      }),
    );
  } finally {
    session.close();
  }
}

/** SIGTERM, then how long until the process exited, and its code; SIGKILL (and a failure) past the bound. */
async function terminate(served: Served): Promise<{ ms: number; code: number | null }> {
  const start = Date.now();
  served.proc.kill('SIGTERM');
  const code = await Promise.race([served.exited, sleep(EXIT_BOUND_MS + 5_000).then(() => 'hung' as const)]);
  if (code === 'hung') {
    served.proc.kill('SIGKILL');
    throw new Error(`serve did not exit within ${EXIT_BOUND_MS + 5_000} ms of SIGTERM\n${served.stderr()}`);
  }
  return { ms: Date.now() - start, code };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cmg-cli-stdout-'));
  await buildDist();
}, 120_000);

afterAll(async () => {
  for (const proc of started) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('serve with a misbehaving stdout', () => {
  it('stdout a closed pipe: SIGTERM ends the process within the deadline, exit 0', async () => {
    const served = await serveOnFifo('closed');
    closeSync(served.readFd!); // the reader is gone: every write now fails with EPIPE
    served.readFd = undefined;
    await decisions(served, 200);
    const { ms, code } = await terminate(served);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(EXIT_BOUND_MS);
    expect(served.stderr()).toBe(''); // no stack trace of an EPIPE
  }, 60_000);

  it('stdout a pipe nobody reads: SIGTERM still ends the process within the deadline, exit 0', async () => {
    const served = await serveOnFifo('stalled-exit');
    try {
      await decisions(served, 3_000); // ~1.2 MB of log lines: the pipe (64 KiB) is full long before
      const { ms, code } = await terminate(served);
      expect(code).toBe(0);
      expect(ms).toBeLessThan(EXIT_BOUND_MS);
    } finally {
      if (served.readFd !== undefined) closeSync(served.readFd);
    }
  }, 120_000);

  it('stdout a pipe nobody reads: queued log lines stay bounded, the rest dropped and counted', async () => {
    const served = await serveOnFifo('stalled');
    try {
      // About 400 bytes of log per decision: 6,000 decisions are ~2.4 MB, far more than the
      // pipe (64 KiB) and the queue (1 MiB) can hold.
      await decisions(served, 6_000);
      const text = await metrics(served);
      const queued = metricValue(text, 'cmg_log_queued_bytes');
      const dropped = metricValue(text, 'cmg_log_lines_dropped_total');
      expect(queued).toBeGreaterThan(MAX_QUEUED_LOG_BYTES / 2);
      expect(queued).toBeLessThanOrEqual(MAX_QUEUED_LOG_BYTES);
      expect(dropped).toBeGreaterThan(1_000);
      // Memory stays where it was for a few hundred decisions: nothing grows with the lines dropped.
      const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${served.proc.pid}/status`, 'utf8'))?.[1]) * 1024;
      expect(rss).toBeLessThan(300 * 1024 * 1024);
      expect((await terminate(served)).code).toBe(0);
    } finally {
      if (served.readFd !== undefined) closeSync(served.readFd);
    }
  }, 120_000);
});

describe('serve start-up with a corrupt tls.crt (issue 9.5)', () => {
  it('exits 1 with one line naming the file', async () => {
    const certDir = join(dir, 'certs-corrupt');
    const { ensureServingCert } = await import('../../src/certs/local.js');
    await ensureServingCert(certDir);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(certDir, 'tls.crt'), '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
    const [port] = (await freePorts(1)) as [number];
    const result = spawnSync(process.execPath, [CLI, 'serve', '--port', String(port), '--cert-dir', certDir], {
      cwd: dir,
      env: cleanEnv(),
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(`^error: serving certificate ${certDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/tls\\.crt is not a PEM X\\.509 certificate`),
    );
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  }, 60_000);
});
