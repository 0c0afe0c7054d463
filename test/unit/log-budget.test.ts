import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { LogBudget } from '../../src/server/log-budget.js';

function sink(): { lines: Array<Record<string, unknown>>; logger: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger({ level: 'info', destination }) };
}

describe('LogBudget', () => {
  it('lets the first lines of a window through, counts the rest, and sums them up when the next window opens', () => {
    let now = 1_000;
    const { lines, logger } = sink();
    const budget = new LogBudget(logger, { perWindow: 3, windowMs: 10_000, now: () => now });
    const taken = Array.from({ length: 10 }, () => budget.take());
    expect(taken).toEqual([true, true, true, false, false, false, false, false, false, false]);
    expect(lines).toHaveLength(0);
    now += 9_999;
    expect(budget.take()).toBe(false); // still the same window
    now += 1;
    expect(budget.take()).toBe(true);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', suppressed: 8, windowMs: 10_000 });
    expect(String(lines[0]!.msg)).toContain('8 more client errors in 10 s were not logged');
  });

  it('writes no summary for a window in which nothing was held back', () => {
    let now = 0;
    const { lines, logger } = sink();
    const budget = new LogBudget(logger, { perWindow: 2, windowMs: 1_000, now: () => now });
    budget.take();
    now += 5_000;
    expect(budget.take()).toBe(true);
    expect(lines).toHaveLength(0);
  });
});
