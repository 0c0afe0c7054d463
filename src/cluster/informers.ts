// The live ClusterView: one client-node informer per cache, each listing/watching as little as
// the API server can filter for us, feeding trimmed objects into a MemoryClusterView.
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
// How client-node 2.0.1 behaves (read in dist/cache.js, dist/informer.js, dist/watch.js):
// - makeInformer(kc, path, listFn, labelSelector) has no fieldSelector parameter; it only does
//   `new ListWatch(path, new Watch(kc), listFn, false, labelSelector)`. ListWatch's constructor
//   takes a fieldSelector after the labelSelector, so we construct ListWatch directly.
// - The selectors are applied to the WATCH only; the list function must apply the same ones.
// - start() resolves after the list and once the watch request got its response headers, and it
//   resolves (never rejects) when the list fails: failures go to the `error` callbacks. `connect`
//   fires before the list. So "synced" is decided by our own list function: it resolved, and
//   ListWatch has applied its items (synchronously after the await; we flip the flag in the next
//   macrotask with setImmediate, by which time every add/update/delete callback has run).
// - On 410 Gone it relists by itself, on a client-side inactivity timeout (30 s) it re-watches by
//   itself; on any other error it fires `error` and stops. We restart it with capped exponential
//   backoff (1 s → 5 s by default), keeping the last known cache (ListWatch keeps its objects
//   and resourceVersion across start(), and a relist diffs against them, firing deletes).
//   The cap is 5 s, not client-go's 30 s: a failing attempt costs the API server one refused
//   connection or one error answer, and after an API server restart the caches are current again
//   within seconds rather than up to half a minute later (measured: docs/reliability.md, "Faults").
//   The first HTTP answer after failures without one starts the backoff over: a restarted API
//   server answers 503 while it starts and 429 while a CRD's storage initializes, and the doubling
//   spent on a server that was not there would add up to the cap again.
// - "Synced" means "has completed a first list" and stays true: the webhook keeps answering from
//   its last known cache while the API server is away. Whether each cache is connected NOW is
//   tracked apart (disconnected()): from the first error until a restart of it lists (if it
//   must) and gets its watch's response headers again. The reaper does not act meanwhile.
// - stop() aborts the watch, which reports an AbortError through `error`: ignored once stopped.
//   A list in flight is not aborted by ListWatch.stop(): ours is aborted via its own signal.
//
// ListWatch stores, and hands to the callbacks, the very object it received. We trim it and
// shrink that object in place to its trimmed fields, so its cache holds trimmed objects too.

import { CoreV1Api, CustomObjectsApi, ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { systemClock, type Clock, type Timer } from '../clock.js';
import type { Config } from '../config.js';
import { abortOptions, isNotFound } from './kube-client.js';
import { MemoryClusterView, type PodFeed } from './memory.js';
import { trimCiliumConfig, trimCiliumEndpoint, trimCiliumNode, trimNode, trimPod } from './trim.js';
import { CACHE_NAMES, isSynced, type CacheName, type FullClusterView, type PodInfo, type ReaperCacheName } from './view.js';

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
  /** Deadline of each list request (one page). */
  listTimeoutMs?: number;
  /** Page size of list requests. */
  pageSize?: number;
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

type RawList = { items: KubernetesObject[]; metadata?: { resourceVersion?: string; _continue?: string; continue?: string } };
type PageFn = (page: { limit: number; _continue?: string }, options: ReturnType<typeof abortOptions>) => Promise<RawList>;

interface CacheSpec {
  name: CacheName | ReaperCacheName;
  /** Human name for logs. */
  what: string;
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  page: PageFn;
  /** A CRD that may not be installed: a 404 means "none yet", not a failure. */
  optionalCrd?: string;
  upsert(raw: KubernetesObject): object;
  remove(namespace: string | undefined, name: string): void;
}

export function labelSelector(labels: Record<string, string>): string | undefined {
  const parts = Object.entries(labels).map(([key, value]) => `${key}=${value}`);
  return parts.length > 0 ? parts.join(',') : undefined;
}

function withoutContainerStarts(pod: PodInfo): PodInfo {
  if (!pod.status?.containerStatuses && !pod.status?.initContainerStatuses) return pod;
  const { containerStatuses: _c, initContainerStatuses: _i, ...status } = pod.status;
  return { ...pod, status };
}

/** The HTTP status of a failed list (ApiException.code) or watch (Error.statusCode), if the server answered. */
function answerStatus(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  const status = typeof e?.statusCode === 'number' ? e.statusCode : typeof e?.code === 'number' ? e.code : undefined;
  return status !== undefined && status >= 100 && status < 600 ? status : undefined;
}

/** Replaces the object's own fields with the trimmed ones (apiVersion/kind are kept). */
function shrinkInPlace(raw: KubernetesObject, trimmed: object): void {
  const target = raw as Record<string, unknown>;
  for (const field of Object.keys(target)) {
    if (field !== 'apiVersion' && field !== 'kind') delete target[field];
  }
  Object.assign(target, trimmed);
}

class CacheRunner {
  private readonly informer: ListWatch<KubernetesObject>;
  private readonly log: Logger;
  private readonly stopSignal = new AbortController();
  private delayMs: number;
  private timer: Timer | undefined;
  private stopped = false;
  private synced = false;
  private crdMissing = false;

  get name(): CacheName | ReaperCacheName {
    return this.spec.name;
  }

  /** The optional CRD answered 404 on the last list (and no list has succeeded since). */
  get missingCrd(): boolean {
    return this.crdMissing;
  }
  private failedThisRun = false;
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
    private readonly spec: CacheSpec,
    kc: KubeConfig,
    private readonly view: MemoryClusterView,
    logger: Logger,
    private readonly backoff: { initialMs: number; maxMs: number },
    private readonly listTimeoutMs: number,
    private readonly pageSize: number,
    private readonly onSynced: () => void,
    private readonly clock: Clock,
  ) {
    this.log = logger.child({ cache: spec.name });
    this.delayMs = backoff.initialMs;
    // ListWatch's own pause before re-watching a watch that ended cleanly goes through the clock too.
    this.informer = new ListWatch(spec.path, new Watch(kc), () => this.list(), false, spec.labelSelector, spec.fieldSelector, {
      delayFn: (ms) => this.clock.sleep(ms),
    });
    const apply = (raw: KubernetesObject): void => {
      try {
        shrinkInPlace(raw, this.spec.upsert(raw));
      } catch (err) {
        this.log.warn({ err, name: raw?.metadata?.name, namespace: raw?.metadata?.namespace }, 'ignoring an object that cannot be trimmed');
      }
    };
    this.informer.on('add', apply);
    this.informer.on('update', apply);
    this.informer.on('delete', (raw) => {
      const name = raw?.metadata?.name;
      if (name) this.spec.remove(raw.metadata?.namespace || undefined, name);
    });
    this.informer.on('error', (err) => this.failed(err));
  }

  /** The list function handed to ListWatch: all pages, with the informer's selectors. */
  private async list(): Promise<KubernetesListObject<KubernetesObject>> {
    const items: KubernetesObject[] = [];
    let resourceVersion = '';
    let cont: string | undefined;
    do {
      const options = abortOptions(() => AbortSignal.any([AbortSignal.timeout(this.listTimeoutMs), this.stopSignal.signal]));
      const page = await this.spec.page({ limit: this.pageSize, ...(cont ? { _continue: cont } : {}) }, options);
      if (this.stopped) throw new Error('informer stopped during its list');
      items.push(...(page.items ?? []));
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      cont = page.metadata?._continue || page.metadata?.continue || undefined;
    } while (cont);
    // ListWatch applies the items right after this promise resolves, synchronously; the next
    // macrotask sees the cache complete.
    setImmediate(() => this.listed(items.length));
    return { items, metadata: { resourceVersion } };
  }

  private listed(count: number): void {
    if (this.stopped) return;
    if (this.crdMissing) {
      this.crdMissing = false;
      this.log.info({ objects: count }, `${this.spec.optionalCrd} is installed now; caching ${this.spec.what}`);
    }
    if (!this.synced) {
      this.synced = true;
      this.view.setSynced(this.spec.name, true);
      this.log.info({ objects: count }, `${this.spec.what} cache synced`);
      this.onSynced();
    }
  }

  start(): void {
    void this.run();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    this.failedThisRun = false;
    try {
      await this.informer.start();
    } catch (err) {
      // start() itself throws only before any request (no current cluster, credential plugin failure).
      this.failed(err);
      return;
    }
    if (!this.failedThisRun && !this.stopped) {
      this.healthySince = this.clock.now();
      if (this.failedSince !== undefined) {
        this.log.info({ disconnectedMs: this.healthySince - this.failedSince }, `${this.spec.what} watch re-established`);
        this.failedSince = undefined;
      }
    }
  }

  private failed(err: unknown): void {
    if (this.stopped) return; // stop() aborts the watch, which reports the abort as an error
    this.failedThisRun = true;
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
        this.view.setSynced(this.spec.name, true);
        this.onSynced();
      }
    } else {
      this.log.error({ err, retryInMs: delay }, `${this.spec.what} informer failed; serving the last known cache and restarting`);
    }
    this.timer = this.clock.setTimeout(
      () => {
        this.timer = undefined;
        void this.run();
      },
      delay,
      { unref: true },
    );
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timer?.clear();
    this.timer = undefined;
    this.stopSignal.abort();
    await this.informer.stop();
  }
}

/** The ConfigMap Cilium's agent reads its options from (Helm chart templates/cilium-configmap.yaml). */
export const CILIUM_CONFIGMAP = 'cilium-config';

export function startLiveView(kc: KubeConfig, config: Pick<Config, 'cilium' | 'nodeLabel'>, logger: Logger, options: LiveViewOptions = {}): LiveView {
  const view = new MemoryClusterView(config, { synced: false });
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const log = logger.child({ component: 'cluster-view' });
  const backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  const ns = config.cilium.namespace;
  const agentSelector = labelSelector(config.cilium.agentLabels);

  // The pod caches differ only in what they list and which index of the view they feed.
  const podCache = (
    name: CacheSpec['name'],
    what: string,
    path: string,
    feed: PodFeed,
    page: PageFn,
    selectors: { labelSelector?: string; fieldSelector?: string } = {},
  ): CacheSpec => ({
    name,
    what,
    path,
    ...selectors,
    page,
    upsert: (raw) => {
      const trimmed = trimPod(raw);
      // Container start times are read for Cilium agent pods only: not kept for every other pod.
      const pod = feed === 'agent' ? trimmed : withoutContainerStarts(trimmed);
      view.upsertPod(pod, feed);
      return pod;
    },
    remove: (podNs, podName) => view.deletePod(podNs, podName, feed),
  });

  const specs: CacheSpec[] = [
    {
      name: 'nodes',
      what: 'Nodes',
      path: '/api/v1/nodes',
      page: (p, o) => core.listNode(p, o),
      upsert: (raw) => {
        const node = trimNode(raw, { labelKeys: [config.nodeLabel.key] });
        view.upsertNode(node);
        return node;
      },
      remove: (_ns, name) => view.deleteNode(name),
    },
    {
      name: 'ciliumnodes',
      what: 'CiliumNodes',
      path: '/apis/cilium.io/v2/ciliumnodes',
      optionalCrd: 'the CiliumNode CRD (ciliumnodes.cilium.io/v2)',
      page: (p, o) => custom.listClusterCustomObject({ group: 'cilium.io', version: 'v2', plural: 'ciliumnodes', ...p }, o),
      upsert: (raw) => {
        const cn = trimCiliumNode(raw);
        view.upsertCiliumNode(cn);
        return cn;
      },
      remove: (_ns, name) => view.deleteCiliumNode(name),
    },
    podCache(
      'agentPods',
      `Cilium agent pods (${ns}, ${agentSelector ?? 'all labels'})`,
      `/api/v1/namespaces/${encodeURIComponent(ns)}/pods`,
      'agent',
      (p, o) => core.listNamespacedPod({ namespace: ns, ...(agentSelector ? { labelSelector: agentSelector } : {}), ...p }, o),
      agentSelector ? { labelSelector: agentSelector } : {},
    ),
  ];

  if (options.withoutUnscheduledPods) {
    view.setSynced('unscheduledPods', true);
  } else {
    specs.push(
      podCache(
        'unscheduledPods',
        'unscheduled pods',
        '/api/v1/pods',
        'unscheduled',
        (p, o) => core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=', ...p }, o),
        { fieldSelector: 'spec.nodeName=' },
      ),
    );
  }

  if (options.withReaperCaches) {
    specs.push(
      podCache('pods', 'pods', '/api/v1/pods', 'all', (p, o) => core.listPodForAllNamespaces(p, o)),
      {
        name: 'ciliumEndpoints',
        what: 'CiliumEndpoints',
        path: '/apis/cilium.io/v2/ciliumendpoints',
        optionalCrd: 'the CiliumEndpoint CRD (ciliumendpoints.cilium.io/v2)',
        page: (p, o) => custom.listCustomObjectForAllNamespaces({ group: 'cilium.io', version: 'v2', resourcePlural: 'ciliumendpoints', ...p }, o),
        upsert: (raw) => {
          const cep = trimCiliumEndpoint(raw);
          view.upsertCiliumEndpoint(cep);
          return cep;
        },
        remove: (cepNs, name) => view.deleteCiliumEndpoint(cepNs, name),
      },
      {
        name: 'ciliumConfig',
        what: `ConfigMap ${ns}/${CILIUM_CONFIGMAP}`,
        path: `/api/v1/namespaces/${encodeURIComponent(ns)}/configmaps`,
        fieldSelector: `metadata.name=${CILIUM_CONFIGMAP}`,
        page: (p, o) => core.listNamespacedConfigMap({ namespace: ns, fieldSelector: `metadata.name=${CILIUM_CONFIGMAP}`, ...p }, o),
        upsert: (raw) => {
          const info = trimCiliumConfig(raw);
          view.setCiliumConfig(info);
          // Keep only the name in the informer's own cache: the ConfigMap's data is large.
          return { metadata: { name: raw.metadata?.name, namespace: raw.metadata?.namespace } };
        },
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
        upsert: (raw: KubernetesObject) => {
          const trimmed = spec.upsert(raw);
          notify(spec.name);
          return trimmed;
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
        view,
        log,
        backoff,
        options.listTimeoutMs ?? DEFAULT_LIST_TIMEOUT_MS,
        options.pageSize ?? DEFAULT_PAGE_SIZE,
        onSynced,
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
