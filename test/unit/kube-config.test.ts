// src/cluster/kube-config.ts (where the API server is and how to authenticate, as client-go reads
// it) and raw-api.ts's request() against a local HTTPS server with a test CA: merge order of
// $KUBECONFIG, relative paths, -data vs file fields, in-cluster credentials, the token file re-read
// after a minute (injected clock), the client-node fallback for an exec user, and the errors.

import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateCa, generateServing, type Pair } from '../../src/certs/x509.js';
import {
  accessFromDocument,
  CachedFileToken,
  inClusterAccess,
  KubeConfigError,
  loadKubeAccess,
  TOKEN_FILE_LEEWAY_MS,
  TOKEN_FILE_PERIOD_MS,
  type KubeAccess,
} from '../../src/cluster/kube-config.js';
import { ApiStatusError, request } from '../../src/cluster/raw-api.js';
import { httpStatus, isAbort, isNotFound } from '../../src/cluster/kube-client.js';
import { listenOnLoopback, closeNow } from '../support/loopback.js';

const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) };
let ca: Pair;
let serving: Pair;
let client: Pair;
let server: Server;
let url: string;
/** What the server saw of each request. */
let seen: Array<{ method: string; path: string; auth: string | undefined; contentType: string | undefined; body: string; peerCert: string | undefined }>;
let answer: (req: IncomingMessage, res: ServerResponse, body: string) => void;
let dir: string;

const json = (res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(code, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

beforeAll(async () => {
  ca = await generateCa(validity);
  serving = await generateServing(ca, ['127.0.0.1', 'localhost'], 'api', validity);
  client = await generateServing(ca, ['client'], 'client', validity);
  // requestCert without verification: the test reads which certificate the client presented.
  server = createServer({ cert: serving.cert, key: serving.key, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
      seen.push({
        method: req.method ?? '',
        path: req.url ?? '',
        auth: req.headers.authorization,
        contentType: req.headers['content-type'],
        body,
        peerCert: peer && 'fingerprint256' in peer && peer.fingerprint256 ? peer.fingerprint256 : undefined,
      });
      answer(req, res, body);
    });
  });
  url = await listenOnLoopback(server);
});

afterAll(async () => {
  await closeNow(server);
});

beforeEach(async () => {
  seen = [];
  answer = (_req, res) => json(res, 200, { kind: 'Pod', metadata: { name: 'web' } });
  dir = await mkdtemp(join(tmpdir(), 'cmg-kubeconfig-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const b64 = (text: string) => Buffer.from(text).toString('base64');

/** A kubeconfig document with one context. */
function kubeconfig(
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
  names: { context?: string; cluster?: string; user?: string; current?: string | null } = {},
): Record<string, unknown> {
  const context = names.context ?? 'ctx';
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: names.cluster ?? 'c', cluster }],
    users: [{ name: names.user ?? 'u', user }],
    contexts: [{ name: context, context: { cluster: names.cluster ?? 'c', user: names.user ?? 'u' } }],
    ...(names.current === null ? {} : { 'current-context': names.current ?? context }),
  };
}

const get = (kc: KubeAccess) => request<{ metadata: { name: string } }>(kc, { path: '/api/v1/namespaces/default/pods/web', timeoutMs: 5_000 });

describe('kubeconfig: which file, context, cluster and user', () => {
  it('$KUBECONFIG: the first file to name an entry or set current-context wins; missing files are skipped', async () => {
    const first = join(dir, 'first.yaml');
    const second = join(dir, 'second.yaml');
    // The first names cluster "c" (the real server) and user "u" (token one); the second also
    // names both (ignored as a whole, even its fields the first left unset) and sets another
    // current-context, which loses to the first file's.
    await writeFile(
      first,
      JSON.stringify({
        clusters: [{ name: 'c', cluster: { server: url, 'certificate-authority-data': b64(ca.cert) } }],
        users: [{ name: 'u', user: { token: 'one' } }],
        'current-context': 'ctx',
      }),
    );
    await writeFile(
      second,
      JSON.stringify({
        clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'u', user: { token: 'two', username: 'x' } }],
        contexts: [
          { name: 'ctx', context: { cluster: 'c', user: 'u' } },
          { name: 'other', context: { cluster: 'c', user: 'u' } },
        ],
        'current-context': 'other',
      }),
    );
    const kc = loadKubeAccess({}, { env: { KUBECONFIG: [join(dir, 'missing.yaml'), first, second, first].join(delimiter) } })!;
    expect(kc.server).toBe(url);
    expect(kc.describe).toContain('(context ctx)');
    expect((await get(kc)).metadata.name).toBe('web');
    expect(seen[0]?.auth).toBe('Bearer one');
  });

  it('--kubeconfig wins over $KUBECONFIG, which wins over in-cluster credentials; nothing configured → undefined', async () => {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    await writeFile(a, JSON.stringify(kubeconfig({ server: 'https://127.0.0.1:1' }, {})));
    await writeFile(b, JSON.stringify(kubeconfig({ server: 'https://127.0.0.1:2' }, {})));
    const env = { KUBECONFIG: b, KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
    expect(loadKubeAccess({ kubeconfig: a }, { env })?.server).toBe('https://127.0.0.1:1');
    expect(loadKubeAccess({}, { env })?.server).toBe('https://127.0.0.1:2');
    expect(loadKubeAccess({}, { env: {} })).toBeUndefined();
  });

  it('relative certificate paths resolve against the kubeconfig file’s directory, not the working directory', async () => {
    await mkdir(join(dir, 'sub', 'pki'), { recursive: true });
    await writeFile(join(dir, 'sub', 'pki', 'ca.crt'), ca.cert);
    await writeFile(join(dir, 'sub', 'pki', 'client.crt'), client.cert);
    await writeFile(join(dir, 'sub', 'pki', 'client.key'), client.key);
    const file = join(dir, 'sub', 'config');
    await writeFile(
      file,
      JSON.stringify(
        kubeconfig({ server: url, 'certificate-authority': 'pki/ca.crt' }, { 'client-certificate': 'pki/client.crt', 'client-key': 'pki/client.key' }),
      ),
    );
    const kc = loadKubeAccess({ kubeconfig: file }, { env: {} })!;
    expect((await get(kc)).metadata.name).toBe('web');
    expect(seen[0]?.peerCert).toBe(new X509Certificate(client.cert).fingerprint256); // the client certificate was presented
    expect(seen[0]?.auth).toBeUndefined();
  });

  it('-data wins over the file field (client-go: "-data will override"): a missing file is then not read', async () => {
    const kc = accessFromDocument(
      kubeconfig(
        { server: url, 'certificate-authority': '/nonexistent/ca.crt', 'certificate-authority-data': b64(ca.cert) },
        { 'client-certificate': '/nonexistent/c.crt', 'client-certificate-data': b64(client.cert), 'client-key-data': b64(client.key) },
      ),
    );
    expect((await get(kc)).metadata.name).toBe('web');
    expect(seen[0]?.peerCert).toBe(new X509Certificate(client.cert).fingerprint256);
  });

  it('without the CA the server is not trusted; insecure-skip-tls-verify skips the check; tls-server-name is the name checked', async () => {
    await expect(get(accessFromDocument(kubeconfig({ server: url }, {})))).rejects.toThrow(/certificate/);
    expect((await get(accessFromDocument(kubeconfig({ server: url, 'insecure-skip-tls-verify': true }, {})))).metadata.name).toBe('web');
    // The serving certificate names 127.0.0.1 and localhost: another name fails, its own name passes.
    const named = (name: string) => accessFromDocument(kubeconfig({ server: url, 'certificate-authority-data': b64(ca.cert), 'tls-server-name': name }, {}));
    await expect(get(named('elsewhere.example'))).rejects.toThrow(/elsewhere\.example/);
    expect((await get(named('localhost'))).metadata.name).toBe('web');
  });

  it('username and password: basic auth', async () => {
    await get(accessFromDocument(kubeconfig({ server: url, 'certificate-authority-data': b64(ca.cert) }, { username: 'admin', password: 's3cret' })));
    expect(seen[0]?.auth).toBe(`Basic ${b64('admin:s3cret')}`);
  });

  it('a user with exec falls back to client-node’s KubeConfig, loaded on first use, which runs the plugin', async () => {
    const plugin = join(dir, 'plugin.mjs');
    await writeFile(
      plugin,
      `console.log(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } }));\n`,
    );
    const kc = accessFromDocument(
      kubeconfig(
        { server: url, 'certificate-authority-data': b64(ca.cert) },
        { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [plugin], interactiveMode: 'Never' } },
      ),
    );
    expect((await get(kc)).metadata.name).toBe('web');
    expect(seen[0]?.auth).toBe('Bearer from-exec');
  });
  it('auth-provider, impersonation and proxy-url go through client-node too; plain credentials do not', () => {
    const through = (cluster: Record<string, unknown>, user: Record<string, unknown>) =>
      accessFromDocument(kubeconfig({ server: url, ...cluster }, user)).describe.endsWith('through client-node');
    expect(through({}, { 'auth-provider': { name: 'oidc', config: {} } })).toBe(true);
    expect(through({}, { as: 'someone', token: 't' })).toBe(true);
    expect(through({ 'proxy-url': 'http://127.0.0.1:3128' }, { token: 't' })).toBe(true);
    expect(through({}, { token: 't' })).toBe(false);
    expect(through({ 'insecure-skip-tls-verify': true }, { username: 'a', password: 'b' })).toBe(false);
  });
});

describe('kubeconfig: clear errors', () => {
  it('names a missing --kubeconfig file, and $KUBECONFIG files none of which exist', () => {
    expect(() => loadKubeAccess({ kubeconfig: join(dir, 'nope') }, { env: {} })).toThrow(new KubeConfigError(`kubeconfig ${join(dir, 'nope')} does not exist`));
    expect(() => loadKubeAccess({}, { env: { KUBECONFIG: join(dir, 'x') } })).toThrow(/none of the kubeconfig files in \$KUBECONFIG exists: .*\/x/);
  });

  it('names a missing current-context, an unknown context, cluster or user, and a cluster without a server', () => {
    expect(() => accessFromDocument(kubeconfig({ server: url }, {}, { current: null }))).toThrow(/sets no current-context/);
    expect(() => accessFromDocument(kubeconfig({ server: url }, {}, { current: 'prod' }))).toThrow(/current-context "prod" is not among its contexts/);
    const doc = kubeconfig({ server: url }, {});
    (doc.contexts as Array<{ context: { cluster: string } }>)[0]!.context.cluster = 'gone';
    expect(() => accessFromDocument(doc)).toThrow(/context "ctx" names cluster "gone", which is not among its clusters/);
    const noUser = kubeconfig({ server: url }, {});
    (noUser.contexts as Array<{ context: { user: string } }>)[0]!.context.user = 'nobody';
    expect(() => accessFromDocument(noUser)).toThrow(/names user "nobody", which is not among its users/);
    expect(() => accessFromDocument(kubeconfig({}, {}))).toThrow(/cluster "c" has no server/);
  });

  it('names the file and the field of an unreadable certificate, key or token file', () => {
    const file = join(dir, 'config');
    expect(() => accessFromDocument(kubeconfig({ server: url, 'certificate-authority': 'missing-ca.crt' }, {}), { file })).toThrow(
      `kubeconfig ${file}: cluster "c": cannot read certificate-authority ${join(dir, 'missing-ca.crt')}`,
    );
    expect(() =>
      accessFromDocument(kubeconfig({ server: url }, { 'client-key': '/nonexistent/k.key', 'client-certificate-data': b64(client.cert) }), { file }),
    ).toThrow(`kubeconfig ${file}: user "u": cannot read client-key /nonexistent/k.key`);
    expect(() => accessFromDocument(kubeconfig({ server: url }, { tokenFile: 'no-token' }), { file })).toThrow(
      `cannot read the token file ${join(dir, 'no-token')}`,
    );
  });

  it('says when a file is not YAML or not a kubeconfig', async () => {
    const file = join(dir, 'bad');
    await writeFile(file, 'clusters: [unclosed');
    expect(() => loadKubeAccess({ kubeconfig: file }, { env: {} })).toThrow(new RegExp(`kubeconfig ${file} is not valid YAML`));
    await writeFile(file, '- just\n- a list\n');
    expect(() => loadKubeAccess({ kubeconfig: file }, { env: {} })).toThrow(/is not a kubeconfig/);
  });
});

describe('in-cluster credentials', () => {
  async function serviceAccount(token: string): Promise<string> {
    const sa = join(dir, 'serviceaccount');
    await mkdir(sa, { recursive: true });
    await writeFile(join(sa, 'token'), `${token}\n`);
    await writeFile(join(sa, 'ca.crt'), ca.cert);
    return sa;
  }

  it('https://host:port with the service account’s CA and token; an IPv6 host in brackets', async () => {
    const sa = await serviceAccount('sa-token');
    const port = new URL(url).port;
    const kc = inClusterAccess({ env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port }, serviceAccountDir: sa });
    expect(kc.server).toBe(url);
    expect((await get(kc)).metadata.name).toBe('web');
    expect(seen[0]?.auth).toBe('Bearer sa-token'); // trimmed, as client-go trims it
    expect(inClusterAccess({ env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, serviceAccountDir: sa }).server).toBe(
      'https://[fd00::1]:443',
    );
  });

  it('is an error naming what is missing: the port, the token file, the CA', async () => {
    expect(() => inClusterAccess({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1' } })).toThrow(/KUBERNETES_SERVICE_PORT/);
    const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
    expect(() => inClusterAccess({ env, serviceAccountDir: join(dir, 'none') })).toThrow(`cannot read the token file ${join(dir, 'none', 'token')}`);
    const sa = await serviceAccount('t');
    await unlink(join(sa, 'ca.crt'));
    expect(() => inClusterAccess({ env, serviceAccountDir: sa })).toThrow(`cannot read the service account's CA ${join(sa, 'ca.crt')}`);
  });

  it('re-reads the rotating token once it is a minute old (less the 10 s leeway), keeps the last one if a re-read fails, and after a 401', async () => {
    const sa = await serviceAccount('first');
    let now = 1_000_000;
    const port = new URL(url).port;
    const kc = inClusterAccess({ env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port }, serviceAccountDir: sa, now: () => now });
    const auth = async () => (await kc.prepare()).headers.Authorization;
    expect(await auth()).toBe('Bearer first');
    await writeFile(join(sa, 'token'), 'second');
    now += TOKEN_FILE_PERIOD_MS - TOKEN_FILE_LEEWAY_MS - 1;
    expect(await auth()).toBe('Bearer first'); // not due yet: no read
    now += 1;
    expect(await auth()).toBe('Bearer second');
    await unlink(join(sa, 'token'));
    now += TOKEN_FILE_PERIOD_MS;
    expect(await auth()).toBe('Bearer second'); // the file is gone for now: the last token is kept
    await writeFile(join(sa, 'token'), 'third');
    expect(await auth()).toBe('Bearer third'); // a failed re-read does not count as a read: tried again at once
  });

  it('a 401 drops a token read before the request: the next request reads the file again, though not due', async () => {
    const sa = await serviceAccount('old');
    let now = 5_000_000;
    const kc = inClusterAccess({
      env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(url).port },
      serviceAccountDir: sa,
      now: () => now,
    });
    await writeFile(join(sa, 'token'), 'new');
    now += 1_000;
    answer = (_req, res) => json(res, 401, { kind: 'Status', code: 401, reason: 'Unauthorized', message: 'Unauthorized' });
    await expect(get(kc)).rejects.toMatchObject({ statusCode: 401 });
    expect(seen.at(-1)?.auth).toBe('Bearer old');
    answer = (_req, res) => json(res, 200, { kind: 'Pod', metadata: { name: 'web' } });
    await get(kc);
    expect(seen.at(-1)?.auth).toBe('Bearer new');
    // Without the 401 it would still be 'old' (not due for 49 s more): see the test above.
  });

  it('CachedFileToken: an empty file is no token', async () => {
    const file = join(dir, 'empty');
    await writeFile(file, '  \n');
    expect(() => new CachedFileToken(file).get()).toThrow(/the file is empty/);
  });
});

describe('request(): one JSON call', () => {
  let kc: KubeAccess;
  beforeEach(() => {
    kc = accessFromDocument(kubeconfig({ server: `${url}/`, 'certificate-authority-data': b64(ca.cert) }, { token: 't' }));
  });

  it('sends the method, path, query, JSON body and patch content type, and parses the answer', async () => {
    answer = (_req, res, body) => json(res, 200, { echoed: JSON.parse(body) as unknown });
    const out = await request<{ echoed: unknown }>(kc, {
      method: 'PATCH',
      path: '/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node',
      query: { fieldManager: 'cilium-migration-guard', dryRun: undefined },
      body: [{ op: 'test', path: '/metadata/resourceVersion', value: '7' }],
      contentType: 'application/json-patch+json',
      timeoutMs: 5_000,
    });
    expect(out.echoed).toEqual([{ op: 'test', path: '/metadata/resourceVersion', value: '7' }]);
    expect(seen[0]).toMatchObject({
      method: 'PATCH',
      path: '/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node?fieldManager=cilium-migration-guard',
      contentType: 'application/json-patch+json',
      auth: 'Bearer t',
    });
    for (const contentType of ['application/merge-patch+json', 'application/strategic-merge-patch+json'] as const) {
      await request(kc, { method: 'PATCH', path: '/x', body: {}, contentType, timeoutMs: 5_000 });
      expect(seen.at(-1)?.contentType).toBe(contentType);
    }
    await request(kc, { method: 'POST', path: '/x', body: { a: 1 }, timeoutMs: 5_000 });
    expect(seen.at(-1)?.contentType).toBe('application/json');
  });

  it('an empty answer is undefined', async () => {
    answer = (_req, res) => res.writeHead(200).end();
    expect(await request(kc, { method: 'DELETE', path: '/x', timeoutMs: 5_000 })).toBeUndefined();
  });

  it('non-2xx: ApiStatusError with the Status’s message, reason, body and Retry-After (header first)', async () => {
    const status = { kind: 'Status', code: 429, reason: 'TooManyRequests', message: 'slow down', details: { retryAfterSeconds: 9 } };
    answer = (_req, res) => json(res, 429, status, { 'retry-after': '3' });
    const err = (await request(kc, { path: '/x', timeoutMs: 5_000 }).catch((e: unknown) => e)) as ApiStatusError;
    expect(err).toBeInstanceOf(ApiStatusError);
    expect(err).toMatchObject({ statusCode: 429, code: 429, reason: 'TooManyRequests', message: 'slow down (429)', retryAfterSeconds: 3 });
    expect(JSON.parse(err.body)).toEqual(status);
    expect(httpStatus(err)).toBe(429);

    answer = (_req, res) =>
      json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound', message: 'pods "web" not found', details: { retryAfterSeconds: 9 } });
    const missing = await request(kc, { path: '/x', timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(isNotFound(missing)).toBe(true);
    expect(missing).toMatchObject({ retryAfterSeconds: 9 });

    answer = (_req, res) => res.writeHead(502).end('bad gateway');
    expect(await request(kc, { method: 'PUT', path: '/y', body: {}, timeoutMs: 5_000 }).catch((e: unknown) => (e as Error).message)).toBe(
      'Bad Gateway (502) from PUT /y',
    );
  });

  it('its deadline and the caller’s signal abort the request itself', async () => {
    answer = () => {}; // never answers
    const started = Date.now();
    const late = await request(kc, { path: '/slow', timeoutMs: 100 }).catch((e: unknown) => e);
    expect(isAbort(late)).toBe(true);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    const aborted = await request(kc, { path: '/slow', timeoutMs: 10_000, signal: abort.signal }).catch((e: unknown) => e);
    expect(isAbort(aborted)).toBe(true);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(httpStatus(aborted)).toBeUndefined();
  });

  it('keeps the connection alive between calls', async () => {
    const sockets = new Set<unknown>();
    answer = (req, res) => {
      sockets.add(req.socket);
      json(res, 200, {});
    };
    for (let i = 0; i < 3; i += 1) await request(kc, { path: '/x', timeoutMs: 5_000 });
    expect(sockets.size).toBe(1);
  });
});
