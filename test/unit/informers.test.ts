// startLiveView against a stand-in API server (plain HTTP on 127.0.0.1) that serves lists and
// keeps watches open, so sync detection, selectors, the CRD-missing path, error restarts and
// stop() can be checked in milliseconds. test/e2e/informers.e2e.test.ts runs the same against a
// real kube-apiserver.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { KubeAccess } from '../../src/cluster/kube-config.js';
import { testAccess } from '../support/kube-access.js';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../support/fake-clock.js';
import { defaultConfig } from '../../src/config.js';
import { startLiveView, type LiveView, type LiveViewOptions } from '../../src/cluster/informers.js';
import { ciliumReadiness } from '../../src/cluster/readiness.js';
import { isSynced } from '../../src/cluster/view.js';
import { closeNow } from '../support/loopback.js';

type Obj = {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
};

interface Resource {
  objects: Map<string, Obj>;
  watches: Set<ServerResponse>;
  /** Status code answered to the next list/watch requests instead of data (until cleared). */
  failWith?: number;
  /** While set, lists wait for it. */
  holdLists?: Promise<void>;
}

/** A tiny API server: list (with resourceVersion), watch (held open, events pushed by the test). */
class FakeApiServer {
  readonly requests: Array<{ path: string; query: Record<string, string> }> = [];
  private readonly resources = new Map<string, Resource>();
  private rv = 100;
  private server!: Server;
  url = '';

  resource(path: string): Resource {
    let r = this.resources.get(path);
    if (!r) this.resources.set(path, (r = { objects: new Map(), watches: new Set() }));
    return r;
  }

  /** Listens on `port` (default: a free one; pass the old one to come back after stop()). */
  async start(port = 0): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const r of this.resources.values()) for (const w of r.watches) w.destroy();
    await closeNow(this.server);
  }

  /** The key a resource is registered under: path, plus the selector for /api/v1/pods. */
  private key(path: string, query: Record<string, string>): string {
    return query.fieldSelector ? `${path}?fieldSelector=${query.fieldSelector}` : path;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({ path: url.pathname, query });
    const r = this.resource(this.key(url.pathname, query));
    if (r.failWith) {
      res.writeHead(r.failWith, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: r.failWith, message: 'injected' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    if (query.watch === 'true') {
      res.flushHeaders();
      r.watches.add(res);
      res.on('close', () => r.watches.delete(res));
      return;
    }
    await r.holdLists;
    res.end(JSON.stringify({ kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items: [...r.objects.values()] }));
  }

  /** Changes the stored object set and tells the open watches. */
  emit(key: string, type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: Obj): void {
    const r = this.resource(key);
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
    const id = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    if (type === 'DELETED') r.objects.delete(id);
    else r.objects.set(id, stored);
    for (const w of r.watches) w.write(`${JSON.stringify({ type, object: stored })}\n`);
  }

  seed(key: string, ...objs: Obj[]): void {
    for (const obj of objs)
      this.resource(key).objects.set(`${obj.metadata.namespace ?? ''}/${obj.metadata.name}`, { ...obj, metadata: { ...obj.metadata, resourceVersion: '1' } });
  }

  /** Ends the open watches of a resource (ListWatch then re-watches by itself). */
  endWatches(key: string): void {
    for (const w of this.resource(key).watches) w.end();
  }

  openWatches(): number {
    let n = 0;
    for (const r of this.resources.values()) n += r.watches.size;
    return n;
  }
}

const NODES = '/api/v1/nodes';
const CNS = '/apis/cilium.io/v2/ciliumnodes';
const AGENTS = '/api/v1/namespaces/kube-system/pods';
const UNSCHEDULED = '/api/v1/pods?fieldSelector=spec.nodeName=';

const node = (name: string, labels: Record<string, string> = {}): Obj => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, labels, managedFields: [{ manager: 'kubelet' }] },
  status: { capacity: { cpu: '2' } },
});
const agentPod = (name: string, nodeName: string, ready: boolean): Obj => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'kube-system', labels: { 'k8s-app': 'cilium' } },
  spec: { nodeName, hostNetwork: true, containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium' }] },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: '2025-06-02T09:14:41Z' }] },
});
const ciliumNode = (name: string): Obj => ({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNode',
  metadata: { name },
  spec: { ipam: { podCIDRs: ['10.245.1.0/24'] } },
});

let api: FakeApiServer;
let live: LiveView | undefined;
let logs: Array<Record<string, unknown>>;
/** Restart timers wait for this clock: a restart happens only when a test moves it. */
let clock: FakeClock;
const BACKOFF = { initialMs: 20, maxMs: 200 };

function kubeConfig(server: string): KubeAccess {
  return testAccess(server, { token: 't' });
}

function start(opts: Pick<LiveViewOptions, 'withReaperCaches' | 'withoutUnscheduledPods' | 'onChange'> = {}): LiveView {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  live = startLiveView(kubeConfig(api.url), defaultConfig, pino({ level: 'debug' }, sink), { backoff: BACKOFF, clock, ...opts });
  return live;
}

const poll = { timeout: 5_000, interval: 10 };

/** For expect.poll: moves the clock past the longest backoff (firing any pending restart), then reads. */
const afterRestarts =
  <T>(read: () => T) =>
  async (): Promise<T> => {
    await clock.advance(BACKOFF.maxMs);
    return read();
  };

beforeEach(async () => {
  api = new FakeApiServer();
  await api.start();
  logs = [];
  clock = new FakeClock();
});

afterEach(async () => {
  await live?.stop();
  live = undefined;
  await api.stop();
});

describe('startLiveView', () => {
  it('lists and watches each cache with its selectors, then reports synced', async () => {
    api.seed(NODES, node('n1', { cni: 'cilium' }));
    api.seed(CNS, ciliumNode('n1'));
    api.seed(AGENTS, agentPod('cilium-a', 'n1', true));
    api.seed(UNSCHEDULED, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'default' }, spec: {} });

    const { view, whenSynced } = start();
    expect(isSynced(view)).toBe(false);
    await whenSynced();
    expect(isSynced(view)).toBe(true);
    expect(view.node('n1')).toEqual({ metadata: { name: 'n1', labels: { cni: 'cilium' }, resourceVersion: '1' } });
    expect(ciliumReadiness(view, 'n1', defaultConfig)).toMatchObject({ ready: true, agentPod: 'kube-system/cilium-a' });
    expect(view.unscheduledPod('default', 'web')).toBeDefined();

    await expect.poll(() => api.openWatches(), poll).toBe(4);
    const agentReqs = api.requests.filter((r) => r.path === AGENTS);
    expect(agentReqs.length).toBeGreaterThanOrEqual(2);
    for (const r of agentReqs) expect(r.query.labelSelector).toBe('k8s-app=cilium');
    const podReqs = api.requests.filter((r) => r.path === '/api/v1/pods');
    expect(podReqs.map((r) => r.query.watch ?? 'list').sort()).toEqual(['list', 'true']);
    for (const r of podReqs) expect(r.query.fieldSelector).toBe('spec.nodeName=');
    const list = api.requests.find((r) => r.path === NODES && !r.query.watch)!;
    expect(list.query.limit).toBe('500');
  });

  it('does not report a cache synced before its list has completed', async () => {
    let release!: () => void;
    api.resource(NODES).holdLists = new Promise<void>((resolve) => (release = resolve));
    api.seed(NODES, node('n1'));
    const { view, whenSynced } = start();
    await expect.poll(() => view.syncState().agentPods && view.syncState().ciliumnodes && view.syncState().unscheduledPods, poll).toBe(true);
    // connect has fired, the other caches are in: nodes is still not synced.
    await new Promise((r) => setTimeout(r, 100));
    expect(view.syncState().nodes).toBe(false);
    expect(view.node('n1')).toBeUndefined();
    release();
    await whenSynced();
    expect(view.node('n1')).toBeDefined();
  });

  it('applies watch events: add, update, delete', async () => {
    const { view, whenSynced } = start();
    await whenSynced();
    await expect.poll(() => api.openWatches(), poll).toBe(4);

    api.emit(NODES, 'ADDED', node('n2'));
    await expect.poll(() => view.node('n2'), poll).toBeDefined();
    api.emit(NODES, 'MODIFIED', node('n2', { cni: 'cilium' }));
    await expect.poll(() => view.node('n2')?.metadata.labels?.cni, poll).toBe('cilium');

    api.emit(AGENTS, 'ADDED', agentPod('cilium-b', 'n2', false));
    api.emit(CNS, 'ADDED', ciliumNode('n2'));
    await expect.poll(() => ciliumReadiness(view, 'n2', defaultConfig).gaps, poll).toEqual(['agent-not-ready']);
    api.emit(AGENTS, 'MODIFIED', agentPod('cilium-b', 'n2', true));
    await expect.poll(() => ciliumReadiness(view, 'n2', defaultConfig).ready, poll).toBe(true);

    api.emit(UNSCHEDULED, 'ADDED', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: {} });
    await expect.poll(() => view.unscheduledPod('default', 'p'), poll).toBeDefined();
    // Bound: the field-selected watch reports it leaving as a delete (with nodeName set).
    api.emit(UNSCHEDULED, 'DELETED', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { nodeName: 'n2' } });
    await expect.poll(() => view.unscheduledPod('default', 'p'), poll).toBeUndefined();

    api.emit(NODES, 'DELETED', node('n2'));
    api.emit(AGENTS, 'DELETED', agentPod('cilium-b', 'n2', true));
    await expect.poll(() => view.node('n2'), poll).toBeUndefined();
    await expect.poll(() => view.agentPodsOn('n2'), poll).toEqual([]);
  });

  it('tells an onChange subscriber about each change, after the view holds it', async () => {
    // For each notification: which cache, and whether node n9 was in the view at that moment.
    const seen: Array<[string, boolean]> = [];
    const live = start({ onChange: (cache) => seen.push([cache, live.view.node('n9') !== undefined]) });
    await live.whenSynced();
    await expect.poll(() => api.openWatches(), poll).toBe(4);
    seen.length = 0;
    api.emit(NODES, 'ADDED', node('n9'));
    await expect.poll(() => seen.length, poll).toBe(1);
    api.emit(NODES, 'DELETED', node('n9'));
    await expect
      .poll(() => seen, poll)
      .toEqual([
        ['nodes', true],
        ['nodes', false],
      ]);
  });

  it('logs and skips an object without a name instead of crashing', async () => {
    const { view, whenSynced } = start();
    await whenSynced();
    await expect.poll(() => api.openWatches(), poll).toBe(4);
    api.emit(NODES, 'ADDED', { apiVersion: 'v1', kind: 'Node', metadata: { name: '' } });
    api.emit(NODES, 'ADDED', node('after'));
    await expect.poll(() => view.node('after'), poll).toBeDefined();
    expect(logs.some((l) => l.msg === 'ignoring an object that cannot be trimmed' && l.cache === 'nodes')).toBe(true);
  });

  it('treats a missing CiliumNode CRD as synced-but-empty, warns, and picks it up once installed', async () => {
    api.resource(CNS).failWith = 404;
    const { view, whenSynced } = start();
    await whenSynced();
    expect(view.syncState().ciliumnodes).toBe(true);
    expect(view.ciliumNode('n1')).toBeUndefined();
    const warnings = logs.filter((l) => l.level === 40 && l.cache === 'ciliumnodes');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain('CiliumNode CRD (ciliumnodes.cilium.io/v2) is not installed');

    // Retries (with backoff) and does not repeat the warning.
    await expect
      .poll(
        afterRestarts(() => api.requests.filter((r) => r.path === CNS).length),
        poll,
      )
      .toBeGreaterThanOrEqual(3);
    expect(logs.filter((l) => l.level === 40 && l.cache === 'ciliumnodes')).toHaveLength(1);

    api.seed(CNS, ciliumNode('n1'));
    delete api.resource(CNS).failWith;
    await expect
      .poll(
        afterRestarts(() => view.ciliumNode('n1')),
        poll,
      )
      .toBeDefined();
    expect(logs.some((l) => l.cache === 'ciliumnodes' && String(l.msg).includes('is installed now'))).toBe(true);
  });

  it('tells whether an optional CRD was found (crdMissing), without changing the synced-but-empty behaviour', async () => {
    api.resource('/apis/cilium.io/v2/ciliumendpoints').failWith = 404;
    const lv = start({ withReaperCaches: true });
    await lv.whenSynced();
    await expect.poll(() => lv.view.syncState(), poll).toMatchObject({ pods: true, ciliumEndpoints: true, ciliumConfig: true });
    expect(lv.view.syncState().ciliumnodes).toBe(true);
    expect(lv.crdMissing('ciliumEndpoints')).toBe(true);
    expect(lv.crdMissing('ciliumnodes')).toBe(false);
    expect(lv.crdMissing('nodes')).toBe(false);
    delete api.resource('/apis/cilium.io/v2/ciliumendpoints').failWith;
    await expect
      .poll(
        afterRestarts(() => lv.crdMissing('ciliumEndpoints')),
        poll,
      )
      .toBe(false);
  });

  it('restarts a failed informer with backoff, logging under err, and keeps the last known cache', async () => {
    api.resource(NODES).failWith = 500;
    const lv = start();
    const { view, whenSynced } = lv;
    await expect
      .poll(
        afterRestarts(() => logs.filter((l) => l.cache === 'nodes' && l.level === 50).length),
        poll,
      )
      .toBeGreaterThanOrEqual(3);
    expect(Object.keys(lv.disconnected())).toEqual(['nodes']);
    expect(view.syncState().nodes).toBe(false);
    const failure = logs.find((l) => l.cache === 'nodes' && l.level === 50)!;
    expect(failure.err).toMatchObject({ message: expect.any(String) });
    expect(failure.retryInMs).toBe(20);
    expect(
      logs
        .filter((l) => l.cache === 'nodes' && l.level === 50)
        .map((l) => l.retryInMs)
        .slice(0, 3),
    ).toEqual([20, 40, 80]);

    api.seed(NODES, node('n1'));
    delete api.resource(NODES).failWith;
    await expect
      .poll(
        afterRestarts(() => view.syncState().nodes),
        poll,
      )
      .toBe(true);
    await whenSynced();
    expect(view.node('n1')).toBeDefined();
    await expect.poll(() => lv.disconnected(), poll).toEqual({});

    // The watch breaks and the API server errors for a while: the cache keeps serving.
    await expect.poll(() => api.resource(NODES).watches.size, poll).toBe(1);
    api.resource(NODES).failWith = 500;
    api.endWatches(NODES);
    const errorsBefore = logs.filter((l) => l.cache === 'nodes' && l.level === 50).length;
    await expect
      .poll(
        afterRestarts(() => logs.filter((l) => l.cache === 'nodes' && l.level === 50).length),
        poll,
      )
      .toBeGreaterThan(errorsBefore);
    expect(view.node('n1')).toBeDefined();
    expect(view.syncState().nodes).toBe(true);
    // Still synced (the webhook answers from it), but said to be disconnected (the reaper holds back).
    expect(lv.disconnected().nodes).toMatch(/^\d{4}-\d\d-\d\dT/);

    // Recovery: re-watch from the last resourceVersion and see new events.
    delete api.resource(NODES).failWith;
    await expect
      .poll(
        afterRestarts(() => api.resource(NODES).watches.size),
        poll,
      )
      .toBe(1);
    api.emit(NODES, 'ADDED', node('n3'));
    await expect.poll(() => view.node('n3'), poll).toBeDefined();
    expect(lv.disconnected()).toEqual({});
    expect(logs.some((l) => l.cache === 'nodes' && String(l.msg).includes('watch re-established'))).toBe(true);
  });

  it('starts the backoff over when a server answers again after being unreachable (an API server restart)', async () => {
    api.seed(NODES, node('n1'));
    const lv = start();
    await lv.whenSynced();
    await expect.poll(() => api.resource(NODES).watches.size, poll).toBe(1);
    const port = Number(new URL(api.url).port);
    await api.stop(); // connections reset, then refused: the backoff climbs to its cap (200 ms here)
    const nodeFailures = () => logs.filter((l) => l.cache === 'nodes' && l.level === 50);
    await expect
      .poll(
        afterRestarts(() => nodeFailures().map((l) => l.retryInMs)),
        poll,
      )
      .toContain(200);
    expect(lv.disconnected().nodes).toBeDefined();
    api.resource(NODES).failWith = 503; // back, but still starting
    await api.start(port);
    const is503 = (l: (typeof logs)[number]) => {
      const err = l.err as { statusCode?: number; code?: number };
      return err.statusCode === 503 || err.code === 503;
    };
    await expect
      .poll(
        afterRestarts(() => nodeFailures().some(is503)),
        poll,
      )
      .toBe(true);
    const first503 = nodeFailures().find(is503)!;
    expect(first503.retryInMs).toBe(20);
    delete api.resource(NODES).failWith;
    await expect
      .poll(
        afterRestarts(() => lv.disconnected()),
        poll,
      )
      .toEqual({});
  });

  it('starts the restart backoff over only after a healthy period as long as the longest delay', async () => {
    const retries = () => logs.filter((l) => l.cache === 'nodes' && l.level === 50).map((l) => l.retryInMs as number);
    /** Lets the nodes informer recover, and waits until its watch delivers an event (its start has returned). */
    const recover = async (name: string) => {
      delete api.resource(NODES).failWith;
      await clock.advance(BACKOFF.maxMs); // fires the pending restart; the clock stands still from here
      await expect.poll(() => api.resource(NODES).watches.size, poll).toBe(1);
      api.emit(NODES, 'ADDED', node(name));
      await expect.poll(() => view.node(name), poll).toBeDefined();
    };
    const breakWatch = async () => {
      const before = retries().length;
      api.resource(NODES).failWith = 500;
      api.endWatches(NODES);
      await expect.poll(() => retries().length, poll).toBe(before + 1);
      return retries().at(-1);
    };

    api.resource(NODES).failWith = 500;
    const { view } = start();
    await expect
      .poll(
        afterRestarts(() => retries().length),
        poll,
      )
      .toBeGreaterThanOrEqual(3);
    expect(retries().slice(0, 3)).toEqual([20, 40, 80]);

    // Healthy for less than maxMs: the delays keep growing.
    await recover('n1');
    const grown = await breakWatch();
    expect(grown).toBeGreaterThan(80);

    // Healthy for maxMs: the next failure starts over at initialMs.
    await recover('n2');
    await clock.advance(BACKOFF.maxMs);
    expect(await breakWatch()).toBe(BACKOFF.initialMs);
  });

  it('leaves out the unscheduled-pods watch when asked (the reaper), counting that cache as synced', async () => {
    const lv = start({ withReaperCaches: true, withoutUnscheduledPods: true });
    await lv.whenSynced();
    expect(api.requests.some((r) => r.path === '/api/v1/pods' && r.query.fieldSelector === 'spec.nodeName=')).toBe(false);
    expect(lv.view.syncState().unscheduledPods).toBe(true);
    // The reaper's caches do not gate whenSynced(): their list may still be on its way.
    await expect.poll(() => api.requests.some((r) => r.path === '/api/v1/pods' && !r.query.fieldSelector), poll).toBe(true);
  });

  it('runs the reaper caches only when asked', async () => {
    api.seed('/api/v1/pods', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'api', namespace: 'default' }, spec: { nodeName: 'n1' } });
    api.resource('/apis/cilium.io/v2/ciliumendpoints').failWith = 404;
    const { view, whenSynced } = start({ withReaperCaches: true });
    await whenSynced();
    await expect.poll(() => view.syncState(), poll).toMatchObject({ pods: true, ciliumEndpoints: true, ciliumConfig: true });
    expect(view.podsOn('n1').map((p) => p.metadata.name)).toEqual(['api']);
    await live!.stop();

    api.requests.length = 0;
    live = start();
    await live.whenSynced();
    // Lists only: a watch the stopped view had just sent may still reach the server after the clear.
    const lists = api.requests.filter((r) => r.query.watch !== 'true');
    expect(lists.some((r) => r.path === '/apis/cilium.io/v2/ciliumendpoints')).toBe(false);
    expect(lists.some((r) => r.path === '/api/v1/pods' && !r.query.fieldSelector)).toBe(false);
    expect(lists.some((r) => r.path.endsWith('/configmaps'))).toBe(false);
    expect(live.view.syncState()).toMatchObject({ pods: false, ciliumEndpoints: false, ciliumConfig: false });
  });

  it('keeps container start times for Cilium agent pods only (memory), and derives the migration label time from managedFields', async () => {
    const withStarts = (obj: Obj): Obj => ({
      ...obj,
      status: {
        ...(obj.status as object),
        initContainerStatuses: [{ name: 'config', state: { terminated: { startedAt: '2025-06-02T09:14:05Z' } } }],
        containerStatuses: [{ name: 'cilium-agent', state: { running: { startedAt: '2025-06-02T09:14:06Z' } } }],
      },
    });
    const agentObj = withStarts(agentPod('cilium-a', 'n1', true));
    api.seed(AGENTS, agentObj);
    api.seed(
      '/api/v1/pods',
      agentObj,
      withStarts({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'default' }, spec: { nodeName: 'n1' } }),
    );
    api.seed(NODES, {
      ...node('n1', { cni: 'cilium' }),
      metadata: {
        name: 'n1',
        labels: { cni: 'cilium' },
        managedFields: [{ manager: 'kubectl-label', time: '2025-06-02T09:00:00Z', fieldsV1: { 'f:metadata': { 'f:labels': { 'f:cni': {} } } } }],
      },
    });
    const { view, whenSynced } = start({ withReaperCaches: true });
    await whenSynced();
    await expect.poll(() => view.syncState().pods, poll).toBe(true);
    expect(view.agentPodsOn('n1')[0]!.status?.initContainerStatuses).toEqual([{ name: 'config', startedAt: '2025-06-02T09:14:05Z' }]);
    for (const pod of view.podsOn('n1')) expect(pod.status).not.toHaveProperty('containerStatuses');
    expect(view.node('n1')?.labelSetAt).toEqual({ cni: '2025-06-02T09:00:00Z' });
  });

  it("reaper caches: watches only Cilium's ConfigMap (by name) and reads disable-endpoint-crd from it", async () => {
    const CM = '/api/v1/namespaces/kube-system/configmaps?fieldSelector=metadata.name=cilium-config';
    const cm = (value: string): Obj =>
      ({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'cilium-config', namespace: 'kube-system' },
        data: { 'disable-endpoint-crd': value, 'cluster-name': 'x' },
      }) as Obj;
    const { view, whenSynced } = start({ withReaperCaches: true });
    await whenSynced();
    await expect.poll(() => view.syncState().ciliumConfig, poll).toBe(true);
    expect(view.ciliumConfig()).toBeUndefined();
    const lists = api.requests.filter((r) => r.path === '/api/v1/namespaces/kube-system/configmaps');
    expect(lists.length).toBeGreaterThan(0);
    expect(lists.every((r) => r.query.fieldSelector === 'metadata.name=cilium-config')).toBe(true);
    await expect.poll(() => api.resource(CM).watches.size, poll).toBe(1);
    api.emit(CM, 'ADDED', cm('true'));
    await expect.poll(() => view.ciliumConfig(), poll).toEqual({ endpointCRDDisabled: true });
    api.emit(CM, 'MODIFIED', cm('false'));
    await expect.poll(() => view.ciliumConfig(), poll).toEqual({ endpointCRDDisabled: false });
    api.emit(CM, 'DELETED', cm('false'));
    await expect.poll(() => view.ciliumConfig(), poll).toBeUndefined();
  });

  it('stop() closes every watch and cancels pending restarts', async () => {
    api.resource(CNS).failWith = 404;
    const lv = start();
    await lv.whenSynced();
    await expect.poll(() => api.openWatches(), poll).toBe(3);
    await lv.stop();
    await expect.poll(() => api.openWatches(), poll).toBe(0);
    expect(clock.pending).toBe(0);
    const count = api.requests.length;
    await clock.advance(BACKOFF.maxMs * 10);
    await new Promise((r) => setImmediate(r));
    expect(api.requests.length).toBe(count);
    expect(logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('whenSynced() rejects when stopped before the caches synced', async () => {
    api.resource(NODES).failWith = 500;
    const lv = start();
    const waiting = lv.whenSynced();
    await lv.stop();
    await expect(waiting).rejects.toThrow('stopped before its caches synced');
  });
});
