import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EXIT_READER_GONE, exitWhenFlushed, flushed } from '../../src/commands/output.js';

/** A stream whose writes complete only when release() is called, like a pipe nobody reads yet. */
function stalled(): { stream: Writable; release(): void; written: () => string } {
  const pending: Array<() => void> = [];
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      pending.push(() => {
        text += chunk.toString();
        callback();
      });
    },
  });
  return { stream, release: () => pending.splice(0).forEach((f) => f()), written: () => text };
}

function broken(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    },
  });
}

describe('exitWhenFlushed', () => {
  it('exits only after every queued write has completed, with the exit code given', async () => {
    const out = stalled();
    out.stream.write('x'.repeat(100_000));
    const exits: number[] = [];
    const done = exitWhenFlushed(3, { stdout: out.stream as never, stderr: new PassThrough() as never }, (code) => exits.push(code));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(exits).toEqual([]);
    // The first write completes, then the zero-length flush write queued behind it.
    out.release();
    await new Promise((resolve) => setTimeout(resolve, 0));
    out.release();
    await done;
    expect(exits).toEqual([3]);
    expect(out.written()).toHaveLength(100_000);
  });

  it('a reader gone (EPIPE) turns success into 141 without an uncaught error; a failure keeps its code', async () => {
    const exits: number[] = [];
    await exitWhenFlushed(0, { stdout: broken() as never, stderr: new PassThrough() as never }, (code) => exits.push(code));
    await exitWhenFlushed(1, { stdout: broken() as never, stderr: new PassThrough() as never }, (code) => exits.push(code));
    expect(exits).toEqual([EXIT_READER_GONE, 1]);
  });

  it('flushed resolves with the write error', async () => {
    expect((await flushed(broken() as never))?.code).toBe('EPIPE');
    expect(await flushed(new PassThrough() as never)).toBeUndefined();
  });
});
