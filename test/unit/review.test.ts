import { describe, expect, it } from 'vitest';
import { allowed, denied, patched } from '../../src/admission/decision.js';
import { BadReview, MAX_WARNING_LENGTH, isValidAuditKey, parseReview, toResponse, toReview } from '../../src/admission/review.js';

// What kube-apiserver 1.3x sends for `kubectl apply` of a DaemonSet (object trimmed).
function realReview(): Record<string, unknown> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: { group: 'apps', version: 'v1', kind: 'DaemonSet' },
      resource: { group: 'apps', version: 'v1', resource: 'daemonsets' },
      requestKind: { group: 'apps', version: 'v1', kind: 'DaemonSet' },
      requestResource: { group: 'apps', version: 'v1', resource: 'daemonsets' },
      name: 'aws-node',
      namespace: 'kube-system',
      operation: 'CREATE',
      userInfo: { username: 'kubernetes-admin', uid: '1', groups: ['system:masters', 'system:authenticated'] },
      object: { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'aws-node', namespace: 'kube-system' } },
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions', fieldManager: 'kubectl-client-side-apply' },
    },
  };
}

/** A copy of the real review with `edit` applied to it (and to its request). */
function mutated(edit: (review: Record<string, unknown>, request: Record<string, unknown>) => void): unknown {
  const review = structuredClone(realReview());
  edit(review, review.request as Record<string, unknown>);
  return review;
}

function rejection(body: unknown): BadReview {
  try {
    parseReview(body);
  } catch (err) {
    expect(err).toBeInstanceOf(BadReview);
    return err as BadReview;
  }
  throw new Error('parseReview accepted the body');
}

describe('parseReview', () => {
  it('accepts a real AdmissionReview and returns its request untouched', () => {
    const review = realReview();
    const request = parseReview(review);
    expect(request).toBe(review.request);
    expect(request.uid).toBe('705ab4f5-6393-11e8-b7cc-42010a800002');
    expect(request.kind.kind).toBe('DaemonSet');
    expect(request.operation).toBe('CREATE');
  });

  it('accepts a request without name, namespace and subResource (cluster-scoped, generateName)', () => {
    const body = mutated((_, r) => {
      delete r.name;
      delete r.namespace;
    });
    expect(parseReview(body).name).toBeUndefined();
  });

  it.each(['CREATE', 'UPDATE', 'DELETE', 'CONNECT'])('accepts operation %s', (operation) => {
    expect(parseReview(mutated((_, r) => (r.operation = operation))).operation).toBe(operation);
  });

  it.each<[string, unknown, RegExp]>([
    ['null', null, /JSON AdmissionReview object/],
    ['an array', [realReview()], /JSON AdmissionReview object/],
    ['a string', 'AdmissionReview', /JSON AdmissionReview object/],
    [
      'admission.k8s.io/v1beta1',
      mutated((b) => (b.apiVersion = 'admission.k8s.io/v1beta1')),
      /apiVersion "admission\.k8s\.io\/v1beta1".*admission\.k8s\.io\/v1/,
    ],
    ['no apiVersion', mutated((b) => delete b.apiVersion), /unsupported apiVersion undefined/],
    ['another kind', mutated((b) => (b.kind = 'ConversionReview')), /kind "ConversionReview".*expected AdmissionReview/],
    ['no request', mutated((b) => delete b.request), /has no request/],
    ['a request that is not an object', mutated((b) => (b.request = 'x')), /has no request/],
    ['no uid', mutated((_, r) => delete r.uid), /request\.uid is missing/],
    ['an empty uid', mutated((_, r) => (r.uid = '')), /request\.uid is missing/],
    ['a numeric uid', mutated((_, r) => (r.uid = 42)), /request\.uid is missing/],
    ['no operation', mutated((_, r) => delete r.operation), /request\.operation undefined/],
    ['an unknown operation', mutated((_, r) => (r.operation = 'PATCH')), /request\.operation "PATCH"/],
    ['no kind', mutated((_, r) => delete r.kind), /request\.kind must be an object/],
    ['a kind without version', mutated((_, r) => (r.kind = { group: 'apps', kind: 'DaemonSet' })), /request\.kind\.version must be a string/],
    ['no resource', mutated((_, r) => delete r.resource), /request\.resource must be an object/],
    ['a resource without resource', mutated((_, r) => (r.resource = { group: 'apps', version: 'v1' })), /request\.resource\.resource must be a string/],
    ['a numeric name', mutated((_, r) => (r.name = 7)), /request\.name must be a string/],
    ['an object namespace', mutated((_, r) => (r.namespace = {})), /request\.namespace must be a string/],
    ['a boolean subResource', mutated((_, r) => (r.subResource = true)), /request\.subResource must be a string/],
  ])('rejects %s with a 400 naming the problem', (_, body, message) => {
    const err = rejection(body);
    expect(err.statusCode).toBe(400);
    expect(err.message).toMatch(message);
  });
});

describe('toResponse', () => {
  const uid = 'c0ffee';

  it('echoes the uid for every kind of decision', () => {
    for (const decision of [allowed('ok'), denied('no', 'not here'), patched('affinity', [{ op: 'add', path: '/x', value: 1 }])]) {
      expect(toResponse(uid, decision).uid).toBe(uid);
    }
  });

  it('renders an allow as just uid and allowed', () => {
    expect(toResponse(uid, allowed('ok'))).toEqual({ uid, allowed: true });
  });

  it('renders a denial as 403 Forbidden with the message', () => {
    expect(toResponse(uid, denied('cilium-not-ready', 'Cilium is not ready on node n1'))).toEqual({
      uid,
      allowed: false,
      status: { code: 403, reason: 'Forbidden', message: 'Cilium is not ready on node n1' },
    });
  });

  it('falls back to the reason when a denial has no message, and maps other codes', () => {
    expect(toResponse(uid, { allowed: false, reason: 'bare' }).status).toEqual({ code: 403, reason: 'Forbidden', message: 'bare' });
    expect(toResponse(uid, { allowed: false, reason: 'r', code: 400 }).status?.reason).toBe('BadRequest');
    expect(toResponse(uid, { allowed: false, reason: 'r', code: 500 }).status?.reason).toBe('InternalError');
  });

  it('base64-encodes a non-empty patch with patchType JSONPatch', () => {
    const patch = [{ op: 'add' as const, path: '/spec/template/spec/affinity', value: { nodeAffinity: {} } }];
    const response = toResponse(uid, patched('affinity', patch));
    expect(response.patchType).toBe('JSONPatch');
    expect(JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString('utf8'))).toEqual(patch);
  });

  it('sends no patch and no patchType for an empty patch or a denial', () => {
    const empty = toResponse(uid, patched('nothing', []));
    expect(empty).not.toHaveProperty('patch');
    expect(empty).not.toHaveProperty('patchType');
    const denial = toResponse(uid, { ...denied('no', 'no'), patch: [{ op: 'add', path: '/x', value: 1 }] });
    expect(denial).not.toHaveProperty('patch');
    expect(denial).not.toHaveProperty('patchType');
  });

  it(`truncates warnings to ${MAX_WARNING_LENGTH} characters and keeps short ones as they are`, () => {
    const long = 'w'.repeat(500);
    const response = toResponse(uid, allowed('ok', { warnings: ['short', long, 'x'.repeat(MAX_WARNING_LENGTH)] }));
    expect(response.warnings?.[0]).toBe('short');
    expect(response.warnings?.[1]).toHaveLength(MAX_WARNING_LENGTH);
    expect(response.warnings?.[1]?.endsWith('…')).toBe(true);
    expect(response.warnings?.[2]).toBe('x'.repeat(MAX_WARNING_LENGTH));
    expect(toResponse(uid, allowed('ok', { warnings: [] }))).not.toHaveProperty('warnings');
  });

  it('keeps valid audit keys and drops invalid ones', () => {
    const response = toResponse(
      uid,
      allowed('ok', {
        audit: {
          decision: 'allowed',
          'target-node': 'n1',
          'role.v1_x': 'cilium',
          '-leading-dash': 'x',
          'has/slash': 'x',
          'has space': 'x',
          '': 'x',
          ['k'.repeat(64)]: 'x',
        },
      }),
    );
    expect(response.auditAnnotations).toEqual({ decision: 'allowed', 'target-node': 'n1', 'role.v1_x': 'cilium' });
  });

  it('omits auditAnnotations when no key survives', () => {
    expect(toResponse(uid, allowed('ok', { audit: { 'bad key': 'x' } }))).not.toHaveProperty('auditAnnotations');
  });

  it.each([
    ['a', true],
    ['k'.repeat(63), true],
    ['k'.repeat(64), false],
    ['trailing-', false],
    ['UPPER_case.ok', true],
  ])('isValidAuditKey(%j) is %s', (key, valid) => {
    expect(isValidAuditKey(key)).toBe(valid);
  });
});

describe('toReview', () => {
  it('wraps the response in an admission.k8s.io/v1 AdmissionReview', () => {
    expect(toReview('u', allowed('ok'))).toEqual({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: 'u', allowed: true },
    });
  });
});
