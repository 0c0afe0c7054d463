import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { onShutdownSignal } from '../../src/commands/signals.js';
import { createLogger, LineSink } from '../../src/logger.js';

describe('shutdown deadline', () => {
  it('a cleanup that never finishes: exit 1 at the deadline', async () => {
    const exits: number[] = [];
    const shutdown = onShutdownSignal(createLogger({ level: 'silent' }), { signals: [], deadlineMs: 100, exit: (code) => void exits.push(code) });
    shutdown.defer(() => new Promise(() => {}));
    const started = Date.now();
    shutdown.trigger('SIGTERM');
    while (exits.length === 0 && Date.now() - started < 2_000) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(exits).toEqual([1]);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe('LineSink', () => {
  /** A stream that never completes a write: a pipe nobody reads. */
  const stalled = () =>
    new Writable({
      highWaterMark: 1 << 30,
      write(_chunk, _encoding, _callback) {},
    });

  it('lets at most its bound wait for a stalled stream; the rest is dropped and counted', () => {
    const output = stalled();
    const sink = new LineSink(output, 10_000);
    const line = `${'x'.repeat(99)}\n`;
    for (let i = 0; i < 1_000; i++) sink.write(line);
    expect(sink.queuedBytes).toBeLessThanOrEqual(10_000);
    expect(sink.queuedBytes).toBeGreaterThan(9_000);
    expect(sink.dropped).toBe(1_000 - Math.floor(10_000 / 100));
  });

  it('after a write error (EPIPE) every line is dropped, without an uncaught error', async () => {
    const output = new Writable({ write: (_c, _e, callback) => callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })) });
    const sink = new LineSink(output, 10_000);
    sink.write('first\n');
    await new Promise((resolve) => setTimeout(resolve, 10));
    sink.write('second\n');
    expect(sink.dropped).toBe(1);
  });

  it('hands the lines of one turn of the event loop to the stream in one write, and all of them on flush()', async () => {
    const writes: string[] = [];
    const output = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        writes.push(chunk.toString());
        callback();
      },
    });
    const sink = new LineSink(output, 10_000);
    for (let i = 0; i < 5; i++) sink.write(`line ${i}\n`);
    expect(writes).toEqual([]);
    expect(sink.queuedBytes).toBe(35);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toEqual(['line 0\nline 1\nline 2\nline 3\nline 4\n']);
    sink.write('last\n');
    sink.flush();
    expect(writes.at(-1)).toBe('last\n');
    expect(sink.dropped).toBe(0);
  });
});
