// How a command's output reaches its reader whole. On Linux, Node writes process.stdout and
// process.stderr to a pipe asynchronously: write() hands the kernel what the pipe can take now
// (64 KiB) and queues the rest, and process.exit() drops that queue. So no command calls
// process.exit() itself: it returns its exit code, and the entry point (cli.ts) exits only once
// both streams have handed everything to the kernel, however slowly the reader reads.

import { flushLogLines } from '../logger.js';

/** The exit code when the reader closed the pipe before the output was written: 128 + SIGPIPE, what a shell reports for `cat big | head`. */
export const EXIT_READER_GONE = 141;

type OutputStream = Pick<NodeJS.WriteStream, 'write' | 'on' | 'off'>;

/**
 * Resolves once everything written to `stream` so far has been handed to the kernel (or to the
 * file), with the write error when the reader went away (EPIPE) instead. A zero-length write's
 * callback runs after every earlier write's, in order.
 */
export function flushed(stream: OutputStream): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    // An 'error' event without a listener would crash the process with a stack trace. After a
    // failed write the stream emits 'error' later on, so the listener stays then.
    const onError = (): void => {};
    stream.on('error', onError);
    try {
      stream.write('', (err?: Error | null) => {
        if (!err) stream.off('error', onError);
        resolve(err ?? undefined);
      });
    } catch (err) {
      resolve(err as NodeJS.ErrnoException);
    }
  });
}

/**
 * Exits with `code` once stdout and stderr are flushed. A reader that closed stdout early gets
 * EXIT_READER_GONE (without a message: `report | head` is not an error worth a line) unless the
 * command failed anyway. With `timeoutMs` (a server shutting down: its deadline matters more than
 * its last log lines) it exits after that long even if a reader is stalled, with `code` unchanged.
 */
export async function exitWhenFlushed(
  code: number,
  streams: { stdout: OutputStream; stderr: OutputStream } = process,
  exit: (code: number) => void = (c) => process.exit(c),
  timeoutMs?: number,
): Promise<void> {
  flushLogLines(); // the last log lines may still be in the logger's batch (logger.ts)
  // Keep a late EPIPE from becoming an uncaught 'error' between the flush and the exit.
  for (const stream of [streams.stdout, streams.stderr]) stream.on('error', () => {});
  const flushing = Promise.all([flushed(streams.stdout), flushed(streams.stderr)]);
  let timer: NodeJS.Timeout | undefined;
  const outcome =
    timeoutMs === undefined
      ? await flushing
      : await Promise.race([flushing, new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)))]);
  clearTimeout(timer);
  exit(outcome !== 'timeout' && code === 0 && outcome[0] ? EXIT_READER_GONE : code);
}
