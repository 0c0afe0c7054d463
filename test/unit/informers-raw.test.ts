// The informers' list-and-watch protocol against a scripted stand-in API server (plain HTTP on
// 127.0.0.1): paging with limit/continue and an expired continue token, bookmarks, a 410 ERROR
// event (relist, and removal of what has gone), the inactivity timeout on the injected clock, the
// request headers, and what the reaper's caches keep of a pod and a CiliumEndpoint.
// test/unit/informers.test.ts covers sync, backoff and stop(); test/e2e/informers.e2e.test.ts the real API server.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { testAccess } from '../support/kube-access.js';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../support/fake-clock.js';
import { defaultConfig } from '../../src/config.js';
import { startLiveView, type LiveView } from '../../src/cluster/informers.js';
import { startNamespaceModes } from '../../src/modes/namespace-modes.js';
import { listenOnLoopback, closeNow } from '../support/loopback.js';

type Obj = { metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown }; [k: string]: unknown };
type Request = { path: string; query: Record<string, string>; headers: IncomingMessage['headers'] };

/** Scripted: `list` answers each list request, `watches` holds the open watch responses of each path. */
class ScriptedServer {
  readonly requests: Request[] = [];
  readonly watches = new Map<string, Set<ServerResponse>>();
  list: (path: string, query: Record<string, string>) => { status?: number; body: unknown } = () => ({
    body: { items: [], metadata: { resourceVersion: '1' } },
  });
  /** While true, watch requests get no answer at all (a hung server). */
  hangWatches = false;
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.url = await listenOnLoopback(this.server);
  }

  async stop(): Promise<void> {
    await closeNow(this.server);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({ path: url.pathname, query, headers: req.headers });
    if (query.watch === 'true' && this.hangWatches) return; // closed by stop()'s closeAllConnections
    if (query.watch === 'true') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      let set = this.watches.get(url.pathname);
      if (!set) this.watches.set(url.pathname, (set = new Set()));
      set.add(res);
      res.on('close', () => set.delete(res));
      return;
    }
    const { status = 200, body } = this.list(url.pathname, query);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  /** Writes one line (a watch event, or anything) to every open watch of `path`. */
  send(path: string, line: string): void {
    for (const w of this.watches.get(path) ?? []) w.write(`${line}\n`);
  }

  open(path: string): number {
    return this.watches.get(path)?.size ?? 0;
  }

  watchRequests(path: string): Request[] {
    return this.requests.filter((r) => r.path === path && r.query.watch === 'true');
  }

  listRequests(path: string): Request[] {
    return this.requests.filter((r) => r.path === path && r.query.watch !== 'true');
  }
}

const NODES = '/api/v1/nodes';
const PODS = '/api/v1/pods';
const CEPS = '/apis/cilium.io/v2/ciliumendpoints';
const node = (name: string, rv = '1'): Obj => ({ metadata: { name, resourceVersion: rv } });
const poll = { timeout: 5_000, interval: 10 };

let api: ScriptedServer;
let live: LiveView | undefined;
let clock: FakeClock;

function start(options: { withReaperCaches?: boolean; pageSize?: number; listTimeoutMs?: number } = {}): LiveView {
  const kc = testAccess(api.url, { token: 'secret-token' });
  live = startLiveView(kc, defaultConfig, pino({ level: process.env.DEBUG_RAW ? 'error' : 'silent' }), {
    backoff: { initialMs: 20, maxMs: 200 },
    clock,
    ...options,
  });
  return live;
}

beforeEach(async () => {
  api = new ScriptedServer();
  await api.start();
  clock = new FakeClock();
});

afterEach(async () => {
  await live?.stop();
  live = undefined;
  await api.stop();
});

describe('informers: raw list and watch', () => {
  it('sends the credentials, asks for JSON only, and watches with bookmarks and a server-side timeout', async () => {
    const { whenSynced } = start();
    await whenSynced();
    await expect.poll(() => api.open(NODES), poll).toBe(1);
    const list = api.listRequests(NODES)[0]!;
    expect(list.headers.authorization).toBe('Bearer secret-token');
    expect(list.headers.accept).toBe('application/json');
    expect(list.headers['accept-encoding']).toBeUndefined();
    const watch = api.watchRequests(NODES)[0]!;
    expect(watch.headers.authorization).toBe('Bearer secret-token');
    expect(watch.query).toMatchObject({ watch: 'true', resourceVersion: '1', allowWatchBookmarks: 'true' });
    expect(Number(watch.query.timeoutSeconds)).toBeGreaterThanOrEqual(300);
    expect(Number(watch.query.timeoutSeconds)).toBeLessThan(600);
  });

  it('lists page by page with limit/continue, and starts over when a continue token has expired (410)', async () => {
    let expired = false;
    api.list = (path, q) => {
      if (path !== NODES) return { body: { items: [], metadata: { resourceVersion: '1' } } };
      if (!q.continue) return { body: { items: [node('a')], metadata: { resourceVersion: '', continue: 'page2' } } };
      if (!expired) {
        expired = true;
        return { status: 410, body: { kind: 'Status', code: 410, reason: 'Expired', message: 'continue token expired' } };
      }
      return { body: { items: [node('b')], metadata: { resourceVersion: '7' } } };
    };
    const { view, whenSynced } = start({ pageSize: 1 });
    await whenSynced();
    expect(view.nodes().map((n) => n.metadata.name)).toEqual(['a', 'b']);
    expect(api.listRequests(NODES).map((r) => [r.query.limit, r.query.continue ?? ''])).toEqual([
      ['1', ''],
      ['1', 'page2'],
      ['1', ''],
      ['1', 'page2'],
    ]);
    await expect.poll(() => api.watchRequests(NODES)[0]?.query.resourceVersion, poll).toBe('7');
  });

  it('resumes from a bookmark, relists on a 410 ERROR event and removes what has gone', async () => {
    let listed = 0;
    api.list = (path) => {
      if (path !== NODES) return { body: { items: [], metadata: { resourceVersion: '1' } } };
      listed += 1;
      return listed === 1
        ? { body: { items: [node('a'), node('b')], metadata: { resourceVersion: '10' } } }
        : { body: { items: [node('b', '30'), node('c', '31')], metadata: { resourceVersion: '31' } } };
    };
    const { view, whenSynced } = start();
    await whenSynced();
    await expect.poll(() => api.open(NODES), poll).toBe(1);
    api.send(NODES, JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Node', metadata: { resourceVersion: '20' } } }));
    api.send(NODES, 'not json at all');
    // The server ends the watch cleanly (its timeoutSeconds): reopened from the bookmark's resourceVersion.
    await expect.poll(() => api.open(NODES), poll).toBe(1);
    for (const w of api.watches.get(NODES)!) w.end();
    await expect.poll(() => api.watchRequests(NODES).map((r) => r.query.resourceVersion), poll).toEqual(['10', '20']);
    expect(listed).toBe(1);

    await expect.poll(() => api.open(NODES), poll).toBe(1);
    api.send(NODES, JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } }));
    await expect
      .poll(
        () =>
          view
            .nodes()
            .map((n) => n.metadata.name)
            .sort(),
        poll,
      )
      .toEqual(['b', 'c']);
    expect(listed).toBe(2);
    await expect.poll(() => api.watchRequests(NODES).at(-1)?.query.resourceVersion, poll).toBe('31');
    expect(live!.disconnected()).toEqual({});
  });

  it('reopens a watch that has been silent for 30 s (the injected clock), without a relist or a disconnection', async () => {
    const { whenSynced } = start();
    await whenSynced();
    // Every watch answered first: a request still on its way when the clock jumps would time out.
    await expect.poll(() => [...api.watches.values()].reduce((n, set) => n + set.size, 0), poll).toBe(4);
    await clock.advance(29_000);
    expect(api.watchRequests(NODES)).toHaveLength(1);
    await clock.advance(1_000);
    await expect.poll(() => api.watchRequests(NODES).length, poll).toBe(2);
    expect(api.listRequests(NODES)).toHaveLength(1);
    expect(live!.disconnected()).toEqual({});
  });

  it('gives up on a watch request that gets no answer within the list deadline, says so, and retries', async () => {
    api.hangWatches = true;
    const lv = start({ listTimeoutMs: 300 });
    await lv.whenSynced();
    await expect.poll(() => api.watchRequests(NODES).length, poll).toBe(1);
    expect(lv.disconnected()).toEqual({});
    // All four watches hang and give up, each on its own real-time deadline: wait for the last.
    await expect.poll(() => Object.keys(lv.disconnected()).sort(), poll).toEqual(['agentPods', 'ciliumnodes', 'nodes', 'unscheduledPods']);
    api.hangWatches = false;
    await clock.advance(200); // the backoff (initialMs 20 here)
    await expect.poll(() => api.open(NODES), poll).toBe(1);
    await expect.poll(() => lv.disconnected(), poll).toEqual({});
  });

  it('waits out a 429 (storage initializing) after its retryAfterSeconds, on the clock, without a failure', async () => {
    let refusals = 0;
    api.list = (path) => {
      if (path === NODES && refusals < 2) {
        refusals += 1;
        return {
          status: 429,
          body: { kind: 'Status', code: 429, reason: 'TooManyRequests', message: 'storage is (re)initializing', details: { retryAfterSeconds: 2 } },
        };
      }
      return { body: { items: path === NODES ? [node('a')] : [], metadata: { resourceVersion: '1' } } };
    };
    const lv = start();
    // The wait is on the clock once the 429 has been read: only then can the clock be moved past it.
    const waiting = () => clock.nextAt !== undefined && clock.nextAt <= clock.now() + 2_000;
    await expect.poll(() => api.listRequests(NODES).length, poll).toBe(1);
    await expect.poll(waiting, poll).toBe(true);
    await clock.advance(1_999);
    expect(api.listRequests(NODES)).toHaveLength(1);
    await clock.advance(1);
    await expect.poll(() => api.listRequests(NODES).length, poll).toBe(2);
    await expect.poll(waiting, poll).toBe(true);
    await clock.advance(2_000);
    await lv.whenSynced();
    expect(lv.view.node('a')).toBeDefined();
    expect(api.listRequests(NODES)).toHaveLength(3);
    expect(lv.disconnected()).toEqual({});
  });

  it('reaper caches keep only what the reaper reads of a pod and a CiliumEndpoint', async () => {
    const pod = {
      metadata: {
        name: 'web',
        namespace: 'default',
        uid: 'u1',
        resourceVersion: '5',
        creationTimestamp: '2025-06-02T09:00:00Z',
        labels: { app: 'web' },
        annotations: { 'kubernetes.io/config.mirror': 'x', 'example.com/big': 'y'.repeat(1000) },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-1', uid: 'r1', controller: true }],
        managedFields: [{ manager: 'kubelet' }],
      },
      spec: { nodeName: 'n1', schedulerName: 'default-scheduler', containers: [{ name: 'c', image: 'nginx' }] },
      status: {
        phase: 'Running',
        podIP: '10.0.0.5',
        podIPs: [{ ip: '10.0.0.5' }],
        startTime: '2025-06-02T09:00:01Z',
        conditions: [{ type: 'Ready', status: 'True' }],
        containerStatuses: [{ name: 'c', state: { running: { startedAt: '2025-06-02T09:00:02Z' } } }],
      },
    };
    const cep = {
      metadata: { name: 'web', namespace: 'default', uid: 'c1', labels: { app: 'web' }, ownerReferences: [{ kind: 'Pod', name: 'web' }] },
      status: { state: 'ready', networking: { node: '192.168.0.1', addressing: [{ ipv4: '10.0.0.5' }] }, identity: { id: 1234, labels: ['k8s:app=web'] } },
    };
    api.list = (path) => ({
      body: { items: path === PODS ? [pod] : path === CEPS ? [cep] : [], metadata: { resourceVersion: '1' } },
    });
    const { view, whenSynced } = start({ withReaperCaches: true });
    await whenSynced();
    await expect.poll(() => view.syncState().pods && view.syncState().ciliumEndpoints, poll).toBe(true);
    expect(view.podsOn('n1')).toEqual([
      {
        metadata: {
          name: 'web',
          namespace: 'default',
          uid: 'u1',
          resourceVersion: '5',
          labels: { app: 'web' },
          annotations: { 'kubernetes.io/config.mirror': 'x' },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-1', uid: 'r1', controller: true }],
        },
        spec: { nodeName: 'n1' },
        status: { phase: 'Running', podIP: '10.0.0.5', podIPs: [{ ip: '10.0.0.5' }], startTime: '2025-06-02T09:00:01Z' },
      },
    ]);
    expect(view.ciliumEndpoint('default', 'web')).toEqual({
      metadata: { name: 'web', namespace: 'default' },
      status: { state: 'ready', networking: { node: '192.168.0.1', addressing: [{ ipv4: '10.0.0.5' }] } },
    });
  });
});

describe('the namespaces’ mode labels (src/modes/namespace-modes.ts) on the same list-and-watch', () => {
  const NAMESPACES = '/api/v1/namespaces';
  const ns = (name: string, mode: string | undefined, rv: string): Obj => ({
    metadata: { name, resourceVersion: rv, labels: { team: 'x', ...(mode !== undefined ? { 'cilium-migration-guard.io/mode': mode } : {}) } },
  });

  it('lists and watches only labelled namespaces, keeps name → label, and follows adds, changes and deletes', async () => {
    api.list = (path) =>
      path === NAMESPACES
        ? { body: { items: [ns('team-a', 'enforce', '5'), ns('team-b', 'warn', '6')], metadata: { resourceVersion: '6' } } }
        : { body: { items: [], metadata: { resourceVersion: '1' } } };
    const modes = startNamespaceModes(testAccess(api.url, { token: 'secret-token' }), pino({ level: 'silent' }), {
      backoffMs: { initial: 20, max: 200 },
      clock,
    });
    try {
      await expect.poll(() => modes.synced(), poll).toBe(true);
      expect(modes.all()).toEqual({ 'team-a': 'enforce', 'team-b': 'warn' });
      expect(api.listRequests(NAMESPACES)[0]?.query.labelSelector).toBe('cilium-migration-guard.io/mode');
      await expect.poll(() => api.open(NAMESPACES), poll).toBe(1);
      expect(api.watchRequests(NAMESPACES)[0]?.query).toMatchObject({ labelSelector: 'cilium-migration-guard.io/mode', resourceVersion: '6' });
      api.send(NAMESPACES, JSON.stringify({ type: 'ADDED', object: ns('team-c', 'off', '7') }));
      api.send(NAMESPACES, JSON.stringify({ type: 'MODIFIED', object: ns('team-a', 'warn', '8') }));
      api.send(NAMESPACES, JSON.stringify({ type: 'DELETED', object: ns('team-b', 'warn', '9') }));
      await expect.poll(() => modes.all(), poll).toEqual({ 'team-a': 'warn', 'team-c': 'off' });
      expect(modes.modeLabel('team-c')).toBe('off');
      expect(modes.modeLabel('default')).toBeUndefined();
    } finally {
      await modes.stop();
    }
    await expect.poll(() => api.open(NAMESPACES), poll).toBe(0);
  });
});
