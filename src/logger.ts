// The one logger: pino JSON, errors under `err` (pino's serializer keeps the message, type and
// stack; JSON.stringify(err) would print `{}`), levels as labels so a person reading
// `kubectl logs` sees "warn", not 40.
//
// Where the lines go, and what happens when stdout is slow: they are written to process.stdout
// through a LineSink that lets at most MAX_QUEUED_LOG_BYTES wait. Node writes stdout to a pipe
// asynchronously (to a file or a terminal synchronously): what the pipe cannot take at once waits
// in process.stdout's buffer, and the event loop never blocks on it. Past the bound, lines are
// dropped and counted (cmg_log_lines_dropped_total), so a stalled reader costs bounded memory; a
// reader that is gone (EPIPE) makes every later line a dropped one. pino's own stdout destination
// (sonic-boom) is not used: it queues without bound, and at exit it retries a failed write every
// 100 ms in a blocking loop, which made SIGTERM hang forever on a closed pipe. Nothing is flushed
// at process.exit(): commands/signals.ts waits a bounded time for the queue to drain, then exits.

import { pino, type DestinationStream, type Level, type Logger, type LoggerOptions as PinoOptions } from 'pino';

export type { Logger };

/** How much log output may wait for a slow stdout before lines are dropped. */
export const MAX_QUEUED_LOG_BYTES = 1024 * 1024;

type Output = Pick<NodeJS.WritableStream, 'write' | 'on'> & { readonly writableLength: number };

/** A pino destination in front of a Node stream that bounds what waits for it. */
export class LineSink implements DestinationStream {
  /** Lines not written: the queue was full, or the reader was gone. */
  dropped = 0;
  private broken = false;

  constructor(
    private readonly output: Output,
    private readonly maxQueuedBytes = MAX_QUEUED_LOG_BYTES,
  ) {
    // EPIPE and the like: nobody reads any more. Without a listener the error would crash the process.
    output.on('error', () => {
      this.broken = true;
    });
  }

  /** Bytes written but not yet taken by the reader. */
  get queuedBytes(): number {
    return this.output.writableLength;
  }

  write(line: string): void {
    if (this.broken || this.output.writableLength + line.length > this.maxQueuedBytes) {
      this.dropped += 1;
      return;
    }
    this.output.write(line);
  }
}

let stdoutSink: LineSink | undefined;

/** The process's one sink in front of stdout (shared by every logger that writes there). */
export function stdoutLineSink(): LineSink {
  stdoutSink ??= new LineSink(process.stdout);
  return stdoutSink;
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
