// The one logger: pino JSON on stdout, errors under `err` (pino's serializer keeps the message,
// type and stack; JSON.stringify(err) would print `{}`), levels as labels so a person reading
// `kubectl logs` sees "warn", not 40.

import { pino, type DestinationStream, type Level, type Logger, type LoggerOptions as PinoOptions } from 'pino';

export type { Logger };

export interface LoggerOptions {
  /** pino level name; "silent" turns logging off (tests). Default "info". */
  level?: Level | 'silent';
  /** Where lines go; default stdout. Tests pass a stream to read the lines back. */
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
  // pino's default destination writes stdout synchronously: no lines lost on process.exit().
  return options.destination ? pino(config, options.destination) : pino(config);
}
