// One way every long-running command ends: SIGTERM or SIGINT runs its cleanups, then exits 0;
// a second signal exits 1 at once. The handler is installed before the slow start-up steps
// (informers, certificate bootstrap, listen), so a signal during start-up still stops what was
// started and exits 0 instead of killing the process half-way.

import type { Logger } from '../logger.js';
import { exitWhenFlushed } from './output.js';

/** How long an exit waits for stdout and stderr to take the last log lines (a stalled reader must not hold it). */
export const LOG_FLUSH_MS = 2_000;
/**
 * The whole shutdown's bound: the server drains for at most 20 s (server/start.ts), then caches
 * stop and logs flush; past this the process exits 1 regardless. Inside Kubernetes' default 30 s
 * terminationGracePeriodSeconds.
 */
export const SHUTDOWN_DEADLINE_MS = 25_000;

/** Thrown out of a start-up step when a shutdown signal came: start-up stops there, quietly. */
export class ShuttingDown extends Error {
  constructor() {
    super('shutting down');
  }
}

type Cleanup = () => void | Promise<void>;

export interface Shutdown {
  /** True once a signal came. */
  readonly stopping: boolean;
  /** Registers a cleanup; on shutdown they run newest first (the listener before the informers it reads). */
  defer(cleanup: Cleanup): void;
  /**
   * Awaits a start-up step. `cleanupOf` names how to undo its result, and is registered as soon as
   * the step resolves, even when that happens after the signal (the shutdown waits a bounded time
   * for running steps). Throws ShuttingDown when a signal came before or during the step.
   */
  step<T>(promise: Promise<T>, cleanupOf?: (value: T) => Cleanup): Promise<T>;
  /** Start-up failed: runs the cleanups now and removes the signal handlers (the caller reports the error). */
  abort(): Promise<void>;
  /** What a signal does; exposed for tests. */
  trigger(signal: NodeJS.Signals): void;
}

export interface ShutdownOptions {
  /** Default: process.exit once stdout and stderr are flushed, waiting at most LOG_FLUSH_MS. */
  exit?: (code: number) => void;
  /** Default SHUTDOWN_DEADLINE_MS. */
  deadlineMs?: number;
  /** How long a shutdown waits for running start-up steps to settle. Default 5 s. */
  stepGraceMs?: number;
  /** Default SIGTERM and SIGINT; [] installs none (tests call trigger). */
  signals?: readonly NodeJS.Signals[];
}

export function onShutdownSignal(log: Logger, options: ShutdownOptions = {}): Shutdown {
  const exit = options.exit ?? ((code: number) => void exitWhenFlushed(code, process, (c) => process.exit(c), LOG_FLUSH_MS));
  const signals = options.signals ?? (['SIGTERM', 'SIGINT'] as const);
  const cleanups: Cleanup[] = [];
  const running = new Set<Promise<unknown>>();
  let stopping = false;
  let failed = false;

  const runCleanups = async (): Promise<void> => {
    for (let cleanup = cleanups.pop(); cleanup; cleanup = cleanups.pop()) {
      try {
        await cleanup();
      } catch (err) {
        failed = true;
        log.error({ err }, 'shutdown step failed');
      }
    }
  };

  const trigger = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without waiting');
      exit(1);
      return;
    }
    stopping = true;
    log.info({ signal, ...(running.size > 0 ? { during: 'start-up' } : {}) }, 'shutting down');
    // Whatever a cleanup or stdout does, the process ends within the deadline.
    const deadlineMs = options.deadlineMs ?? SHUTDOWN_DEADLINE_MS;
    const watchdog = setTimeout(() => {
      log.error({ deadlineMs }, 'shutdown did not finish within its deadline: exiting');
      exit(1);
    }, deadlineMs).unref();
    void (async () => {
      await runCleanups();
      if (running.size > 0) {
        // A step still starting (listening, bootstrapping certificates): let it settle, bounded, so
        // what it opened is closed too rather than cut off by the exit.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled([...running]),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, options.stepGraceMs ?? 5_000);
          }),
        ]);
        clearTimeout(timer);
        await runCleanups();
      }
      clearTimeout(watchdog);
      exit(failed ? 1 : 0);
    })();
  };

  const handler = (signal: NodeJS.Signals): void => trigger(signal);
  for (const signal of signals) process.on(signal, handler);
  const removeHandlers = (): void => {
    for (const signal of signals) process.off(signal, handler);
  };

  return {
    get stopping() {
      return stopping;
    },
    defer: (cleanup) => void cleanups.push(cleanup),
    async step<T>(promise: Promise<T>, cleanupOf?: (value: T) => Cleanup): Promise<T> {
      const tracked = promise.then((value) => {
        if (cleanupOf) cleanups.push(cleanupOf(value));
        return value;
      });
      running.add(tracked);
      try {
        const value = await tracked;
        if (stopping) throw new ShuttingDown();
        return value;
      } catch (err) {
        throw stopping ? new ShuttingDown() : err;
      } finally {
        running.delete(tracked);
      }
    },
    async abort() {
      removeHandlers();
      await runCleanups();
    },
    trigger,
  };
}
