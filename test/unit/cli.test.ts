import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultListenHost, envName, EXAMPLE_SNAPSHOT, kubeConfigFrom, parseCommandFlags } from '../../src/commands/common.js';
import { parseReaperFlags, REAPER_USAGE } from '../../src/commands/reaper.js';
import { REPORT_USAGE, runReport } from '../../src/commands/report.js';
import { parseServeFlags, SERVE_USAGE } from '../../src/commands/serve.js';
import { onShutdownSignal, ShuttingDown } from '../../src/commands/signals.js';
import { main } from '../../src/main.js';
import { WEBHOOK_PATHS } from '../../src/webhooks/routes.js';
import { fallbackHost, listenWithFallback } from '../../src/server/listen.js';
import { capturingLogger } from '../support/https-client.js';

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

/** A usage mistake: exit code 2, the reason, and the usage text, on stderr. */
async function exitsTwoSaying(argv: string[], reason: string): Promise<void> {
  const io = capture();
  try {
    expect(await main(argv)).toBe(2);
  } finally {
    io.restore();
  }
  expect(io.err).toContain(reason);
  expect(io.err).toContain('Usage:');
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
    // The summary names every path the server answers (the route table is the source).
    for (const path of Object.values(WEBHOOK_PATHS)) expect(io.out).toContain(path);
  });

  it.each([
    [['bogus'], 'unknown command "bogus"'],
    [['serve', '--port', 'abc'], '--port must be 0-65535'],
    [['serve', '--log-level', 'loud'], '--log-level must be one of'],
    [['serve', '--no-such-flag'], "Unknown option '--no-such-flag'"],
  ])('a usage mistake %j exits 2 with the reason and the usage', (argv, reason) => exitsTwoSaying(argv, reason));

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

describe('flags from CMG_* environment variables', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('maps --foo-bar to CMG_FOO_BAR', () => {
    expect(envName('port')).toBe('CMG_PORT');
    expect(envName('no-generate-cert')).toBe('CMG_NO_GENERATE_CERT');
    expect(envName('metrics-host')).toBe('CMG_METRICS_HOST');
  });

  it('precedence: a flag on the command line, then the variable, then the default', () => {
    expect(parseServeFlags(['--port', '1111'], { CMG_PORT: '2222' }).port).toBe('1111');
    expect(parseServeFlags([], { CMG_PORT: '2222' }).port).toBe('2222');
    expect(parseServeFlags([], {}).port).toBe('8443');
    expect(parseServeFlags(['--cert-dir=/a'], { CMG_CERT_DIR: '/b' })['cert-dir']).toBe('/a');
    expect(parseServeFlags([], { CMG_CERT_DIR: '/b' })['cert-dir']).toBe('/b');
    // No default: unset stays unset, so the command's own fallback ($POD_NAME, in-cluster host...) applies.
    expect(parseServeFlags([], {}).host).toBeUndefined();
    expect(parseServeFlags([], { CMG_HOST: '::1' }).host).toBe('::1');
    expect(parseReaperFlags([], { CMG_IDENTITY: 'replica-a' }).identity).toBe('replica-a');
    expect(parseReaperFlags(['--identity', 'b'], { CMG_IDENTITY: 'replica-a' }).identity).toBe('b');
    // An empty variable counts as unset (Kubernetes renders `value: ""` that way).
    expect(parseServeFlags([], { CMG_PORT: '' }).port).toBe('8443');
  });

  it('parseCommandFlags reports where each value came from', () => {
    const specs = {
      'foo-bar': { type: 'string', default: 'd', help: ['x'] },
      baz: { type: 'string', help: ['x'] },
      on: { type: 'boolean', help: ['x'] },
    } as const;
    const parsed = parseCommandFlags(['--baz', 'flag'], specs, { CMG_FOO_BAR: 'env', CMG_BAZ: 'ignored' });
    expect(parsed.values).toEqual({ 'foo-bar': 'env', baz: 'flag' });
    expect(parsed.source).toEqual({ 'foo-bar': 'env', baz: 'flag', on: 'unset' });
    expect(parsed.label('foo-bar')).toBe('CMG_FOO_BAR');
    expect(parsed.label('baz')).toBe('--baz');
    expect(parseCommandFlags([], specs, {}).source['foo-bar']).toBe('default');
    expect(() => parseCommandFlags(['extra'], specs, {})).toThrow(/unexpected argument "extra"/);
  });

  it.each([
    ['true', true],
    ['1', true],
    ['false', false],
    ['0', false],
  ])('a boolean variable %j is %s', (text, value) => {
    expect(parseServeFlags([], { CMG_NO_GENERATE_CERT: text })['no-generate-cert']).toBe(value);
    expect(parseReaperFlags([], { CMG_DRY_RUN: text })['dry-run']).toBe(value);
  });

  it('a boolean flag on the command line wins over its variable', () => {
    expect(parseReaperFlags(['--dry-run'], { CMG_DRY_RUN: 'false' })['dry-run']).toBe(true);
    expect(parseReaperFlags([], {})['dry-run']).toBeUndefined();
  });

  it.each(['yes', 'TRUE ', 'on', '2'])('a boolean variable %j is a usage error naming the variable', (text) => {
    expect(() => parseReaperFlags([], { CMG_NO_LEADER_ELECT: text })).toThrow(/CMG_NO_LEADER_ELECT must be true, 1, false or 0/);
  });

  it.each([
    [['serve'], { CMG_NO_GENERATE_CERT: 'yes' }, 'CMG_NO_GENERATE_CERT must be true, 1, false or 0'],
    [['serve'], { CMG_PORT: 'http' }, 'CMG_PORT must be 0-65535, got "http"'],
    [['serve'], { CMG_LOG_LEVEL: 'loud' }, 'CMG_LOG_LEVEL must be one of'],
    [['serve'], { CMG_CERT_SECRET: 'no-slash' }, 'CMG_CERT_SECRET:'],
    [['reaper'], { CMG_METRICS_PORT: '70000' }, 'CMG_METRICS_PORT must be 0-65535'],
    [['reaper'], { CMG_DRY_RUN: 'maybe' }, 'CMG_DRY_RUN must be true, 1, false or 0'],
    [['report'], { CMG_OUTPUT: 'yaml' }, 'CMG_OUTPUT must be table or json'],
    [['report'], { CMG_TIMEOUT: '-1' }, 'CMG_TIMEOUT must be a positive number'],
  ])('%j with a bad variable %j exits 2 naming it', async (argv, env, reason) => {
    for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
    await exitsTwoSaying(argv, reason);
  });

  it('a value from the command line is named as the flag in errors, even with the variable set', async () => {
    vi.stubEnv('CMG_PORT', '8443');
    const io = capture();
    try {
      expect(await main(['serve', '--port', 'x'])).toBe(2);
    } finally {
      io.restore();
    }
    expect(io.err).toContain('--port must be 0-65535, got "x"');
  });

  it('a bad --node-label from the environment names the variable', async () => {
    vi.stubEnv('CMG_NODE_LABEL', '=broken');
    const io = capture();
    try {
      expect(await main(['report', '--cluster-state', EXAMPLE_SNAPSHOT])).toBe(1);
    } finally {
      io.restore();
    }
    expect(io.err).toContain('CMG_NODE_LABEL');
  });

  it('report takes its settings from the environment too (CMG_OUTPUT=json)', async () => {
    const { text } = await runReport(['--cluster-state', EXAMPLE_SNAPSHOT], { CMG_OUTPUT: 'json', CMG_LOG_LEVEL: 'silent' });
    expect(() => JSON.parse(text)).not.toThrow();
    const table = await runReport(['--cluster-state', EXAMPLE_SNAPSHOT, '-o', 'table'], { CMG_OUTPUT: 'json', CMG_LOG_LEVEL: 'silent' });
    expect(() => JSON.parse(table.text)).toThrow();
  });

  it.each([
    ['serve', SERVE_USAGE],
    ['reaper', REAPER_USAGE],
    ['report', REPORT_USAGE],
  ])('--help for %s lists every flag with its variable', (_command, usage) => {
    const flags = [...usage.matchAll(/^ {2}(?:-\w, )?--([a-z-]+)/gm)].map((m) => m[1] ?? '');
    expect(flags.length).toBeGreaterThan(5);
    for (const flag of flags) expect(usage).toContain(`[${envName(flag)}]`);
    expect(usage.match(/\[CMG_[A-Z_]+\]/g)).toHaveLength(flags.length);
    expect(usage).toContain('a flag wins');
  });

  it('--help for serve shows the variables', async () => {
    const io = capture();
    try {
      expect(await main(['serve', '--help'])).toBe(0);
    } finally {
      io.restore();
    }
    expect(io.out).toMatch(/--port N +Listen port \(default 8443\) \[CMG_PORT\]/);
    expect(io.out).toContain('[CMG_NO_GENERATE_CERT]');
    expect(io.out).toContain('[CMG_KUBECONFIG]');
  });

  it('keeps $KUBECONFIG working; --kubeconfig (or CMG_KUBECONFIG) wins over it', async () => {
    const file = (server: string) =>
      `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: '${server}'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n`;
    const dir = await mkdtemp(join(tmpdir(), 'cmg-cli-kc-'));
    try {
      const a = join(dir, 'kubeconfig-a');
      const b = join(dir, 'kubeconfig-b');
      await writeFile(a, file('https://127.0.0.1:1'));
      await writeFile(b, file('https://127.0.0.1:2'));
      vi.stubEnv('KUBERNETES_SERVICE_HOST', '');
      vi.stubEnv('KUBECONFIG', a);
      expect(kubeConfigFrom({})?.server).toBe('https://127.0.0.1:1');
      expect(kubeConfigFrom(parseServeFlags([], { CMG_KUBECONFIG: b }))?.server).toBe('https://127.0.0.1:2');
      expect(kubeConfigFrom(parseServeFlags(['--kubeconfig', a], { CMG_KUBECONFIG: b }))?.server).toBe('https://127.0.0.1:1');
      vi.stubEnv('KUBECONFIG', '');
      expect(kubeConfigFrom({})).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('listen host', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('defaults to 127.0.0.1 locally and :: in a cluster', () => {
    vi.stubEnv('KUBERNETES_SERVICE_HOST', '');
    expect(defaultListenHost()).toBe('127.0.0.1');
    vi.stubEnv('KUBERNETES_SERVICE_HOST', '10.96.0.1');
    expect(defaultListenHost()).toBe('::');
  });

  const failure = (code: string) => Object.assign(new Error(`listen ${code}`), { code });

  it.each([
    ['::', 'EAFNOSUPPORT', '0.0.0.0'],
    ['::', 'EADDRNOTAVAIL', '0.0.0.0'],
    ['::', 'EADDRINUSE', undefined],
    ['::', 'EACCES', undefined],
    ['0.0.0.0', 'EAFNOSUPPORT', undefined],
    ['::1', 'EADDRNOTAVAIL', undefined],
  ])('after %s fails with %s, the next host is %s', (host, code, next) => {
    expect(fallbackHost(host, failure(code))).toBe(next);
  });

  it('listenWithFallback: :: without IPv6 listens on 0.0.0.0 and says so', async () => {
    const { logger, lines } = capturingLogger();
    const tried: string[] = [];
    const listen = async (host: string) => {
      tried.push(host);
      if (host === '::') throw failure('EAFNOSUPPORT');
    };
    expect(await listenWithFallback('::', listen, logger)).toBe('0.0.0.0');
    expect(tried).toEqual(['::', '0.0.0.0']);
    expect(lines).toEqual([
      expect.objectContaining({ level: 'warn', host: '::', code: 'EAFNOSUPPORT', fallback: '0.0.0.0', msg: expect.stringContaining('IPv6 is unavailable') }),
    ]);
  });

  it('listenWithFallback: :: that works, or any other failure, does not fall back', async () => {
    const { logger, lines } = capturingLogger();
    const tried: string[] = [];
    expect(await listenWithFallback('::', async (host) => void tried.push(host), logger)).toBe('::');
    await expect(
      listenWithFallback(
        '::',
        async () => {
          throw failure('EADDRINUSE');
        },
        logger,
      ),
    ).rejects.toMatchObject({ code: 'EADDRINUSE' });
    // Both families unavailable: the 0.0.0.0 error is the one reported.
    await expect(
      listenWithFallback(
        '::',
        async (host) => {
          throw failure(host === '::' ? 'EADDRNOTAVAIL' : 'EACCES');
        },
        logger,
      ),
    ).rejects.toMatchObject({ code: 'EACCES' });
    expect(tried).toEqual(['::']);
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
  });
});

describe('shutdown on a signal', () => {
  const setup = (stepGraceMs = 2_000) => {
    const { logger, lines } = capturingLogger();
    const exits: number[] = [];
    let exited: (code: number) => void = () => {};
    const exit = new Promise<number>((resolve) => (exited = resolve));
    const shutdown = onShutdownSignal(logger, {
      signals: [],
      stepGraceMs,
      exit: (code) => {
        exits.push(code);
        exited(code);
      },
    });
    return { shutdown, lines, exits, exit };
  };

  it('runs the cleanups newest first, then exits 0', async () => {
    const { shutdown, exit } = setup();
    const order: string[] = [];
    shutdown.defer(() => void order.push('informers'));
    shutdown.defer(async () => void order.push('server'));
    shutdown.trigger('SIGTERM');
    expect(await exit).toBe(0);
    expect(order).toEqual(['server', 'informers']);
  });

  it('a signal during a start-up step: the step throws ShuttingDown, what it opened is cleaned up, exit 0', async () => {
    const { shutdown, exit, exits, lines } = setup();
    const order: string[] = [];
    shutdown.defer(() => void order.push('informers'));
    let listened: (value: string) => void = () => {};
    const listening = shutdown.step(new Promise<string>((resolve) => (listened = resolve)), (server) => () => void order.push(`close ${server}`));
    const outcome = listening.then(
      () => 'resolved',
      (err: unknown) => (err instanceof ShuttingDown ? 'ShuttingDown' : String(err)),
    );
    shutdown.trigger('SIGTERM');
    expect(shutdown.stopping).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(exits).toEqual([]); // waiting for the step
    listened('server');
    expect(await exit).toBe(0);
    expect(await outcome).toBe('ShuttingDown');
    expect(order).toEqual(['informers', 'close server']);
    expect(lines.find((l) => l.msg === 'shutting down')).toMatchObject({ signal: 'SIGTERM', during: 'start-up' });
    // A step begun after the signal stops start-up at once.
    await expect(shutdown.step(Promise.resolve(1))).rejects.toBeInstanceOf(ShuttingDown);
  });

  it('a step that never settles delays the exit only for the grace period', async () => {
    const { shutdown, exit } = setup(300);
    void shutdown.step(new Promise<void>(() => {})).catch(() => {});
    const started = Date.now();
    shutdown.trigger('SIGINT');
    expect(await exit).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('a failed cleanup exits 1; a second signal exits 1 at once', async () => {
    const first = setup();
    first.shutdown.defer(() => {
      throw new Error('boom');
    });
    first.shutdown.trigger('SIGTERM');
    expect(await first.exit).toBe(1);

    const second = setup();
    second.shutdown.defer(() => new Promise<void>(() => {}));
    second.shutdown.trigger('SIGTERM');
    second.shutdown.trigger('SIGTERM');
    expect(await second.exit).toBe(1);
  });

  it('abort (start-up failed) runs the cleanups without exiting, and a step error passes through', async () => {
    const { shutdown, exits } = setup();
    const order: string[] = [];
    shutdown.defer(() => void order.push('informers'));
    await expect(shutdown.step(Promise.reject(new Error('EADDRINUSE')))).rejects.toThrow('EADDRINUSE');
    await shutdown.abort();
    expect(order).toEqual(['informers']);
    expect(exits).toEqual([]);
  });

  it('installs and removes real signal handlers', async () => {
    const { logger } = capturingLogger();
    const before = process.listenerCount('SIGTERM');
    const shutdown = onShutdownSignal(logger, { exit: () => {} });
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    expect(process.listenerCount('SIGINT')).toBeGreaterThan(0);
    await shutdown.abort();
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });
});

describe('cli report', () => {
  it('refuses to pass off the example snapshot as the cluster: exit 2 saying what to pass', async () => {
    const saved = { KUBECONFIG: process.env.KUBECONFIG, KUBERNETES_SERVICE_HOST: process.env.KUBERNETES_SERVICE_HOST };
    delete process.env.KUBECONFIG;
    delete process.env.KUBERNETES_SERVICE_HOST;
    const io = capture();
    try {
      expect(await main(['report'])).toBe(2);
    } finally {
      io.restore();
      for (const [key, value] of Object.entries(saved)) if (value !== undefined) process.env[key] = value;
    }
    expect(io.err).toContain('no cluster configured: pass --kubeconfig');
    expect(io.err).toContain('--cluster-state FILE');
  });
});
