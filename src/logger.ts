// The one logger: pino JSON, errors under `err` (pino's serializer keeps the message, type and
// stack; JSON.stringify(err) would print `{}`), levels as labels so a person reading
// `kubectl logs` sees "warn", not 40.
//
// Where the lines go, and what happens when stdout is slow: they are written to process.stdout
// through a LineSink that lets at most MAX_QUEUED_LOG_BYTES wait. Node writes stdout to a pipe
// asynchronously (to a file or a terminal synchronously): what the pipe cannot take at once waits
// in process.stdout's buffer, and the event loop never blocks on it. Past the bound, lines are
// dropped and counted (cmg_log_lines_dropped_total), so a stalled reader costs bounded memory; a
// reader that is gone (EPIPE) makes every later line a dropped one. Lines are handed to stdout in
// batches, once per turn of the event loop (or every LOG_BATCH_BYTES): a write per line cost a
// system call per admission when stdout is a file, and per-line stream bookkeeping when it is a
// pipe (docs/benchmarks.md). pino's own stdout destination
// (sonic-boom) is not used: it queues without bound, and at exit it retries a failed write every
// 100 ms in a blocking loop, which made SIGTERM hang forever on a closed pipe. Nothing is flushed
// at process.exit(): commands/signals.ts waits a bounded time for the queue to drain, then exits.

import { pino, type DestinationStream, type Level, type Logger, type LoggerOptions as PinoOptions } from 'pino';

export type { Logger };

/** How much log output may wait for a slow stdout before lines are dropped. */
export const MAX_QUEUED_LOG_BYTES = 1024 * 1024;

/** Lines are written together once this much is waiting, or at the end of the event loop's turn. */
export const LOG_BATCH_BYTES = 64 * 1024;

type Output = Pick<NodeJS.WritableStream, 'write' | 'on'> & { readonly writableLength: number };

/** A pino destination in front of a Node stream that bounds what waits for it. */
export class LineSink implements DestinationStream {
  /** Lines not written: the queue was full, or the reader was gone. */
  dropped = 0;
  private broken = false;
  /** Lines not yet handed to the stream (this turn of the event loop's). */
  private batch = '';
  private scheduled: NodeJS.Immediate | undefined;
  private readonly flushBatch = (): void => this.flush();

  constructor(
    private readonly output: Output,
    private readonly maxQueuedBytes = MAX_QUEUED_LOG_BYTES,
  ) {
    // EPIPE and the like: nobody reads any more. Without a listener the error would crash the process.
    output.on('error', () => {
      this.broken = true;
    });
  }

  /** Bytes logged but not yet taken by the reader (the batch included). */
  get queuedBytes(): number {
    return this.output.writableLength + this.batch.length;
  }

  write(line: string): void {
    if (this.broken || this.queuedBytes + line.length > this.maxQueuedBytes) {
      this.dropped += 1;
      return;
    }
    this.batch += line;
    if (this.batch.length >= LOG_BATCH_BYTES) this.flush();
    else this.scheduled ??= setImmediate(this.flushBatch);
  }

  /** Hands the waiting lines to the stream now (also at process exit, and before a command exits). */
  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    if (this.batch.length === 0) return;
    const chunk = this.batch;
    this.batch = '';
    if (this.broken) {
      this.dropped += 1;
      return;
    }
    this.output.write(chunk);
  }
}

let stdoutSink: LineSink | undefined;

/** The process's one sink in front of stdout (shared by every logger that writes there). */
export function stdoutLineSink(): LineSink {
  if (!stdoutSink) {
    const sink = new LineSink(process.stdout);
    // A line logged just before process.exit() would otherwise never leave the batch.
    process.once('exit', () => sink.flush());
    stdoutSink = sink;
  }
  return stdoutSink;
}

/** Hands stdout's waiting log lines to it now (commands/output.ts, before it waits for stdout to drain). */
export function flushLogLines(): void {
  stdoutSink?.flush();
}

export interface LoggerOptions {
  /** pino level name; "silent" turns logging off (tests). Default "info". */
  level?: Level | 'silent';
  /** Where lines go; default stdout through stdoutLineSink(). Tests pass a stream to read the lines back. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const config: PinoOptions = {
    level: options.level ?? 'info',
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: pino.stdSerializers.err },
    // Nothing here logs headers or bodies; this is a guard against a future "log the request".
    redact: { paths: ['req.headers.authorization', 'headers.authorization'], censor: '[redacted]' },
  };
  return pino(config, options.destination ?? stdoutLineSink());
}
