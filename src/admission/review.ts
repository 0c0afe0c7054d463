// Parsing the AdmissionReview envelope and rendering the reply. Everything here is pure:
// the HTTP layer hands over the parsed JSON body and gets back a status code and a body.

import type { Decision } from './decision.js';
import type { AdmissionRequest, AdmissionResponse, AdmissionReview } from './types.js';
import { isObject } from '../objects.js';

/** A request the webhook cannot answer as an AdmissionReview: always a 4xx, never a crash. */
export class BadReview extends Error {
  constructor(
    message: string,
    readonly statusCode: number = 400,
  ) {
    super(message);
    this.name = 'BadReview';
  }
}

const OPERATIONS = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);

function requireGroupVersion(value: unknown, field: string, keys: readonly string[]): void {
  if (!isObject(value)) throw new BadReview(`request.${field} must be an object`);
  for (const key of keys) {
    if (typeof value[key] !== 'string') throw new BadReview(`request.${field}.${key} must be a string`);
  }
}

const METADATA_STRINGS = ['name', 'namespace', 'generateName', 'uid', 'resourceVersion'] as const;
const METADATA_MAPS = ['labels', 'annotations'] as const;

/**
 * The object's identity, which every decision and message uses: metadata.name and friends are
 * strings, labels and annotations maps of strings. The API server always sends them so (it decodes
 * into typed structs first); anything else is a hand-made request, answered with a 400 naming the field.
 */
function checkMetadata(object: unknown, field: 'object' | 'oldObject'): void {
  if (object === undefined || object === null) return;
  if (!isObject(object)) throw new BadReview(`request.${field} must be an object`);
  const metadata = object.metadata;
  if (metadata === undefined || metadata === null) return;
  if (!isObject(metadata)) throw new BadReview(`request.${field}.metadata must be an object`);
  for (const key of METADATA_STRINGS) {
    if (metadata[key] !== undefined && metadata[key] !== null && typeof metadata[key] !== 'string') {
      throw new BadReview(`request.${field}.metadata.${key} must be a string`);
    }
  }
  for (const key of METADATA_MAPS) {
    const map = metadata[key];
    if (map === undefined || map === null) continue;
    if (!isObject(map)) throw new BadReview(`request.${field}.metadata.${key} must be a map of strings`);
    for (const [name, value] of Object.entries(map)) {
      if (typeof value !== 'string') throw new BadReview(`request.${field}.metadata.${key}[${JSON.stringify(name.slice(0, 100))}] must be a string`);
    }
  }
}

/** Validates the envelope; returns the request. Throws BadReview with a message a person can act on. */
export function parseReview(body: unknown): AdmissionRequest {
  if (!isObject(body)) throw new BadReview('body must be a JSON AdmissionReview object');
  if (body.apiVersion !== 'admission.k8s.io/v1') {
    throw new BadReview(`unsupported apiVersion ${JSON.stringify(body.apiVersion)}: only admission.k8s.io/v1 is served (set admissionReviewVersions: [v1])`);
  }
  if (body.kind !== 'AdmissionReview') {
    throw new BadReview(`unexpected kind ${JSON.stringify(body.kind)}: expected AdmissionReview`);
  }
  const request = body.request;
  if (!isObject(request)) throw new BadReview('AdmissionReview has no request');
  if (typeof request.uid !== 'string' || request.uid.length === 0) {
    throw new BadReview('request.uid is missing: it must be echoed in the response');
  }
  if (typeof request.operation !== 'string' || !OPERATIONS.has(request.operation)) {
    throw new BadReview(`request.operation ${JSON.stringify(request.operation)} is not a Kubernetes admission operation`);
  }
  requireGroupVersion(request.kind, 'kind', ['group', 'version', 'kind']);
  requireGroupVersion(request.resource, 'resource', ['group', 'version', 'resource']);
  for (const field of ['name', 'namespace', 'subResource'] as const) {
    if (request[field] !== undefined && typeof request[field] !== 'string') {
      throw new BadReview(`request.${field} must be a string`);
    }
  }
  checkMetadata(request.object, 'object');
  checkMetadata(request.oldObject, 'oldObject');
  return request as unknown as AdmissionRequest;
}

// The API server stores each audit annotation under "<webhook name>/<key>" and drops keys that
// are not valid qualified names, so keys are checked here rather than lost silently there.
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
export function isValidAuditKey(key: string): boolean {
  return key.length > 0 && key.length <= 63 && QUALIFIED_NAME_PART.test(key);
}

// kubectl prints each warning on a line of its own; the API server asks for short ones.
export const MAX_WARNING_LENGTH = 120;
function shortWarning(text: string): string {
  return text.length <= MAX_WARNING_LENGTH ? text : `${text.slice(0, MAX_WARNING_LENGTH - 1)}…`;
}

export function toResponse(uid: string, decision: Decision): AdmissionResponse {
  const response: AdmissionResponse = { uid, allowed: decision.allowed };
  if (!decision.allowed) {
    const code = decision.code ?? 403;
    response.status = {
      code,
      reason: code === 403 ? 'Forbidden' : code >= 500 ? 'InternalError' : 'BadRequest',
      message: decision.message ?? decision.reason,
    };
  }
  if (decision.allowed && decision.patch && decision.patch.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(decision.patch)).toString('base64');
  }
  if (decision.warnings && decision.warnings.length > 0) {
    response.warnings = decision.warnings.map(shortWarning);
  }
  const audit = Object.entries(decision.audit ?? {}).filter(([key]) => isValidAuditKey(key));
  if (audit.length > 0) response.auditAnnotations = Object.fromEntries(audit);
  return response;
}

export function toReview(uid: string, decision: Decision): AdmissionReview {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: toResponse(uid, decision) };
}
