// Shared by the integration tests: AdmissionReview bodies, an HTTP/2 client, a log sink.

import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { Writable } from 'node:stream';
import type { AdmissionRequest } from '../../src/admission/types.js';
import { createLogger, type Logger } from '../../src/logger.js';

let counter = 0;

/** A valid admission.k8s.io/v1 AdmissionReview for a pod CREATE; `request` overrides fields. */
export function review(request: Partial<AdmissionRequest> & Record<string, unknown> = {}): {
  apiVersion: string;
  kind: string;
  request: AdmissionRequest;
} {
  counter += 1;
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `uid-${process.pid}-${counter}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      name: 'nginx',
      namespace: 'default',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts'] },
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'nginx' } },
      dryRun: false,
      ...request,
    },
  };
}

/** A logger whose JSON lines land in `lines` (parsed), for asserting on the log. */
export function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>>; raw: string[] } {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination: sink }), lines, raw };
}

export interface H2Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export function h2Session(url: string, ca: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(url, { ca });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

export function h2Request(
  session: ClientHttp2Session,
  options: { path: string; method?: string; headers?: Record<string, string>; body?: string | Buffer },
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': options.method ?? (options.body === undefined ? 'GET' : 'POST'),
      ':path': options.path,
      ...options.headers,
    });
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (headers = h));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks).toString('utf8') }));
    stream.on('error', reject);
    stream.end(options.body);
  });
}

export function postJson(session: ClientHttp2Session, path: string, body: unknown): Promise<H2Response> {
  return h2Request(session, { path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Polls `check` every `stepMs` until it returns true or `timeoutMs` passes; returns whether it did. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  return check();
}
