// lineWriter (src/logger.ts) writes the decision line without pino's per-key rendering; it must
// write exactly what logger.info(fields, msg) writes, or the audit trail changes shape.

import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { createLogger, isoTime, lineWriter, type LineFields } from '../../src/logger.js';

function capture(): { destination: { write(line: string): void }; lines: string[] } {
  const lines: string[] = [];
  return { destination: { write: (line: string) => void lines.push(line) }, lines };
}

/** The time differs between two calls by nature; everything else must not. */
const untimed = (line: string) => line.replace(/"time":"[^"]+"/, '"time":"T"');

const FIELDS: LineFields[] = [
  {
    webhook: 'pod-placement',
    uid: 'b6f9c1d2-1111-2222-3333-444455556666',
    kind: 'Binding',
    namespace: 'default',
    name: 'web-7d4b9c-x2x1z',
    operation: 'CREATE',
    subResource: 'binding',
    dryRun: false,
    user: 'system:kube-scheduler',
    node: undefined,
    decision: 'denied',
    reason: 'cilium-not-ready',
    mode: 'enforce',
    latencyMs: 0.123,
  },
  { name: 'quote " backslash \\ newline \n tab \t bell \u0007 é 日本 🚀 \u2028', n: Number.NaN, big: 1e21, neg: -0, yes: true },
  {},
  { msg: 'a field named like the message', level: 'and the level' },
];

describe('lineWriter', () => {
  it.each(FIELDS.map((fields, i) => [i, fields] as const))('fields #%i: the same line as logger.info, byte for byte', (_i, fields) => {
    const viaPino = capture();
    const viaWriter = capture();
    createLogger({ destination: viaPino.destination }).info(fields, 'admission decision');
    lineWriter(createLogger({ destination: viaWriter.destination }), 'admission decision')(fields);
    expect(viaWriter.lines).toHaveLength(1);
    expect(untimed(viaWriter.lines[0]!)).toBe(untimed(viaPino.lines[0]!));
    expect(viaWriter.lines[0]!.endsWith('}\n')).toBe(true);
    expect(JSON.parse(viaWriter.lines[0]!)).toMatchObject({ msg: 'admission decision' });
  });

  it('writes nothing when info is not enabled, and follows a level changed later', () => {
    const { destination, lines } = capture();
    const logger = createLogger({ level: 'warn', destination });
    const write = lineWriter(logger, 'admission decision');
    write({ a: 'b' });
    expect(lines).toHaveLength(0);
    logger.level = 'info';
    write({ a: 'b' });
    expect(lines).toHaveLength(1);
  });

  it('a logger that could change the line (a mixin) gets logger.info itself', () => {
    const viaWriter = capture();
    const logger = pino({ mixin: () => ({ extra: 1 }) }, viaWriter.destination);
    lineWriter(logger, 'm')({ a: 'b' });
    expect(JSON.parse(viaWriter.lines[0]!)).toMatchObject({ extra: 1, a: 'b', msg: 'm' });
  });

  it("isoTime renders pino's isoTime", () => {
    expect(isoTime()).toMatch(/^,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/);
    expect(pino.stdTimeFunctions.isoTime().length).toBe(isoTime().length);
  });
});

describe('lineWriter with what a client can put in the unvalidated fields (userInfo.username, dryRun)', () => {
  // parseReview checks uid, name, namespace and subResource are strings; userInfo and dryRun are
  // whatever JSON the client sent, and go into the decision line as they are.
  const values: unknown[] = [
    null,
    { nested: { deep: ['a', 1, null, true] }, 'quo"te': 'x' },
    [],
    ['\u2028', '\u2029'],
    'x'.repeat(100_000),
    `${'long \u2028 \u2029 "quoted" \\ '.repeat(10)}\u0000`,
    'short \u2028\u2029',
    1e21,
    -1.5e-7,
    0,
    '',
  ];
  it.each(values.map((value, i) => [i, value] as const))('value #%i: the same line as logger.info', (_i, value) => {
    const fields = JSON.parse(JSON.stringify({ webhook: 'w', user: value, dryRun: value, latencyMs: 1 })) as LineFields;
    const viaPino = capture();
    const viaWriter = capture();
    createLogger({ destination: viaPino.destination }).info(fields, 'admission decision');
    lineWriter(createLogger({ destination: viaWriter.destination }), 'admission decision')(fields);
    expect(untimed(viaWriter.lines[0]!)).toBe(untimed(viaPino.lines[0]!));
  });
});

describe('isoTime', () => {
  it('follows the clock across a millisecond boundary and when it steps backwards', () => {
    vi.useFakeTimers();
    try {
      for (const iso of [
        '2026-12-01T23:59:59.999Z',
        '2026-12-02T00:00:00.000Z',
        '2026-12-02T00:00:00.000Z',
        '2026-12-01T23:00:00.000Z',
        '2026-12-02T00:00:00.001Z',
      ]) {
        vi.setSystemTime(new Date(iso));
        expect(isoTime()).toBe(`,"time":"${iso}"`);
        expect(isoTime()).toBe(pino.stdTimeFunctions.isoTime());
      }
    } finally {
      vi.useRealTimers();
    }
  });
});
