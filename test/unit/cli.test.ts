import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/main.js';

// Captures what main() writes, so each case asserts the message a person sees and the exit code.
function capture() {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((out += String(chunk)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
  return {
    get out() {
      return out;
    },
    get err() {
      return err;
    },
    restore() {
      o.mockRestore();
      e.mockRestore();
    },
  };
}

describe('cli', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cmg-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints usage for help, and for <command> --help', async () => {
    const io = capture();
    try {
      expect(await main(['help'])).toBe(0);
      expect(await main(['serve', '--help'])).toBe(0);
    } finally {
      io.restore();
    }
    expect(io.out).toContain('Usage: cilium-migration-guard <command>');
    expect(io.out).toContain('--cluster-state FILE');
  });

  it.each([
    [['bogus'], 'unknown command "bogus"'],
    [['serve', '--port', 'abc'], '--port must be 0-65535'],
    [['serve', '--log-level', 'loud'], '--log-level must be one of'],
    [['serve', '--no-such-flag'], "Unknown option '--no-such-flag'"],
  ])('a usage mistake %j exits 2 with the reason and the usage', async (argv, reason) => {
    const io = capture();
    try {
      expect(await main(argv)).toBe(2);
    } finally {
      io.restore();
    }
    expect(io.err).toContain(reason);
    expect(io.err).toContain('Usage:');
  });

  it('a bad config or snapshot exits 1 with one clear line, before listening', async () => {
    await writeFile(join(dir, 'bad.yaml'), 'onConflict: maybe\n');
    await writeFile(join(dir, 'state.yaml'), 'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata: {}\n');
    const io = capture();
    try {
      expect(await main(['serve', '--config', join(dir, 'bad.yaml'), '--port', '0'])).toBe(1);
      expect(await main(['serve', '--cluster-state', join(dir, 'state.yaml'), '--port', '0'])).toBe(1);
      expect(await main(['serve', '--cluster-state', join(dir, 'missing.yaml'), '--port', '0'])).toBe(1);
    } finally {
      io.restore();
    }
    expect(io.err).toContain('onConflict');
    expect(io.err).toMatch(/state\.yaml.*item 0/);
    expect(io.err).toContain('missing.yaml');
    expect(io.err).not.toMatch(/\n\s+at /); // no stack traces
  });
});
