// The pure parts of the answers to hostile input: the JSON body parser, the envelope's metadata
// check, and how a serving pair is judged. The same classes end to end: test/integration/
// hostile-input.test.ts and tls-reload.test.ts.

import { describe, expect, it } from 'vitest';
import { BadReview, parseReview } from '../../src/admission/review.js';
import { generateCa, generateServing } from '../../src/certs/x509.js';
import { parseJsonBody } from '../../src/server/app.js';
import { checkUsable, PairProblem, validatePair } from '../../src/certs/pair.js';

const PROTO = /"__proto__" or "constructor\.prototype" key/;

describe('parseJsonBody', () => {
  it('parses JSON', () => {
    expect(parseJsonBody('{"a":[1,{"b":null}],"constructor":"x"}')).toEqual({ a: [1, { b: null }], constructor: 'x' });
  });

  it('refuses __proto__ anywhere, also written with escapes, and constructor.prototype', () => {
    expect(() => parseJsonBody('{"__proto__":{"x":1}}')).toThrow(PROTO);
    expect(() => parseJsonBody('{"a":[{"b":{"\\u005f_proto__":1}}]}')).toThrow(PROTO);
    expect(() => parseJsonBody('{"a":{"constructor":{"prototype":{}}}}')).toThrow(PROTO);
    expect(parseJsonBody('{"a":{"constructor":{"name":"x"}}}')).toEqual({ a: { constructor: { name: 'x' } } });
  });

  it('says where invalid JSON broke and that an empty body is empty, with status 400', () => {
    for (const body of ['', '{"a":', 'not json']) {
      try {
        parseJsonBody(body);
        expect.unreachable();
      } catch (err) {
        expect((err as { statusCode?: number }).statusCode).toBe(400);
        expect((err as Error).message).toMatch(body === '' ? /request body is empty/ : /request body is not valid JSON/);
      }
    }
  });

  it('walks 100,000 levels of nesting without overflowing the stack', () => {
    const depth = 100_000;
    const body = `${'['.repeat(depth)}{"__proto__":1}${']'.repeat(depth)}`;
    expect(() => parseJsonBody(body)).toThrow(PROTO);
  });
});

describe("parseReview: the object's metadata", () => {
  const envelope = (object: unknown) => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u',
      operation: 'CREATE',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      object,
    },
  });
  const problem = (object: unknown): string | undefined => {
    try {
      parseReview(envelope(object));
      return undefined;
    } catch (err) {
      expect(err).toBeInstanceOf(BadReview);
      return (err as Error).message;
    }
  };

  it('accepts what the API server sends, including null maps and a null object', () => {
    expect(problem({ metadata: { name: 'a', namespace: 'b', labels: { x: 'y' }, annotations: null } })).toBeUndefined();
    expect(problem(null)).toBeUndefined();
    expect(problem({ spec: {} })).toBeUndefined();
  });

  it('names the field that has the wrong type', () => {
    expect(problem({ metadata: { name: { a: 1 } } })).toBe('request.object.metadata.name must be a string');
    expect(problem({ metadata: { generateName: 7 } })).toBe('request.object.metadata.generateName must be a string');
    expect(problem({ metadata: { labels: ['a'] } })).toBe('request.object.metadata.labels must be a map of strings');
    expect(problem({ metadata: { annotations: { 'a/b': true } } })).toBe('request.object.metadata.annotations["a/b"] must be a string');
    expect(problem({ metadata: 'x' })).toBe('request.object.metadata must be an object');
    expect(problem('x')).toBe('request.object must be an object');
  });
});

describe('judging a serving pair', () => {
  const DAY = 24 * 60 * 60 * 1000;
  const now = new Date('2030-06-01T00:00:00Z');

  it('valid now and covering the names: usable; otherwise the reason', async () => {
    const ca = await generateCa({ notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + 100 * DAY) });
    const pairFor = async (from: number, to: number, sans = ['localhost', '127.0.0.1']) =>
      validatePair(
        ...(Object.values(await generateServing(ca, sans, 'x', { notBefore: new Date(now.getTime() + from), notAfter: new Date(now.getTime() + to) })) as [
          string,
          string,
        ]),
      );
    const reasonOf = (fn: () => void): string | undefined => {
      try {
        fn();
        return undefined;
      } catch (err) {
        return (err as PairProblem).reason;
      }
    };
    const good = await pairFor(-DAY, DAY);
    expect(reasonOf(() => checkUsable(good, now, ['localhost', '127.0.0.1']))).toBeUndefined();
    expect(good.covers('::1')).toBe(false);
    expect(reasonOf(() => checkUsable(good, now, ['::1']))).toBe('names');
    const expired = await pairFor(-2 * DAY, -DAY);
    const future = await pairFor(DAY, 2 * DAY);
    expect(reasonOf(() => checkUsable(expired, now, []))).toBe('expired');
    expect(reasonOf(() => checkUsable(future, now, []))).toBe('not_yet_valid');
    const other = await generateServing(ca, ['localhost'], 'y', { notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + DAY) });
    expect(reasonOf(() => validatePair(good.cert, other.key))).toBe('key_mismatch');
    expect(reasonOf(() => validatePair('nonsense', other.key, { certFile: '/x/tls.crt' }))).toBe('invalid');
  });
});
