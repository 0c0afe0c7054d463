// The live ClusterView: one list-and-watch per cache, each listing/watching as little as the API
// server can filter for us, feeding trimmed objects into a MemoryClusterView.
//
//   nodes            /api/v1/nodes                                  (all)
//   ciliumnodes      /apis/cilium.io/v2/ciliumnodes                 (all; CRD may be missing)
//   agentPods        /api/v1/namespaces/<cilium ns>/pods            labelSelector = cilium.agentLabels
//   unscheduledPods  /api/v1/pods                                   fieldSelector = spec.nodeName=
//   with { withReaperCaches: true } also:
//   pods             /api/v1/pods                                   (all, for podsOn())
//   ciliumEndpoints  /apis/cilium.io/v2/ciliumendpoints             (all; CRD may be missing)
//   ciliumConfig     /api/v1/namespaces/<cilium ns>/configmaps      fieldSelector = metadata.name=cilium-config
//                    (one object; RBAC limited to it by resourceNames, which list/watch honour with this selector)
//
// Lists and watches are raw JSON (raw-api.ts), trimmed straight from the parsed JSON: no
// client-node model objects, and no second copy of each object in an informer cache (the view
// holds the trimmed objects; the runner keeps only their keys, to find deletions on a relist).
// How it follows the API server (as client-go's reflector and client-node's ListWatch 2.0.1 do,
// read in client-go tools/cache/reflector.go and client-node dist/cache.js, dist/watch.js):
// - List all pages (`limit`, `continue`) with the cache's selectors; a cache is "synced" once its
//   first list has been applied. Then watch from the list's resourceVersion, with bookmarks
//   (allowWatchBookmarks: kube-apiserver's cacher sends one every minute and one before the
//   watch's deadline, cacher.go defaultBookmarkFrequency) and a server-side timeoutSeconds
//   (5–10 min, as client-go's reflector): the watch then ends cleanly and is reopened from the
//   last resourceVersion seen, at once.
// - 410 Gone (on the watch request, or an ERROR event with code 410: the resourceVersion was
//   compacted) → relist at once; the relist diffs against the keys held and removes what is gone.
// - A watch that sends nothing for 30 s (client-node's inactivity timeout, kept) is reopened at
//   once from its resourceVersion: a half-open connection cannot leave a cache silently stale.
// - A watch the server ends cleanly without an event within 1 s is reopened after initialMs
//   (client-go treats it as an error: "very short watch"), so a server that ends every watch at
//   once is not hammered.
// - A 429 (a CRD's storage initializing, priority and fairness) is waited out and retried after
//   its Retry-After, up to 10 times, as client-go's rest client does, before it counts as a failure.
// - Any other failure (list or watch refused, reset, timed out, answered non-200) is retried with
//   capped exponential backoff (1 s → 5 s by default), keeping the last known cache.
//   The cap is 5 s, not client-go's 30 s: a failing attempt costs the API server one refused
//   connection or one error answer, and after an API server restart the caches are current again
//   within seconds rather than up to half a minute later (measured: docs/reliability.md, "Faults").
//   The first HTTP answer after failures without one starts the backoff over: a restarted API
//   server answers 503 while it starts and 429 while a CRD's storage initializes, and the doubling
//   spent on a server that was not there would add up to the cap again.
// - "Synced" means "has completed a first list" and stays true: the webhook keeps answering from
//   its last known cache while the API server is away. Whether each cache is connected NOW is
//   tracked apart (disconnected()): from the first failure until a restart of it lists (if it
//   must) and gets its watch's response headers again. The reaper does not act meanwhile.
// - No periodic resync: client-go's only re-delivers cached objects to handlers; the reaper runs
//   its own periodic pass over the view.
// - stop() aborts the list or watch in flight and cancels pending restarts.
// Every timer (backoff, inactivity, short-watch pause) goes through the injected clock; the
// deadlines of a list page and of a watch request's answer (listTimeoutMs) are real time.

import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { systemClock, type Clock, type Timer } from '../clock.js';
import type { Config } from '../config.js';
import { isNotFound } from './kube-client.js';
import type { KubeAccess } from './kube-config.js';
import { MemoryClusterView, type PodFeed } from './memory.js';
import { listPage, get, query, readEvents, seg, type RawObject, type WatchEvent } from './raw-api.js';
import { trimCiliumConfig, trimCiliumNode, trimNode, trimPod, trimPodForReaper, trimCiliumEndpointForReaper } from './trim.js';
import {
  CACHE_NAMES,
  isSynced,
  type CacheName,
  type CiliumConfigInfo,
  type CiliumEndpointInfo,
  type CiliumNodeInfo,
  type FullClusterView,
  type NodeInfo,
  type PodInfo,
  type ReaperCacheName,
} from './view.js';

export interface LiveViewOptions {
  /** Also cache all pods (podsOn) and CiliumEndpoints, for the reaper. Off by default. */
  withReaperCaches?: boolean;
  /**
   * Leave out the unscheduled-pods cache, which only the pod webhook reads (bindings): the reaper
   * and `report` save a cluster-wide watch. The cache then counts as synced and stays empty.
   */
  withoutUnscheduledPods?: boolean;
  /** Restart delays after an informer error: doubles from initialMs up to maxMs. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Deadline of each list request (one page), and of a watch request's answer (its headers). */
  listTimeoutMs?: number;
  /** Page size of list requests. */
  pageSize?: number;
  /** Ask the API server for gzip (off by default: on a near network it costs more CPU than it saves; docs/benchmarks.md). */
  gzip?: boolean;
  /** Called after every change applied to the view (add, update or delete), with the cache's name. */
  onChange?: (cache: CacheName | ReaperCacheName) => void;
  /** Restart timers and the healthy-period measure of the backoff; injectable for tests. */
  clock?: Clock;
}

export interface LiveView {
  view: FullClusterView;
  /** Resolves once every webhook cache (CacheName) has completed its first list; rejects if stopped first. */
  whenSynced(): Promise<void>;
  /**
   * Caches whose list or watch failed and has not been re-established since, each with the time
   * (ISO 8601) of the first failure. Empty while every cache is watching. Their contents are the
   * last known state: possibly stale.
   */
  disconnected(): Partial<Record<CacheName | ReaperCacheName, string>>;
  /**
   * For a cache of an optional CRD (ciliumnodes, ciliumEndpoints): true while its list answers 404
   * (the CRD is not installed), false once a list succeeded. Such a cache still counts as synced
   * (empty), which is what the webhook wants; the reaper must not act on it. False for other caches.
   */
  crdMissing(cache: CacheName | ReaperCacheName): boolean;
  stop(): Promise<void>;
}

const DEFAULT_BACKOFF = { initialMs: 1_000, maxMs: 5_000 };
const DEFAULT_LIST_TIMEOUT_MS = 60_000;
const DEFAULT_PAGE_SIZE = 500;
/** A watch silent this long is reopened (client-node's Watch used the same). */
const WATCH_INACTIVITY_MS = 30_000;
/** A watch ended by the server sooner than this, without an event, is reopened after a pause. */
const SHORT_WATCH_MS = 1_000;
/** A continue token that expires (410) restarts the list; this many times at most per attempt. */
const LIST_RESTARTS = 3;
/**
 * A 429 (a CRD's storage initializing, priority and fairness) is retried after its Retry-After
 * (details.retryAfterSeconds, 1 s if none, at most 10 s), this many times, before it counts as a
 * failure: client-go's rest client does the same (request.go, maxRetries 10 for Retry-After).
 */
const TOO_MANY_REQUESTS_RETRIES = 10;

/** One list-and-watch: what it lists and watches, and what it does with each object. */
export interface CacheSpec<Name extends string = CacheName | ReaperCacheName> {
  name: Name;
  /** Human name for logs. */
  what: string;
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** A CRD that may not be installed: a 404 means "none yet", not a failure. */
  optionalCrd?: string;
  /** The parsed JSON object → what the view stores (throws TrimError on an object it cannot key). */
  trim(raw: RawObject): unknown;
  /** Puts a trimmed object into the view. */
  store(trimmed: unknown): void;
  remove(namespace: string | undefined, name: string): void;
}

export function labelSelector(labels: Record<string, string>): string | undefined {
  const parts = Object.entries(labels).map(([key, value]) => `${key}=${value}`);
  return parts.length > 0 ? parts.join(',') : undefined;
}

/** The HTTP status of a failed list or watch (ApiStatusError's statusCode), if the server answered. */
function answerStatus(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  const status = typeof e?.statusCode === 'number' ? e.statusCode : typeof e?.code === 'number' ? e.code : undefined;
  return status !== undefined && status >= 100 && status < 600 ? status : undefined;
}

/** "namespace/name" ("/name" for cluster-scoped objects), the key a relist diffs on. */
function keyOf(raw: RawObject): string | undefined {
  const meta = raw.metadata;
  const name = typeof meta?.name === 'string' ? meta.name : '';
  if (!name) return undefined;
  return `${typeof meta?.namespace === 'string' ? meta.namespace : ''}/${name}`;
}

function resourceVersionOf(raw: RawObject): string | undefined {
  const rv = raw.metadata?.resourceVersion;
  return typeof rv === 'string' && rv !== '' ? rv : undefined;
}

/** Why a watch was ended from our side (the body then errors; this says what to do next). */
type WatchEnd = 'relist' | 'inactive' | undefined;

class CacheRunner<Name extends string = CacheName | ReaperCacheName> {
  private readonly log: Logger;
  private readonly stopSignal = new AbortController();
  private delayMs: number;
  private timer: Timer | undefined;
  private stopped = false;
  private synced = false;
  private crdMissing = false;
  /** The resourceVersion to watch from; '' → list first. */
  private resourceVersion = '';
  /** Keys of the objects this cache put into the view (to remove on a relist what has gone). */
  private known = new Set<string>();
  /** The watch in flight, to end it from our side. */
  private watchAbort: AbortController | undefined;
  private watchEnd: WatchEnd;
  private inactivity: Timer | undefined;

  get name(): Name {
    return this.spec.name;
  }

  /** The optional CRD answered 404 on the last list (and no list has succeeded since). */
  get missingCrd(): boolean {
    return this.crdMissing;
  }
  private healthySince: number | undefined;
  /** When the list or watch first failed since it last ran fine; undefined while connected. */
  private failedSince: number | undefined;
  /** The last failure got no HTTP answer (connection refused, reset, timeout). */
  private lastFailureUnanswered = false;

  /** Since when (ms) this cache has been disconnected, if it is. A missing optional CRD is not a disconnection. */
  get disconnectedSince(): number | undefined {
    return this.failedSince;
  }

  constructor(
    private readonly spec: CacheSpec<Name>,
    private readonly kc: KubeAccess,
    logger: Logger,
    private readonly backoff: { initialMs: number; maxMs: number },
    private readonly listTimeoutMs: number,
    private readonly pageSize: number,
    private readonly gzip: boolean,
    /** Once, after the first list (or a missing optional CRD). */
    private readonly onSynced: () => void,
    private readonly clock: Clock,
  ) {
    this.log = logger.child({ cache: spec.name });
    this.delayMs = backoff.initialMs;
  }

  private trim(raw: RawObject): unknown {
    try {
      return this.spec.trim(raw);
    } catch (err) {
      const meta = raw?.metadata;
      this.log.warn({ err, name: meta?.name, namespace: meta?.namespace }, 'ignoring an object that cannot be trimmed');
      return undefined;
    }
  }

  /** Runs a request, waiting out and retrying 429 answers (TOO_MANY_REQUESTS_RETRIES). */
  private async patiently<T>(request: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await request();
      } catch (err) {
        const e = err as { statusCode?: unknown; retryAfterSeconds?: unknown } | null;
        if (e?.statusCode !== 429 || attempt >= TOO_MANY_REQUESTS_RETRIES || this.stopped) throw err;
        const seconds = typeof e.retryAfterSeconds === 'number' && e.retryAfterSeconds > 0 ? Math.min(e.retryAfterSeconds, 10) : 1;
        this.log.debug({ retryInMs: seconds * 1000, attempt }, `${this.spec.what}: the API server asked to retry later (429)`);
        await this.clock.sleep(seconds * 1000, this.stopSignal.signal);
      }
    }
  }

  private removeKey(key: string): void {
    const slash = key.indexOf('/');
    this.spec.remove(key.slice(0, slash) || undefined, key.slice(slash + 1));
  }

  /** Lists every page (trimming page by page), then replaces the cache's contents with the result. */
  private async relist(): Promise<void> {
    let restarts = 0;
    let objects: Array<{ key: string; trimmed: unknown }> = [];
    let resourceVersion = '';
    let cont: string | undefined;
    for (;;) {
      const path =
        this.spec.path + query({ labelSelector: this.spec.labelSelector, fieldSelector: this.spec.fieldSelector, limit: this.pageSize, continue: cont });
      let page;
      try {
        page = await this.patiently(() =>
          listPage(this.kc, path, { signal: AbortSignal.any([AbortSignal.timeout(this.listTimeoutMs), this.stopSignal.signal]), gzip: this.gzip }),
        );
      } catch (err) {
        // The continue token expired between pages: start the list over (client-go's pager does the same).
        if (cont !== undefined && answerStatus(err) === 410 && restarts < LIST_RESTARTS) {
          restarts += 1;
          objects = [];
          cont = undefined;
          continue;
        }
        throw err;
      }
      if (this.stopped) throw new Error('informer stopped during its list');
      for (const raw of page.items) {
        const key = keyOf(raw);
        const trimmed = this.trim(raw);
        if (key !== undefined && trimmed !== undefined) objects.push({ key, trimmed });
      }
      resourceVersion = page.resourceVersion || resourceVersion;
      cont = page.continue;
      if (cont === undefined) break;
    }

    const seen = new Set<string>();
    for (const { key, trimmed } of objects) {
      seen.add(key);
      this.spec.store(trimmed);
    }
    for (const key of this.known) if (!seen.has(key)) this.removeKey(key);
    this.known = seen;
    this.resourceVersion = resourceVersion;
    this.listed(objects.length);
  }

  private listed(count: number): void {
    if (this.stopped) return;
    if (this.crdMissing) {
      this.crdMissing = false;
      this.log.info({ objects: count }, `${this.spec.optionalCrd} is installed now; caching ${this.spec.what}`);
    }
    if (!this.synced) {
      this.synced = true;
      this.log.info({ objects: count }, `${this.spec.what} cache synced`);
      this.onSynced();
    }
  }

  private event(event: WatchEvent): void {
    try {
      this.applyEvent(event);
    } catch (err) {
      // A failure applying one event (in the view or a subscriber) must not take the process down.
      this.log.error({ err, type: event.type }, 'failed to apply a watch event; continuing');
    }
  }

  private applyEvent(event: WatchEvent): void {
    const obj = event.object;
    switch (event.type) {
      case 'ADDED':
      case 'MODIFIED': {
        const key = keyOf(obj);
        const trimmed = this.trim(obj);
        if (key !== undefined && trimmed !== undefined) {
          this.known.add(key);
          this.spec.store(trimmed);
        }
        break;
      }
      case 'DELETED': {
        const key = keyOf(obj);
        if (key !== undefined) {
          this.known.delete(key);
          this.removeKey(key);
        }
        break;
      }
      case 'BOOKMARK':
        break;
      case 'ERROR': {
        // A Status. 410: our resourceVersion is too old: relist. Anything else ends the watch as a failure.
        const code = typeof obj.code === 'number' ? obj.code : undefined;
        if (code === 410) {
          this.resourceVersion = '';
          this.endWatch('relist');
        } else {
          this.watchFailure = Object.assign(
            new Error(`watch error event: ${typeof obj.message === 'string' ? obj.message : JSON.stringify(obj).slice(0, 200)}`),
            {
              ...(code !== undefined ? { statusCode: code } : {}),
            },
          );
          this.endWatch(undefined);
        }
        return;
      }
      default:
        return;
    }
    this.resourceVersion = resourceVersionOf(obj) ?? this.resourceVersion;
  }

  /** An ERROR event other than 410, reported once the watch has ended. */
  private watchFailure: Error | undefined;

  private endWatch(why: WatchEnd): void {
    this.watchEnd = why;
    this.watchAbort?.abort();
  }

  start(): void {
    void this.run();
  }

  /** Lists if it must, opens the watch; on success the watch is read in the background. */
  private async run(): Promise<void> {
    if (this.stopped) return;
    let body: Readable;
    const abort = new AbortController();
    try {
      if (!this.resourceVersion) await this.relist();
      if (this.stopped) return;
      this.watchAbort = abort;
      this.watchEnd = undefined;
      this.watchFailure = undefined;
      // client-go's reflector: a random server-side timeout between 5 and 10 minutes.
      const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
      const path =
        this.spec.path +
        query({
          labelSelector: this.spec.labelSelector,
          fieldSelector: this.spec.fieldSelector,
          watch: true,
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
        });
      // A server that takes the connection but sends no answer: give up after the list deadline
      // (real time, like the list pages' AbortSignal.timeout; the signal stays on the request, so
      // the deadline is a timer cleared once the answer has come, not a timeout signal).
      const deadline = setTimeout(
        () => abort.abort(new DOMException(`the watch request got no answer within ${this.listTimeoutMs} ms`, 'TimeoutError')),
        this.listTimeoutMs,
      );
      deadline.unref();
      try {
        body = await this.patiently(() => get(this.kc, path, { signal: AbortSignal.any([abort.signal, this.stopSignal.signal]), gzip: this.gzip }));
      } finally {
        clearTimeout(deadline);
      }
    } catch (err) {
      if (this.stopped) return;
      // 410 on the watch request itself: the resourceVersion is too old; relist at once.
      if (answerStatus(err) === 410 && this.resourceVersion) {
        this.resourceVersion = '';
        void this.run();
        return;
      }
      this.failed(err);
      return;
    }
    if (this.stopped) {
      body.destroy();
      return;
    }
    if (this.healthySince === undefined) this.healthySince = this.clock.now();
    if (this.failedSince !== undefined) {
      this.log.info({ disconnectedMs: this.clock.now() - this.failedSince }, `${this.spec.what} watch re-established`);
      this.failedSince = undefined;
    }
    void this.consume(body);
  }

  /** Reads the watch until it ends, then decides what comes next. */
  private async consume(body: Readable): Promise<void> {
    const openedAt = this.clock.now();
    let lastData = openedAt;
    let events = 0;
    const arm = (ms: number): void => {
      this.inactivity = this.clock.setTimeout(
        () => {
          const silent = this.clock.now() - lastData;
          if (silent >= WATCH_INACTIVITY_MS) this.endWatch('inactive');
          else arm(WATCH_INACTIVITY_MS - silent);
        },
        ms,
        { unref: true },
      );
    };
    arm(WATCH_INACTIVITY_MS);
    let error: unknown;
    try {
      await readEvents(
        body,
        (event) => {
          events += 1;
          this.event(event);
        },
        () => {
          lastData = this.clock.now();
        },
        (line) => this.log.warn({ line }, 'ignoring a watch line that is not a JSON event'),
      );
    } catch (err) {
      error = err;
    } finally {
      this.inactivity?.clear();
      this.inactivity = undefined;
      this.watchAbort = undefined;
    }
    if (this.stopped) return;
    const why = this.watchEnd;
    this.watchEnd = undefined;
    if (why === 'relist' || why === 'inactive') {
      void this.run();
      return;
    }
    if (this.watchFailure || error !== undefined) {
      this.failed(this.watchFailure ?? error);
      return;
    }
    // A clean end (the server's timeoutSeconds, or it shutting down): reopen from the last resourceVersion.
    if (events === 0 && this.clock.now() - openedAt < SHORT_WATCH_MS) this.schedule(this.backoff.initialMs);
    else void this.run();
  }

  private schedule(delay: number): void {
    this.timer = this.clock.setTimeout(
      () => {
        this.timer = undefined;
        void this.run();
      },
      delay,
      { unref: true },
    );
  }

  private failed(err: unknown): void {
    if (this.stopped) return;
    if (this.timer) return; // a restart is already scheduled
    if (this.healthySince !== undefined && this.clock.now() - this.healthySince >= this.backoff.maxMs) {
      this.delayMs = this.backoff.initialMs; // it had been running fine: start the backoff over
    }
    this.healthySince = undefined;
    // The first HTTP answer after failures without one (a restarted API server: 503 while it
    // starts, 429 while a CRD's storage initializes) starts the backoff over: the doubling was
    // spent on a server that was not there, and would delay the recovery by up to the cap.
    const answered = answerStatus(err) !== undefined;
    if (answered && this.lastFailureUnanswered) this.delayMs = this.backoff.initialMs;
    this.lastFailureUnanswered = !answered;
    const delay = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, this.backoff.maxMs);

    const crdNotFound = this.spec.optionalCrd !== undefined && isNotFound(err);
    // The API server answered (the CRD is not there): connected, just empty.
    if (crdNotFound) this.failedSince = undefined;
    else this.failedSince ??= this.clock.now();
    if (crdNotFound) {
      if (!this.crdMissing) {
        this.log.warn(
          { retryInMs: delay },
          `${this.spec.optionalCrd} is not installed: treating ${this.spec.what} as none and retrying with backoff` +
            (this.spec.name === 'ciliumnodes' ? ' (until it exists, no node counts as Cilium-ready)' : ''),
        );
      }
      this.crdMissing = true;
      // Synced-but-empty: the webhook becomes ready and answers from what it knows.
      if (!this.synced) {
        this.synced = true;
        this.onSynced();
      }
    } else {
      this.log.error({ err, retryInMs: delay }, `${this.spec.what} informer failed; serving the last known cache and restarting`);
    }
    this.schedule(delay);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timer?.clear();
    this.timer = undefined;
    this.inactivity?.clear();
    this.inactivity = undefined;
    this.stopSignal.abort();
    this.watchAbort?.abort();
  }
}

/** The ConfigMap Cilium's agent reads its options from (Helm chart templates/cilium-configmap.yaml). */
export const CILIUM_CONFIGMAP = 'cilium-config';

export function startLiveView(kc: KubeAccess, config: Pick<Config, 'cilium' | 'nodeLabel'>, logger: Logger, options: LiveViewOptions = {}): LiveView {
  const view = new MemoryClusterView(config, { synced: false });
  const log = logger.child({ component: 'cluster-view' });
  const backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  const ns = config.cilium.namespace;
  const agentSelector = labelSelector(config.cilium.agentLabels);

  // The pod caches differ only in what they list, how much of a pod they keep, and which index of the view they feed.
  const podCache = (
    name: CacheSpec['name'],
    what: string,
    path: string,
    feed: PodFeed,
    trim: (raw: unknown) => PodInfo,
    selectors: { labelSelector?: string; fieldSelector?: string } = {},
  ): CacheSpec => ({
    name,
    what,
    path,
    ...selectors,
    trim,
    store: (pod) => view.upsertPod(pod as PodInfo, feed),
    remove: (podNs, podName) => view.deletePod(podNs, podName, feed),
  });

  const specs: CacheSpec[] = [
    {
      name: 'nodes',
      what: 'Nodes',
      path: '/api/v1/nodes',
      trim: (raw) => trimNode(raw, { labelKeys: [config.nodeLabel.key] }),
      store: (node) => view.upsertNode(node as NodeInfo),
      remove: (_ns, name) => view.deleteNode(name),
    },
    {
      name: 'ciliumnodes',
      what: 'CiliumNodes',
      path: '/apis/cilium.io/v2/ciliumnodes',
      optionalCrd: 'the CiliumNode CRD (ciliumnodes.cilium.io/v2)',
      trim: (raw) => trimCiliumNode(raw),
      store: (cn) => view.upsertCiliumNode(cn as CiliumNodeInfo),
      remove: (_ns, name) => view.deleteCiliumNode(name),
    },
    podCache(
      'agentPods',
      `Cilium agent pods (${ns}, ${agentSelector ?? 'all labels'})`,
      `/api/v1/namespaces/${seg(ns)}/pods`,
      'agent',
      // Container start times are read for Cilium agent pods only.
      (raw) => trimPod(raw),
      agentSelector ? { labelSelector: agentSelector } : {},
    ),
  ];

  if (options.withoutUnscheduledPods) {
    view.setSynced('unscheduledPods', true);
  } else {
    specs.push(
      podCache('unscheduledPods', 'unscheduled pods', '/api/v1/pods', 'unscheduled', (raw) => trimPod(raw, { containerStarts: false }), {
        fieldSelector: 'spec.nodeName=',
      }),
    );
  }

  if (options.withReaperCaches) {
    specs.push(
      // Every pod, trimmed to what the reaper's decisions read (trimPodForReaper).
      podCache('pods', 'pods', '/api/v1/pods', 'all', trimPodForReaper),
      {
        name: 'ciliumEndpoints',
        what: 'CiliumEndpoints',
        path: '/apis/cilium.io/v2/ciliumendpoints',
        optionalCrd: 'the CiliumEndpoint CRD (ciliumendpoints.cilium.io/v2)',
        trim: trimCiliumEndpointForReaper,
        store: (cep) => view.upsertCiliumEndpoint(cep as CiliumEndpointInfo),
        remove: (cepNs, name) => view.deleteCiliumEndpoint(cepNs, name),
      },
      {
        name: 'ciliumConfig',
        what: `ConfigMap ${ns}/${CILIUM_CONFIGMAP}`,
        path: `/api/v1/namespaces/${seg(ns)}/configmaps`,
        fieldSelector: `metadata.name=${CILIUM_CONFIGMAP}`,
        trim: (raw) => trimCiliumConfig(raw),
        store: (info) => view.setCiliumConfig(info as CiliumConfigInfo),
        remove: () => view.setCiliumConfig(undefined),
      },
    );
  }

  let resolveSynced!: () => void;
  let rejectSynced!: (err: Error) => void;
  const synced = new Promise<void>((resolve, reject) => {
    resolveSynced = resolve;
    rejectSynced = reject;
  });
  synced.catch(() => {}); // rejection (stopped before sync) matters only to those who wait
  let syncedOnce = false;
  const onSynced = (): void => {
    if (!syncedOnce && isSynced(view)) {
      syncedOnce = true;
      log.info({ caches: CACHE_NAMES, sizes: view.sizes() }, 'cluster view synced');
      resolveSynced();
    }
  };

  // Subscribers (the reaper) hear of a change after the view holds it.
  const notify = options.onChange;
  const observed = notify
    ? specs.map((spec) => ({
        ...spec,
        store: (trimmed: unknown) => {
          spec.store(trimmed);
          notify(spec.name);
        },
        remove: (namespace: string | undefined, name: string) => {
          spec.remove(namespace, name);
          notify(spec.name);
        },
      }))
    : specs;

  const runners = observed.map(
    (spec) =>
      new CacheRunner(
        spec,
        kc,
        log,
        backoff,
        options.listTimeoutMs ?? DEFAULT_LIST_TIMEOUT_MS,
        options.pageSize ?? DEFAULT_PAGE_SIZE,
        options.gzip ?? false,
        () => {
          view.setSynced(spec.name, true);
          onSynced();
        },
        options.clock ?? systemClock,
      ),
  );
  for (const runner of runners) runner.start();

  let stopping: Promise<void> | undefined;
  return {
    view,
    whenSynced: () => synced,
    crdMissing: (cache) => runners.some((r) => r.name === cache && r.missingCrd),
    disconnected: () => {
      const out: Partial<Record<CacheName | ReaperCacheName, string>> = {};
      for (const r of runners) if (r.disconnectedSince !== undefined) out[r.name] = new Date(r.disconnectedSince).toISOString();
      return out;
    },
    stop: () => {
      stopping ??= (async () => {
        await Promise.all(runners.map((r) => r.stop()));
        if (!syncedOnce) rejectSynced(new Error('the cluster view was stopped before its caches synced'));
        log.info('cluster view stopped');
      })();
      return stopping;
    },
  };
}

/** One list-and-watch on its own (not part of the view), e.g. the namespaces' mode labels. */
export interface Informer {
  /** Whether its first list has completed. */
  synced(): boolean;
  stop(): Promise<void>;
}

/** Runs `spec` as the view's caches run (same list, watch, backoff and 429 handling). */
export function startInformer<Name extends string>(
  kc: KubeAccess,
  spec: CacheSpec<Name>,
  logger: Logger,
  options: Pick<LiveViewOptions, 'backoff' | 'listTimeoutMs' | 'pageSize' | 'clock'> = {},
): Informer {
  let synced = false;
  const runner = new CacheRunner<Name>(
    spec,
    kc,
    logger,
    { ...DEFAULT_BACKOFF, ...options.backoff },
    options.listTimeoutMs ?? DEFAULT_LIST_TIMEOUT_MS,
    options.pageSize ?? DEFAULT_PAGE_SIZE,
    false,
    () => {
      synced = true;
    },
    options.clock ?? systemClock,
  );
  runner.start();
  return { synced: () => synced, stop: () => runner.stop() };
}
