// Edges of kube-config.ts and raw-api.ts request() found in review, against a local HTTP server:
// - a deadline (or the caller's signal) that fires while the answer's body is still arriving is
//   an abort (TimeoutError/AbortError), as client-node's fetch reported it, not a bare "aborted";
// - the deadline also covers getting the credentials (an exec plugin that hangs);
// - a kubeconfig user with both `token` and `tokenFile` whose file cannot be read uses `token`
//   (client-go transport/round_trippers.go, NewBearerAuthWithRefreshRoundTripper: the file's token
//   when readable, else the static one);
// - a user that goes through client-node (impersonation, a proxy) keeps its tokenFile: client-node
//   reads only `token-file`, so the token was silently dropped;
// - impersonation client-node cannot express (as-groups, as-uid, as-user-extra: it sends only
//   Impersonate-User) is an error, never a request made as another identity;
// - an exec command with a slash resolves against the kubeconfig's directory (client-go
//   clientcmd/loader.go GetAuthInfoFileReferences; client-node leaves it to the working directory);
// - a server written host:port (no scheme) is read as client-go's DefaultServerURL reads it;
// - TLS material that cannot be used (not PEM, a key that is not the certificate's) is an error at
//   load naming the field, as client-go fails creating its transport;
// - the same name twice in one file is an error (client-go's v1 conversion: "duplicate name");
// - a 2xx answer that is not JSON (a proxy's HTML page) is an error naming the call;
// - every request names this program in User-Agent (the API server's audit log shows it; client-node
//   sent kubernetes-client-javascript/VERSION, node's http sends none).

import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { accessFromDocument, KubeConfigError, loadKubeAccess, TOKEN_FILE_PERIOD_MS } from '../../src/cluster/kube-config.js';
import { request } from '../../src/cluster/raw-api.js';
import { isAbort } from '../../src/cluster/kube-client.js';
import { generateCa, generateServing } from '../../src/certs/x509.js';
import { listenOnLoopback, closeNow } from '../support/loopback.js';

let server: Server;
let url: string;
let answer: (req: IncomingMessage, res: ServerResponse) => void;
const auths: Array<string | undefined> = [];
const userAgents: Array<string | undefined> = [];
let dir: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    auths.push(req.headers.authorization);
    userAgents.push(req.headers['user-agent']);
    answer(req, res);
  });
  url = await listenOnLoopback(server);
});

afterAll(async () => {
  await closeNow(server);
});

beforeEach(async () => {
  auths.length = 0;
  userAgents.length = 0;
  answer = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"Pod"}');
  dir = await mkdtemp(join(tmpdir(), 'cmg-kube-edges-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>): Record<string, unknown> {
  return {
    clusters: [{ name: 'c', cluster: { server: url, ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'ctx',
  };
}

describe('request(): a deadline or abort while the body arrives', () => {
  /** 200 and the start of a body, then a byte now and then, never the end. */
  const trickle = (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"kind":');
    const timer = setInterval(() => res.write(' '), 20);
    res.on('close', () => clearInterval(timer));
  };

  it('is a TimeoutError at the deadline, an AbortError on the signal, as before the headers', async () => {
    answer = trickle;
    const kc = accessFromDocument(kubeconfig({}, { token: 't' }));
    const started = Date.now();
    const late = await request(kc, { path: '/api/v1/nodes/n', timeoutMs: 200 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(isAbort(late)).toBe(true);
    expect((late as Error).name).toBe('TimeoutError');

    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    const aborted = await request(kc, { path: '/api/v1/nodes/n', timeoutMs: 10_000, signal: abort.signal }).catch((e: unknown) => e);
    expect(isAbort(aborted)).toBe(true);
    expect((aborted as Error).name).toBe('AbortError');
  });
});

describe('request(): an answer that is not JSON', () => {
  it('a 200 with HTML (a proxy’s login page) is an error naming the call and showing the start of the body', async () => {
    answer = (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Sign in to the proxy</body></html>');
    const kc = accessFromDocument(kubeconfig({}, { token: 't' }));
    const err = (await request(kc, { path: '/api/v1/nodes/n', timeoutMs: 5_000 }).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/^GET \/api\/v1\/nodes\/n: the answer is not JSON: <html><body>Sign in/);
  });
});

describe('request(): the deadline covers getting the credentials', () => {
  it('an exec plugin that does not answer: TimeoutError at the deadline, not a call that hangs', async () => {
    const plugin = join(dir, 'slow-plugin.mjs');
    // Answers after 3 s (then exits): far past the request's deadline.
    await writeFile(
      plugin,
      `setTimeout(() => console.log(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'late' } })), 3000);\n`,
    );
    const kc = accessFromDocument(
      kubeconfig(
        { server: 'https://127.0.0.1:1' },
        { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [plugin], interactiveMode: 'Never' } },
      ),
    );
    const started = Date.now();
    const late = await request(kc, { path: '/api/v1/nodes/n', timeoutMs: 300 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2_500);
    expect((late as Error).name).toBe('TimeoutError');
  });
});

describe('kubeconfig token and tokenFile', () => {
  it('token and an unreadable tokenFile: the token is sent; the file’s token once it can be read', async () => {
    let now = 1_000_000;
    const file = join(dir, 'token');
    const kc = accessFromDocument(kubeconfig({}, { token: 'static', tokenFile: file }), { now: () => now });
    await request(kc, { path: '/x', timeoutMs: 5_000 });
    expect(auths.at(-1)).toBe('Bearer static');
    await writeFile(file, 'rotated\n');
    now += TOKEN_FILE_PERIOD_MS;
    await request(kc, { path: '/x', timeoutMs: 5_000 });
    expect(auths.at(-1)).toBe('Bearer rotated');
  });

  it('a user that goes through client-node (impersonation, a proxy) keeps its tokenFile', async () => {
    const file = join(dir, 'token');
    await writeFile(file, 'from-file\n');
    // prepare() only: no request is made (client-node refuses an http: server without insecure-skip-tls-verify).
    const https = { server: 'https://127.0.0.1:1' };
    const impersonating = accessFromDocument(kubeconfig(https, { as: 'bob', tokenFile: file }));
    expect(impersonating.describe).toMatch(/through client-node/);
    expect((await impersonating.prepare()).headers).toMatchObject({ Authorization: 'Bearer from-file', 'Impersonate-User': 'bob' });
    const proxied = accessFromDocument(kubeconfig({ ...https, 'proxy-url': 'http://127.0.0.1:3128' }, { tokenFile: file }));
    expect((await proxied.prepare()).headers).toMatchObject({ Authorization: 'Bearer from-file' });
    // A static token still wins over the file there too (client-go: the file's token only when readable).
    const both = accessFromDocument(kubeconfig(https, { as: 'bob', token: 'static', tokenFile: join(dir, 'missing') }));
    expect((await both.prepare()).headers).toMatchObject({ Authorization: 'Bearer static' });
  });

  it('impersonation client-node cannot send (groups, uid, extra) is an error naming the field, not another identity', () => {
    for (const field of ['as-groups', 'as-uid', 'as-user-extra'] as const) {
      const value = field === 'as-groups' ? ['viewers'] : field === 'as-uid' ? '42' : { scopes: ['view'] };
      expect(() => accessFromDocument(kubeconfig({}, { token: 't', as: 'bob', [field]: value }))).toThrow(KubeConfigError);
      expect(() => accessFromDocument(kubeconfig({}, { token: 't', [field]: value }))).toThrow(new RegExp(field));
    }
  });
});

describe('kubeconfig exec', () => {
  it('an exec command with a slash resolves against the kubeconfig’s directory, as client-go’s ResolveLocalPaths does', async () => {
    await mkdir(join(dir, 'bin'));
    const plugin = join(dir, 'bin', 'creds');
    await writeFile(
      plugin,
      `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-relative-exec"}}'\n`,
    );
    await chmod(plugin, 0o755);
    const exec = { apiVersion: 'client.authentication.k8s.io/v1', command: 'bin/creds', interactiveMode: 'Never' };
    // The test runs from the repository, where bin/creds does not exist.
    const kc = accessFromDocument(kubeconfig({ server: 'https://127.0.0.1:1' }, { exec }), { file: join(dir, 'config') });
    expect((await kc.prepare()).headers).toMatchObject({ Authorization: 'Bearer from-relative-exec' });
  });
});

describe('kubeconfig entries', () => {
  it('the same name twice in one file is an error, as client-go refuses it; across files the first still wins', async () => {
    const doc = kubeconfig({}, { token: 't' });
    const clusters = doc.clusters as Array<Record<string, unknown>>;
    const twice = { ...doc, clusters: [...clusters, { name: 'c', cluster: { server: 'https://elsewhere.example' } }] };
    expect(() => accessFromDocument(twice)).toThrow(/duplicate cluster name "c"/);
    const users = doc.users as Array<Record<string, unknown>>;
    expect(() => accessFromDocument({ ...doc, users: [...users, { name: 'u', user: { token: 'other' } }] })).toThrow(/duplicate user name "u"/);
    const first = join(dir, 'first');
    const second = join(dir, 'second');
    await writeFile(first, JSON.stringify(doc));
    await writeFile(second, JSON.stringify({ clusters: [{ name: 'c', cluster: { server: 'https://elsewhere.example' } }] }));
    expect(loadKubeAccess({}, { env: { KUBECONFIG: `${first}:${second}` } })?.server).toBe(url);
  });
});

describe('kubeconfig server', () => {
  it('host:port without a scheme: http without TLS settings, https with a CA, a client certificate or insecure (client-go DefaultServerURL)', async () => {
    const port = new URL(url).port;
    const plain = accessFromDocument(kubeconfig({ server: `localhost:${port}` }, { token: 't' }));
    expect(plain.server).toBe(`http://localhost:${port}`);
    expect(await request(plain, { path: '/api/v1/nodes/n', timeoutMs: 5_000 })).toEqual({ kind: 'Pod' });
    expect(accessFromDocument(kubeconfig({ server: '10.0.0.1:6443', 'insecure-skip-tls-verify': true }, {})).server).toBe('https://10.0.0.1:6443');
    const ca = await generateCa({ notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) });
    const caData = Buffer.from(ca.cert).toString('base64');
    expect(accessFromDocument(kubeconfig({ server: 'api.example:6443', 'certificate-authority-data': caData }, {})).server).toBe('https://api.example:6443');
  });

  it('a server that is neither http(s) nor host:port is an error at load, naming it', () => {
    for (const server of ['ftp://api.example', 'api.example:6443/prefix', 'https://']) {
      expect(() => accessFromDocument(kubeconfig({ server }, {}))).toThrow(KubeConfigError);
    }
  });
});

describe('request(): who is asking', () => {
  it('sends a User-Agent naming this program (audit logs; client-node sent its own, node sends none)', async () => {
    const kc = accessFromDocument(kubeconfig({}, { token: 't' }));
    await request(kc, { method: 'DELETE', path: '/api/v1/namespaces/a/pods/b', body: { preconditions: { uid: 'u' } }, timeoutMs: 5_000 });
    expect(userAgents).toEqual(['cilium-migration-guard']);
  });
});

describe('kubeconfig TLS', () => {
  it('TLS material that cannot be used is an error at load naming the field, not a PEM error at every request', async () => {
    const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) };
    const ca = await generateCa(validity);
    const [a, b] = await Promise.all([generateServing(ca, ['a'], 'a', validity), generateServing(ca, ['b'], 'b', validity)]);
    const b64 = (text: string) => Buffer.from(text).toString('base64');
    // The PEM itself instead of its base64 (a common mistake), and a file that is not PEM.
    expect(() => accessFromDocument(kubeconfig({ server: 'https://h', 'certificate-authority-data': ca.cert }, {}))).toThrow(/certificate-authority-data/);
    await writeFile(join(dir, 'ca.der'), Buffer.from([0x30, 0x82, 0x01, 0x0a]));
    expect(() => accessFromDocument(kubeconfig({ server: 'https://h', 'certificate-authority': join(dir, 'ca.der') }, {}))).toThrow(
      /certificate-authority .*not PEM/,
    );
    // A certificate with another key's private key.
    const mismatched = () => accessFromDocument(kubeconfig({ server: 'https://h' }, { 'client-certificate-data': b64(a.cert), 'client-key-data': b64(b.key) }));
    expect(mismatched).toThrow(KubeConfigError);
    expect(mismatched).toThrow(/user "u"/);
    // The right pair loads.
    expect(accessFromDocument(kubeconfig({ server: 'https://h' }, { 'client-certificate-data': b64(a.cert), 'client-key-data': b64(a.key) })).server).toBe(
      'https://h',
    );
  });

  it('a certificate-authority file that is a bundle (another CA first, comments between): the server is trusted', async () => {
    const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) };
    const [other, ca] = await Promise.all([generateCa(validity), generateCa(validity)]);
    const serving = await generateServing(ca, ['127.0.0.1'], 'api', validity);
    const tls = createHttpsServer({ cert: serving.cert, key: serving.key }, (_req, res) => res.writeHead(200).end('{"kind":"Node"}'));
    const server = await listenOnLoopback(tls);
    try {
      await writeFile(join(dir, 'bundle.crt'), `# an older CA\n${other.cert}\n# the current CA\n${ca.cert}`);
      await writeFile(join(dir, 'other.crt'), other.cert);
      const withCa = (file: string) => accessFromDocument(kubeconfig({ server, 'certificate-authority': file }, {}), { file: join(dir, 'config') });
      expect(await request(withCa('bundle.crt'), { path: '/api/v1/nodes/n', timeoutMs: 5_000 })).toEqual({ kind: 'Node' });
      await expect(request(withCa('other.crt'), { path: '/api/v1/nodes/n', timeoutMs: 5_000 })).rejects.toThrow(/certificate/);
    } finally {
      await closeNow(tls);
    }
  });
});
