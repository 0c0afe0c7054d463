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

/**
 * pino's isoTime (`,"time":"2026-…Z"`), made once per millisecond: a busy webhook writes several
 * lines in the same millisecond, and Date#toISOString was a tenth of pino's cost per line.
 */
let isoMs = -1;
let isoText = '';
export function isoTime(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoText = `,"time":"${new Date(now).toISOString()}"`;
  }
  return isoText;
}

/** The fields of a line a LineWriter writes: plain values only (no serializer, no redaction applies to them). */
export type LineFields = Record<string, string | number | boolean | undefined>;

/**
 * Writes `logger.info(fields, msg)` without going through pino's per-key rendering: the same line,
 * byte for byte (test/unit/logger-line.test.ts compares them), with the fields rendered by one
 * JSON.stringify. For the one line per admission, where pino's generic path (serializer and
 * redaction lookups, a string escape per key and per value) cost more CPU than the decision.
 * Only for fields that are plain strings, numbers and booleans; a logger with anything that could
 * change a line (mixin, a log formatter, hooks, a message prefix, a nested key, a multistream)
 * gets logger.info itself. The one difference: a lone UTF-16 surrogate in a value is written
 * escaped (\udXXX, valid JSON) where pino writes it raw.
 */
export function lineWriter(logger: Logger, msg: string): (fields: LineFields) => void {
  const s = pino.symbols;
  const internals = logger as unknown as Record<symbol, unknown>;
  const formatters = internals[s.formattersSym] as { log?: unknown } | undefined;
  const hooks = internals[s.hooksSym] as { logMethod?: unknown; streamWrite?: unknown } | undefined;
  const stream = internals[s.streamSym] as (DestinationStream & Record<symbol, unknown>) | undefined;
  const plain =
    stream !== undefined &&
    typeof stream.write === 'function' &&
    stream[s.needsMetadataGsym] !== true &&
    internals[s.mixinSym] == null &&
    formatters?.log === undefined &&
    hooks?.logMethod == null &&
    hooks?.streamWrite == null &&
    // msgPrefixSym is in pino.symbols but not in its type declarations.
    !internals[(s as unknown as Record<string, symbol>).msgPrefixSym!] &&
    !internals[s.nestedKeySym] &&
    internals[s.messageKeySym] === 'msg' &&
    typeof (internals[s.lsCacheSym] as Record<number, string> | undefined)?.[30] === 'string';
  if (!plain) return (fields) => logger.info(fields, msg);
  const tail = `,"msg":${JSON.stringify(msg)}}\n`;
  return (fields) => {
    if (!logger.isLevelEnabled('info')) return;
    const json = JSON.stringify(fields);
    const head = (internals[s.lsCacheSym] as Record<number, string>)[30]! + (internals[s.timeSym] as () => string)() + (internals[s.chindingsSym] as string);
    stream.write(json.length > 2 ? `${head},${json.slice(1, -1)}${tail}` : head + tail);
  };
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const config: PinoOptions = {
    level: options.level ?? 'info',
    timestamp: isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: pino.stdSerializers.err },
    // Nothing here logs headers or bodies; this is a guard against a future "log the request".
    redact: { paths: ['req.headers.authorization', 'headers.authorization'], censor: '[redacted]' },
  };
  return pino(config, options.destination ?? stdoutLineSink());
}
