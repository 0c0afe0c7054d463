// Where the API server is and how to authenticate to it, without @kubernetes/client-node for the
// common cases: loading client-node at all costs ~50 MB of RSS (its generated APIs and models are
// imported by every entry point, KubeConfig included; docs/benchmarks.md, "Scale").
//
// Sources, as client-go reads them (test/fixtures/SOURCES.md, "kubeconfig and in-cluster credentials"):
// - --kubeconfig FILE: that file only; missing → an error (clientcmd loader.go, ExplicitPath).
// - else $KUBECONFIG: a path list (':' on Linux), duplicates dropped; missing files are skipped;
//   the first file to set a cluster, user or context by name wins (the whole entry: a later file's
//   entry of the same name is ignored), and so does the first to set current-context
//   (clientcmd loader.go, Load). Relative paths in an entry resolve against its file's directory
//   (ResolveLocalPaths).
// - else in a pod (KUBERNETES_SERVICE_HOST and _PORT): https://host:port (an IPv6 host in
//   brackets, net.JoinHostPort), the service account's ca.crt and token (rest.InClusterConfig).
//   The token is a bound, rotating token: it is re-read from its file at most once a minute, as
//   client-go's NewCachedFileTokenSource does (transport/token_source.go: period 1 min, 10 s
//   leeway; a failed re-read keeps the last token; a 401 drops a token read before the request).
// The user of the current context: client-certificate(-data), client-key(-data), token, tokenFile,
// username/password; where both a file and its -data are set, -data wins (client-go's
// validation.go: "certificate-authority-data will override"); tokenFile's token wins over `token`
// once the file is readable, `token` is sent until then. A user with `exec` or
// `auth-provider` (EKS, GKE, AKS kubeconfigs), impersonation (`as`), or a cluster with a
// `proxy-url`, falls back to client-node's KubeConfig, imported lazily from the same entries:
// only those users pay for it (their tokenFile is still read here: client-node ignores it).
// as-groups, as-uid and as-user-extra are refused: client-node would drop them.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { createSecureContext } from 'node:tls';
import path from 'node:path';
import { parse } from 'yaml';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** client-go's fileTokenSource period and cachingTokenSource leeway (transport/token_source.go). */
export const TOKEN_FILE_PERIOD_MS = 60_000;
export const TOKEN_FILE_LEEWAY_MS = 10_000;

/** A kubeconfig or in-cluster credential problem: what and where, for the person running the command. */
export class KubeConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubeConfigError';
  }
}

/** What one request needs: the connection (TLS, keep-alive) and the headers (credentials). */
export interface Prepared {
  agent: http.Agent;
  headers: Record<string, string>;
  /**
   * The request was answered 401: a cached token read before this request is dropped, so the
   * next request reads it again (client-go's ResetTokenOlderThan; a token read for this very
   * request is kept: another request is needed to reset it).
   */
  unauthorized?: () => void;
}

/** The API server of the current context, and how to reach it. */
export interface KubeAccess {
  /** Base URL, no trailing slash. */
  readonly server: string;
  /** Where the credentials came from, for logs (never the credentials). */
  readonly describe: string;
  /** The agent and credential headers for one request (a rotating token is re-read when due). */
  prepare(): Promise<Prepared>;
}

// ---------------------------------------------------------------------------------------------
// The kubeconfig document (the fields we read; anything else falls back or is ignored)

interface ClusterEntry {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
  'proxy-url'?: string;
  [key: string]: unknown;
}
interface UserEntry {
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  token?: string;
  tokenFile?: string;
  username?: string;
  password?: string;
  [key: string]: unknown;
}
interface ContextEntry {
  cluster?: string;
  user?: string;
  namespace?: string;
}
interface Named<T> {
  name: string;
  entry: T;
  /** The file it came from (relative paths resolve against its directory). */
  file: string;
}

/** The kubeconfig files merged the way client-go merges them, and the current context picked. */
export interface Selected {
  files: string[];
  contextName: string;
  cluster: Named<ClusterEntry>;
  user: Named<UserEntry> | undefined;
  context: ContextEntry;
}

/** Fields of a user that only client-node handles (or that we do not implement): fall back to it. */
const FALLBACK_USER_FIELDS = ['exec', 'auth-provider', 'as', 'as-uid', 'as-groups', 'as-user-extra'] as const;

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function parseFile(file: string, text: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new KubeConfigError(`kubeconfig ${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {}; // an empty file is an empty config (clientcmd Load)
  const record = asRecord(doc);
  if (!record) throw new KubeConfigError(`kubeconfig ${file} is not a kubeconfig (expected a mapping with clusters, users, contexts)`);
  return record;
}

/** Merges `docs` (in precedence order): the first to name an entry, or set current-context, wins. */
export function mergeKubeconfigs(docs: Array<{ file: string; doc: Record<string, unknown> }>): {
  clusters: Map<string, Named<ClusterEntry>>;
  users: Map<string, Named<UserEntry>>;
  contexts: Map<string, Named<ContextEntry>>;
  currentContext: string | undefined;
} {
  const clusters = new Map<string, Named<ClusterEntry>>();
  const users = new Map<string, Named<UserEntry>>();
  const contexts = new Map<string, Named<ContextEntry>>();
  let currentContext: string | undefined;
  const add = <T>(map: Map<string, Named<T>>, list: unknown, field: string, file: string): void => {
    if (list === undefined || list === null) return;
    if (!Array.isArray(list)) throw new KubeConfigError(`kubeconfig ${file}: ${field}s must be a list`);
    const inThisFile = new Set<string>();
    for (const item of list) {
      const named = asRecord(item);
      const name = named?.name;
      if (typeof name !== 'string' || name === '') throw new KubeConfigError(`kubeconfig ${file}: every entry of ${field}s needs a name`);
      // client-go refuses a name listed twice in one file (clientcmd/api/v1 conversion: "duplicate name").
      if (inThisFile.has(name)) throw new KubeConfigError(`kubeconfig ${file}: duplicate ${field} name "${name}"`);
      inThisFile.add(name);
      if (map.has(name)) continue;
      map.set(name, { name, entry: (asRecord(named?.[field]) ?? {}) as T, file });
    }
  };
  for (const { file, doc } of docs) {
    add(clusters, doc.clusters, 'cluster', file);
    add(users, doc.users, 'user', file);
    add(contexts, doc.contexts, 'context', file);
    const current = doc['current-context'];
    if (currentContext === undefined && typeof current === 'string' && current !== '') currentContext = current;
  }
  return { clusters, users, contexts, currentContext };
}

/** Reads and merges kubeconfig files, and selects the current context's cluster and user. */
export function selectContext(files: string[], options: { explicit: boolean; readFile?: (file: string) => string }): Selected {
  const read = options.readFile ?? ((file: string) => readFileSync(file, 'utf8'));
  const docs: Array<{ file: string; doc: Record<string, unknown> }> = [];
  const missing: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = read(file);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'ENOENT' && !options.explicit) {
        missing.push(file);
        continue;
      }
      throw new KubeConfigError(code === 'ENOENT' ? `kubeconfig ${file} does not exist` : `cannot read kubeconfig ${file}: ${(err as Error).message}`);
    }
    docs.push({ file: path.resolve(file), doc: parseFile(file, text) });
  }
  if (docs.length === 0) throw new KubeConfigError(`none of the kubeconfig files in $KUBECONFIG exists: ${missing.join(', ')}`);
  return selectFrom(docs);
}

/** Merges parsed kubeconfig documents (in precedence order) and selects the current context. */
export function selectFrom(docs: Array<{ file: string; doc: Record<string, unknown> }>): Selected {
  const where = docs.map((d) => d.file).join(', ');
  const merged = mergeKubeconfigs(docs);
  const contextName = merged.currentContext;
  if (!contextName) throw new KubeConfigError(`kubeconfig ${where} sets no current-context`);
  const context = merged.contexts.get(contextName);
  if (!context) throw new KubeConfigError(`kubeconfig ${where}: current-context "${contextName}" is not among its contexts`);
  const clusterName = context.entry.cluster;
  const cluster = clusterName ? merged.clusters.get(clusterName) : undefined;
  if (!cluster)
    throw new KubeConfigError(`kubeconfig ${where}: context "${contextName}" names cluster "${clusterName ?? ''}", which is not among its clusters`);
  if (typeof cluster.entry.server !== 'string' || cluster.entry.server === '') {
    throw new KubeConfigError(`kubeconfig ${cluster.file}: cluster "${cluster.name}" has no server`);
  }
  const userName = context.entry.user;
  let user: Named<UserEntry> | undefined;
  if (userName) {
    user = merged.users.get(userName);
    if (!user) throw new KubeConfigError(`kubeconfig ${where}: context "${contextName}" names user "${userName}", which is not among its users`);
  }
  return { files: docs.map((d) => d.file), contextName, cluster, user, context: context.entry };
}

/** A path of an entry, absolute: relative ones resolve against the directory of the file it came from. */
function resolvePath(file: string, value: string): string {
  return path.isAbsolute(value) ? value : path.join(path.dirname(file), value);
}

/** file or -data of an entry (-data wins), as a Buffer; an unreadable file is an error naming the file and field. */
function material(owner: string, named: Named<Record<string, unknown>>, fileField: string, dataField: string): Buffer | undefined {
  const where = `kubeconfig ${named.file}: ${owner} "${named.name}"`;
  // Not PEM (e.g. the PEM itself put in -data, or a DER file): said now, naming the field, rather
  // than as OpenSSL's "no start line" at every request (client-go fails creating its transport).
  const pem = (buffer: Buffer, what: string): Buffer => {
    if (!buffer.includes('-----BEGIN ')) throw new KubeConfigError(`${where}: ${what} is not PEM`);
    return buffer;
  };
  const data = named.entry[dataField];
  if (typeof data === 'string' && data !== '') {
    if (!/^[A-Za-z0-9+/=\s]*$/.test(data)) throw new KubeConfigError(`${where}: ${dataField} is not base64 (of a PEM block)`);
    return pem(Buffer.from(data, 'base64'), `${dataField} (decoded)`);
  }
  const file = named.entry[fileField];
  if (typeof file !== 'string' || file === '') return undefined;
  const absolute = resolvePath(named.file, file);
  let buffer: Buffer;
  try {
    buffer = readFileSync(absolute);
  } catch (err) {
    throw new KubeConfigError(`${where}: cannot read ${fileField} ${absolute}: ${(err as Error).message}`);
  }
  return pem(buffer, `${fileField} ${absolute}`);
}

// ---------------------------------------------------------------------------------------------
// Credentials

/** A bearer token read from a file, re-read once it is a minute old (minus the leeway), as client-go does. */
export class CachedFileToken {
  private token: string | undefined;
  private readAt = 0;

  constructor(
    readonly file: string,
    private readonly now: () => number = Date.now,
    private readonly readFile: (file: string) => string = (f) => readFileSync(f, 'utf8'),
  ) {}

  /** The token, and what to call if it is refused (401): reset() with the time the request started. */
  forRequest(): { token: string; refused: () => void } {
    const startedAt = this.now();
    return { token: this.get(), refused: () => this.reset(startedAt) };
  }

  /** The token; throws only when no token has ever been read (a failed re-read keeps the last one). */
  get(): string {
    const now = this.now();
    if (this.token !== undefined && now < this.readAt + TOKEN_FILE_PERIOD_MS - TOKEN_FILE_LEEWAY_MS) return this.token;
    let text: string;
    try {
      text = this.readFile(this.file).trim();
      if (text === '') throw new Error('the file is empty');
    } catch (err) {
      if (this.token !== undefined) return this.token; // client-go logs "Unable to rotate token" and keeps it
      throw new KubeConfigError(`cannot read the token file ${this.file}: ${(err as Error).message}`);
    }
    this.token = text;
    this.readAt = now;
    return text;
  }

  /** A 401 for a request started at `startedAt`: a token read before then is read again next time. */
  reset(startedAt: number): void {
    if (this.token !== undefined && this.readAt < startedAt) this.token = undefined;
  }
}

/** A tokenFile, and the user's static `token` to send while the file has never been readable. */
type FileToken = { token: CachedFileToken; fallback: string | undefined };
type Credential = { kind: 'none' } | { kind: 'header'; value: string } | ({ kind: 'tokenFile' } & FileToken);

/**
 * The file's token when it has been read, else the static one (client-go transport/round_trippers.go,
 * NewBearerAuthWithRefreshRoundTripper); throws when neither (the file never read, no token).
 */
function fileTokenHeader(file: FileToken): { authorization: string; refused?: () => void } {
  try {
    const { token, refused } = file.token.forRequest();
    return { authorization: `Bearer ${token}`, refused };
  } catch (err) {
    if (file.fallback === undefined) throw err;
    return { authorization: `Bearer ${file.fallback}` };
  }
}

/** Credentials and TLS handled here (no client-node). */
class DirectAccess implements KubeAccess {
  constructor(
    readonly server: string,
    readonly describe: string,
    private readonly agent: http.Agent,
    private readonly credential: Credential,
  ) {}

  async prepare(): Promise<Prepared> {
    if (this.credential.kind === 'header') return { agent: this.agent, headers: { Authorization: this.credential.value } };
    if (this.credential.kind === 'tokenFile') {
      const { authorization, refused } = fileTokenHeader(this.credential);
      return { agent: this.agent, headers: { Authorization: authorization }, ...(refused ? { unauthorized: refused } : {}) };
    }
    return { agent: this.agent, headers: {} };
  }
}

/** Structural type of what we use of client-node's KubeConfig (imported lazily, never at load). */
interface ClientNodeKubeConfig {
  loadFromString(text: string): void;
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

/**
 * client-node's agent for a direct connection does not keep connections alive: the same options
 * with keepAlive, one per agent (proxy agents, subclasses, are used as they are).
 */
const keptAlive = new WeakMap<object, http.Agent>();
function keepAlive(agent: unknown): http.Agent | undefined {
  if (!(agent instanceof http.Agent)) return undefined;
  const proto = Object.getPrototypeOf(agent) as object;
  if (proto !== http.Agent.prototype && proto !== https.Agent.prototype) return agent;
  let kept = keptAlive.get(agent);
  if (!kept) {
    const options = { ...(agent as unknown as { options: http.AgentOptions }).options, keepAlive: true };
    kept = proto === https.Agent.prototype ? new https.Agent(options) : new http.Agent(options);
    keptAlive.set(agent, kept);
  }
  return kept;
}

/** exec / auth-provider users and the rest client-node handles: its KubeConfig, loaded on first use. */
class ClientNodeAccess implements KubeAccess {
  private loading: Promise<ClientNodeKubeConfig> | undefined;
  /** When client-node hands back no agent: one kept-alive agent of our own, for every request. */
  private ownAgent: http.Agent | undefined;

  constructor(
    readonly server: string,
    readonly describe: string,
    /** A one-context kubeconfig (JSON is YAML) with absolute paths: the selected entries as they were written. */
    private readonly document: string,
    /** The user's tokenFile: client-node reads only `token-file`, so we send it. */
    private readonly fileToken?: FileToken,
  ) {}

  private load(): Promise<ClientNodeKubeConfig> {
    this.loading ??= (async () => {
      const { KubeConfig } = await import('@kubernetes/client-node');
      const kc = new KubeConfig();
      kc.loadFromString(this.document);
      return kc as unknown as ClientNodeKubeConfig;
    })();
    return this.loading;
  }

  async prepare(): Promise<Prepared> {
    const kc = await this.load();
    const opts: https.RequestOptions = { headers: {} };
    await kc.applyToHTTPSOptions(opts);
    const headers = { ...(opts.headers as Record<string, string>) };
    if (typeof opts.auth === 'string') headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    let unauthorized: (() => void) | undefined;
    if (this.fileToken) {
      const { authorization, refused } = fileTokenHeader(this.fileToken);
      headers.Authorization = authorization;
      unauthorized = refused;
    }
    const agent =
      keepAlive(opts.agent) ?? (this.ownAgent ??= this.server.startsWith('http:') ? new http.Agent({ keepAlive: true }) : new https.Agent({ keepAlive: true }));
    return { agent, headers, ...(unauthorized ? { unauthorized } : {}) };
  }
}

/** Whether this selection needs client-node (exec, auth-provider, impersonation, a proxy). */
export function needsClientNode(selected: Selected): boolean {
  const user = selected.user?.entry ?? {};
  return FALLBACK_USER_FIELDS.some((field) => user[field] !== undefined && user[field] !== null) || Boolean(selected.cluster.entry['proxy-url']);
}

function fallbackDocument(selected: Selected, server: string): string {
  // Paths made absolute, so client-node reads the same files we would have.
  const cluster: Record<string, unknown> = { ...selected.cluster.entry, server };
  if (typeof cluster['certificate-authority'] === 'string')
    cluster['certificate-authority'] = resolvePath(selected.cluster.file, cluster['certificate-authority']);
  const user: Record<string, unknown> = { ...(selected.user?.entry ?? {}) };
  for (const field of ['client-certificate', 'client-key', 'tokenFile']) {
    if (typeof user[field] === 'string' && user[field] !== '' && selected.user) user[field] = resolvePath(selected.user.file, user[field] as string);
  }
  // An exec command with a separator is a path, relative to the file (client-go loader.go,
  // GetAuthInfoFileReferences); a bare name is looked up in $PATH.
  const exec = asRecord(user.exec);
  if (exec && typeof exec.command === 'string' && exec.command.includes(path.sep) && selected.user) {
    user.exec = { ...exec, command: resolvePath(selected.user.file, exec.command) };
  }
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: selected.cluster.name, cluster }],
    users: [{ name: selected.user?.name ?? 'user', user }],
    contexts: [{ name: selected.contextName, context: { ...selected.context, user: selected.user?.name ?? 'user' } }],
    'current-context': selected.contextName,
  });
}

/** Impersonation fields client-node drops (config_types.js reads only `as`). */
const IMPERSONATION_FIELDS_UNSUPPORTED = ['as-uid', 'as-groups', 'as-user-extra'] as const;

/**
 * A user's tokenFile (not for exec / auth-provider users, whose plugin gives the token). client-go:
 * the file's token wins over `token` once readable (transport NewBearerAuthWithRefreshRoundTripper);
 * an unreadable file is an error only when there is no `token` to send instead.
 */
function tokenFileOf(user: Named<UserEntry>, now: (() => number) | undefined): FileToken | undefined {
  const { token, tokenFile } = user.entry;
  if (typeof tokenFile !== 'string' || tokenFile === '' || user.entry.exec || user.entry['auth-provider']) return undefined;
  const cached = new CachedFileToken(resolvePath(user.file, tokenFile), now);
  const fallback = typeof token === 'string' && token !== '' ? token : undefined;
  try {
    cached.get();
  } catch (err) {
    if (fallback === undefined) throw new KubeConfigError(`kubeconfig ${user.file}: user "${user.name}": ${(err as Error).message}`);
  }
  return { token: cached, fallback };
}

const nonEmpty = (value: unknown): boolean => typeof value === 'string' && value !== '';

/**
 * The cluster's server as a base URL (no trailing slash). Written host:port, without a scheme,
 * it is read as client-go's DefaultServerURL reads it (rest/url_utils.go): https when the cluster
 * or user has TLS settings (a CA, a client certificate, insecure-skip-tls-verify), else http; a
 * path is then not allowed.
 */
function serverURL(selected: Selected): string {
  const raw = selected.cluster.entry.server ?? '';
  const bad = (why: string) =>
    new KubeConfigError(`kubeconfig ${selected.cluster.file}: cluster "${selected.cluster.name}" has a server that is ${why}: ${JSON.stringify(raw)}`);
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || url.host === '') {
    const cluster = selected.cluster.entry;
    const user = selected.user?.entry ?? {};
    const tls =
      cluster['insecure-skip-tls-verify'] === true ||
      [cluster['certificate-authority'], cluster['certificate-authority-data'], user['client-certificate'], user['client-certificate-data']].some(nonEmpty);
    try {
      url = new URL(`${tls ? 'https' : 'http'}://${raw}`);
    } catch {
      throw bad('not a URL or host:port');
    }
    if (url.host === '' || (url.pathname !== '' && url.pathname !== '/')) throw bad('not a URL or host:port');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw bad('neither https nor http');
  return (raw.includes('://') ? raw : url.origin).replace(/\/+$/, '');
}

function agentFor(server: string, tls: https.AgentOptions): http.Agent {
  // An idle kept-alive socket does not hold the process open (Node unrefs free sockets).
  return server.startsWith('http:') ? new http.Agent({ keepAlive: true }) : new https.Agent({ keepAlive: true, ...tls });
}

/** The access a selected context describes. */
export function accessFor(selected: Selected, options: { now?: () => number } = {}): KubeAccess {
  const server = serverURL(selected);
  const describe = `kubeconfig ${selected.files.join(':')} (context ${selected.contextName})`;
  const user = selected.user;
  // client-node sends only Impersonate-User: without the rest the requests would be made as
  // another identity (as-groups alone: none impersonated at all), so refuse them.
  const unsupported = IMPERSONATION_FIELDS_UNSUPPORTED.filter((field) => user?.entry[field] !== undefined && user.entry[field] !== null);
  if (user && unsupported.length > 0) {
    throw new KubeConfigError(
      `kubeconfig ${user.file}: user "${user.name}" sets ${unsupported.join(', ')}: impersonation of groups, uid or extras is not supported (only \`as\`)`,
    );
  }
  const fileToken = user ? tokenFileOf(user, options.now) : undefined;
  if (needsClientNode(selected)) return new ClientNodeAccess(server, `${describe}, through client-node`, fallbackDocument(selected, server), fileToken);

  const clusterNamed = selected.cluster as Named<Record<string, unknown>>;
  const tls: https.AgentOptions = {};
  if (selected.cluster.entry['insecure-skip-tls-verify'] === true) tls.rejectUnauthorized = false;
  else {
    const ca = material('cluster', clusterNamed, 'certificate-authority', 'certificate-authority-data');
    if (ca) tls.ca = ca;
  }
  const serverName = selected.cluster.entry['tls-server-name'];
  if (typeof serverName === 'string' && serverName !== '') tls.servername = serverName;

  let credential: Credential = { kind: 'none' };
  if (user) {
    const userNamed = user as Named<Record<string, unknown>>;
    const cert = material('user', userNamed, 'client-certificate', 'client-certificate-data');
    const key = material('user', userNamed, 'client-key', 'client-key-data');
    if (cert) tls.cert = cert;
    if (key) tls.key = key;
    if (cert && !key) throw new KubeConfigError(`kubeconfig ${user.file}: user "${user.name}" has a client certificate but no client-key(-data)`);
    if (key && !cert) throw new KubeConfigError(`kubeconfig ${user.file}: user "${user.name}" has a client key but no client-certificate(-data)`);
    const { token, username, password } = user.entry;
    if (fileToken) {
      credential = { kind: 'tokenFile', ...fileToken };
    } else if (typeof token === 'string' && token !== '') {
      credential = { kind: 'header', value: `Bearer ${token}` };
    } else if (typeof username === 'string' && username !== '') {
      credential = { kind: 'header', value: `Basic ${Buffer.from(`${username}:${typeof password === 'string' ? password : ''}`).toString('base64')}` };
    }
  }
  if (server.startsWith('https:')) {
    // A key that is not the certificate's, or a PEM OpenSSL cannot parse: an error now.
    const usable = (what: string, material: https.AgentOptions): void => {
      try {
        createSecureContext(material);
      } catch (err) {
        throw new KubeConfigError(`${what} cannot be used: ${(err as Error).message}`);
      }
    };
    if (tls.ca) usable(`kubeconfig ${selected.cluster.file}: cluster "${selected.cluster.name}"'s certificate authority`, { ca: tls.ca });
    if (tls.cert && user) usable(`kubeconfig ${user.file}: user "${user.name}"'s client certificate and key`, { cert: tls.cert, key: tls.key });
  }
  return new DirectAccess(server, describe, agentFor(server, tls), credential);
}

// ---------------------------------------------------------------------------------------------
// Entry points

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** The service account's directory (tests). */
  serviceAccountDir?: string;
  /** For the token file's re-read schedule (tests). */
  now?: () => number;
}

/** A pod's own credentials (rest.InClusterConfig). */
export function inClusterAccess(options: LoadOptions = {}): KubeAccess {
  const env = options.env ?? process.env;
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new KubeConfigError('in-cluster credentials need KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT');
  const dir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const server = `https://${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  const token = new CachedFileToken(path.join(dir, 'token'), options.now);
  token.get(); // an error now, naming the file, rather than at the first request
  const caFile = path.join(dir, 'ca.crt');
  let ca: Buffer;
  try {
    ca = readFileSync(caFile);
  } catch (err) {
    throw new KubeConfigError(`in-cluster credentials: cannot read the service account's CA ${caFile}: ${(err as Error).message}`);
  }
  return new DirectAccess(server, `in-cluster (${dir})`, agentFor(server, { ca }), { kind: 'tokenFile', token, fallback: undefined });
}

/**
 * A kubeconfig document already parsed (tests, and callers that build one): `file` stands for
 * where it came from (relative paths resolve against its directory).
 */
export function accessFromDocument(doc: Record<string, unknown>, options: { file?: string; now?: () => number } = {}): KubeAccess {
  return accessFor(selectFrom([{ file: path.resolve(options.file ?? 'kubeconfig'), doc }]), options.now ? { now: options.now } : {});
}

/** A kubeconfig file (explicit: it must exist) or a $KUBECONFIG-style list of them. */
export function kubeconfigAccess(files: string[], options: { explicit: boolean; now?: () => number }): KubeAccess {
  return accessFor(selectContext(files, { explicit: options.explicit }), options.now ? { now: options.now } : {});
}

/**
 * The cluster to talk to: --kubeconfig, else $KUBECONFIG, else in-cluster credentials when in a
 * pod; undefined when none is configured.
 */
export function loadKubeAccess(flags: { kubeconfig?: string }, options: LoadOptions = {}): KubeAccess | undefined {
  const env = options.env ?? process.env;
  const now = options.now ? { now: options.now } : {};
  if (flags.kubeconfig) return kubeconfigAccess([flags.kubeconfig], { explicit: true, ...now });
  if (env.KUBECONFIG) {
    const files = [...new Set(env.KUBECONFIG.split(path.delimiter).filter((f) => f !== ''))];
    if (files.length > 0) return kubeconfigAccess(files, { explicit: false, ...now });
  }
  if (env.KUBERNETES_SERVICE_HOST) return inClusterAccess(options);
  return undefined;
}
