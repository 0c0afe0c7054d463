// Every command's output reaches a pipe whole, however large and however slowly it is read, with
// the right exit code. Through a real pipe made by a shell (`cli ... | reader`, not the socketpair
// node's child_process would make), into a reader process that reads in small chunks with pauses.
// The report is several megabytes: 300 migrated nodes and 6,600 pods in
// examples/migration-race.yaml's shapes (test/support/big-snapshot.ts). Runs differ only in the
// report's own time stamp, which `same` blanks out before comparing bytes.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDist, CLI, ROOT } from '../harness/guard.js';
import { bigSnapshot } from '../support/big-snapshot.js';
import { cleanEnv } from '../support/clean-env.js';

let dir = '';
let snapshot = '';
let smallSnapshot = ''; // 100 nodes: about 320 KB of JSON, for the early-closing reader
let reader = '';

/** Reads stdin with readSync in `chunk`-byte reads, pausing `pauseMs` after each, into stdout (a file); stops after `limit` bytes when given. */
const READER = `
import { readSync, writeSync } from 'node:fs';
const [chunk, pauseMs, limit] = process.argv.slice(2).map(Number);
const buf = Buffer.alloc(chunk);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
let total = 0;
for (;;) {
  let n;
  try {
    n = readSync(0, buf, 0, chunk, null);
  } catch (err) {
    if (err.code === 'EAGAIN') { Atomics.wait(sleeper, 0, 0, 2); continue; }
    throw err;
  }
  if (n === 0) break;
  writeSync(1, buf, 0, n);
  total += n;
  if (limit > 0 && total >= limit) process.exit(0);
  if (pauseMs > 0) Atomics.wait(sleeper, 0, 0, pauseMs);
}
`;

interface Piped {
  /** The CLI's exit code, as the shell saw it. */
  code: number;
  /** What the reader received, byte for byte. */
  out: Buffer;
  stderr: string;
  ms: number;
}

let runs = 0;
/** `node dist/cli.js ARGS | reader` in sh, stderr through a slow reader too; 'file' writes to files instead (the reference). */
function runPiped(args: string[], reading: { chunk: number; pauseMs: number; limit?: number } | 'file', timeoutMs = 90_000): Promise<Piped> {
  runs += 1;
  const out = join(dir, `out-${runs}`);
  const err = join(dir, `err-${runs}`);
  const code = join(dir, `code-${runs}`);
  // "$@" are the CLI's arguments; the exit code is the CLI's own. Piped, its stdout goes to fd 3
  // (the pipe into the reader) and its stderr into a second, slow reader.
  const full =
    reading === 'file'
      ? `"$NODE" "$CLI" "$@" >"$OUT" 2>"$ERR"; echo $? >"$CODE"`
      : `{ { "$NODE" "$CLI" "$@" 2>&1 1>&3 3>&-; echo $? >"$CODE"; } | "$NODE" "$READER" 4096 5 0 >"$ERR"; } 3>&1 | ` +
        `"$NODE" "$READER" ${reading.chunk} ${reading.pauseMs} ${reading.limit ?? 0} >"$OUT"`;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const proc = spawn('/bin/sh', ['-c', full, 'sh', ...args], {
      cwd: dir,
      env: { ...cleanEnv(), NODE: process.execPath, CLI, READER: reader, OUT: out, ERR: err, CODE: code },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let shellErr = '';
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (shellErr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('error', reject);
    proc.on('close', (status) => {
      clearTimeout(timer);
      if (status !== 0) return reject(new Error(`sh exited ${status}: ${shellErr}`));
      try {
        resolve({
          code: Number(readFileSync(code, 'utf8').trim()),
          out: readFileSync(out),
          stderr: readFileSync(err, 'utf8'),
          ms: Date.now() - started,
        });
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** The report's time stamp (its first ISO time, in both formats) blanked: everything else must be equal, byte for byte. */
const ISO = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/;
function same(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.toString('utf8').replace(ISO, 'AT') === b.toString('utf8').replace(ISO, 'AT');
}

const SLOW = { chunk: 8192, pauseMs: 4 };
const FAST = { chunk: 1 << 20, pauseMs: 0 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cmg-cli-output-'));
  const big = bigSnapshot(ROOT, 300, 3);
  expect(big.pods).toBe(6_600);
  snapshot = join(dir, 'snapshot.json');
  smallSnapshot = join(dir, 'small.json');
  reader = join(dir, 'reader.mjs');
  await Promise.all([writeFile(snapshot, big.text), writeFile(smallSnapshot, bigSnapshot(ROOT, 100).text), writeFile(reader, READER), buildDist()]);
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('output through a pipe', () => {
  let referenceJson: Buffer;
  let referenceTable: Buffer;

  beforeAll(async () => {
    const [json, table] = await Promise.all([
      runPiped(['report', '--cluster-state', snapshot, '-o', 'json'], 'file'),
      runPiped(['report', '--cluster-state', snapshot], 'file'),
    ]);
    expect(json.code, json.stderr).toBe(0);
    expect(table.code, table.stderr).toBe(0);
    referenceJson = json.out;
    referenceTable = table.out;
  }, 120_000);

  it('report -o json: several megabytes, whole and valid through a slow reader, exit 0', async () => {
    expect(referenceJson.length).toBeGreaterThan(2_500_000);
    const piped = await runPiped(['report', '--cluster-state', snapshot, '-o', 'json'], SLOW);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.out.length).toBe(referenceJson.length);
    expect(same(piped.out, referenceJson)).toBe(true);
    const report = JSON.parse(piped.out.toString('utf8')) as { summary: { nodes: number }; nodes: unknown[] };
    expect(report.summary.nodes).toBe(300);
    expect(report.nodes).toHaveLength(300);
    expect(piped.stderr).toBe('');
  }, 120_000);

  it('report (table): whole through a slow reader, exit 0', async () => {
    expect(referenceTable.length).toBeGreaterThan(1_500_000);
    const piped = await runPiped(['report', '--cluster-state', snapshot], SLOW);
    expect(piped.code, piped.stderr).toBe(0);
    expect(same(piped.out, referenceTable)).toBe(true);
    expect(piped.out.toString('utf8')).toMatch(
      /Summary: 300 migrated node\(s\), 0 without a ready Cilium; 900 to remove, 900 report-only, 0 waiting, 900 kept\.\n$/,
    );
  }, 120_000);

  it('report -o json: whole through a reader that takes everything at once', async () => {
    const piped = await runPiped(['report', '--cluster-state', snapshot, '-o', 'json'], FAST);
    expect(piped.code, piped.stderr).toBe(0);
    expect(same(piped.out, referenceJson)).toBe(true);
  }, 120_000);

  it('help: the whole usage text through a slow reader, exit 0', async () => {
    const piped = await runPiped(['help'], { chunk: 64, pauseMs: 2 });
    expect(piped.code).toBe(0);
    const text = piped.out.toString('utf8');
    expect(text.startsWith('Usage: cilium-migration-guard <command> [flags]')).toBe(true);
    expect(text).toContain('Flags for report');
    expect(text.endsWith('\n')).toBe(true);
  }, 60_000);

  it('an error: its line on stderr through a slow pipe, exit 1; a usage mistake: exit 2 with the usage', async () => {
    const missing = await runPiped(['report', '--cluster-state', join(dir, 'no-such-file.yaml')], SLOW);
    expect(missing.code).toBe(1);
    expect(missing.out.length).toBe(0);
    expect(missing.stderr).toMatch(/^error: .*no-such-file\.yaml.*\n$/);

    const usage = await runPiped(['report', '-o', 'yaml', '--cluster-state', snapshot], SLOW);
    expect(usage.code).toBe(2);
    expect(usage.stderr.startsWith('error: -o must be table or json, got "yaml"')).toBe(true);
    expect(usage.stderr).toContain('Flags for serve');
    expect(usage.stderr.endsWith('\n')).toBe(true);
  }, 60_000);

  it('a reader that stops early: exit 141 (128 + SIGPIPE) with no stack trace, and no hang', async () => {
    const piped = await runPiped(['report', '--cluster-state', smallSnapshot, '-o', 'json'], { chunk: 4096, pauseMs: 0, limit: 100_000 });
    expect(piped.code).toBe(141);
    expect(piped.out.length).toBeGreaterThanOrEqual(100_000);
    expect(piped.out.length).toBeLessThan(300_000);
    expect(piped.stderr).toBe('');
  }, 60_000);
});
