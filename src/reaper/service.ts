// The reaper as a running service, wired from its parts: live view (with the reaper's caches),
// leader election, the controller, and the probe/metrics port. The `reaper` command builds one
// from flags; the e2e test builds several in-process against one API server.

import type { KubeAccess } from '../cluster/kube-config.js';
import { nodeLabelText, type Config } from '../config.js';
import { startLiveView } from '../cluster/informers.js';
import { isReaperSynced, type FullClusterView } from '../cluster/view.js';
import type { Logger } from '../logger.js';
import { Metrics } from '../metrics.js';
import { liveReaperApi, type ReaperApi } from './api.js';
import { systemClock } from '../clock.js';
import { Reaper } from './reaper.js';
import { inactiveReason } from './detect.js';
import { alwaysLeader, LeaderElector, type ElectorTiming } from './leader.js';
import { apiLeaseStore } from './lease.js';
import { ReaperMetrics } from './reaper-metrics.js';
import { startProbeServer, type ProbeServer } from './http.js';
import { isSynced } from '../cluster/view.js';
import { liveReconcilerApi, type ReconcilerApi } from '../reconciler/api.js';
import { ReconcilerMetrics } from '../reconciler/metrics.js';
import { DaemonSetReconciler } from '../reconciler/reconciler.js';
import { ProgressMetrics } from '../progress/metrics.js';
import { migrationProgress } from '../progress/progress.js';

export interface ReaperServiceOptions {
  kc: KubeAccess;
  config: Config;
  log: Logger;
  identity: string;
  dryRun: boolean;
  /** Lease to elect a leader on; absent: this replica always acts (--no-leader-elect). */
  lease?: { namespace: string; name: string; timing?: Partial<ElectorTiming> };
  probe: { host: string; port: number; ipv4Fallback?: boolean };
  /** Process metrics (CPU, memory...) on /metrics. Default true; tests running several replicas turn it off. */
  defaultMetrics?: boolean;
  /** Replaces the live API calls (tests wrap it to observe writes). */
  api?: ReaperApi;
  /** Replaces the reconciler's API calls (tests). */
  reconcilerApi?: ReconcilerApi;
}

export interface ReaperService {
  view: FullClusterView;
  metrics: Metrics;
  reaper: Reaper;
  probe: ProbeServer;
  isLeader(): boolean;
  /** Stop acting, release the lease, stop informers, close the port: in that order. */
  stop(): Promise<void>;
}

export async function startReaperService(options: ReaperServiceOptions): Promise<ReaperService> {
  const { kc, config, identity } = options;
  const log = options.log.child({ identity });
  const metrics = new Metrics({ defaultMetrics: options.defaultMetrics ?? true });
  const reaperMetrics = new ReaperMetrics(metrics);
  // The reaper is built after the view starts; changes before that are covered by its first run.
  let onChange = (): void => {};
  const live = startLiveView(kc, config, log, { withReaperCaches: true, withoutUnscheduledPods: true, onChange: () => onChange() });
  metrics.trackCaches(() => live.view.syncState());
  metrics.trackDisconnected(() => {
    const down = live.disconnected();
    return Object.fromEntries(Object.keys(live.view.syncState()).map((cache) => [cache, cache in down]));
  });

  // Without these CRDs the reaper acts on nothing: no CiliumEndpoints would make every pod look
  // unmanaged (no CiliumNodes makes no node Cilium-ready). The webhook's view treats them as empty.
  const crdMissing = (): string[] =>
    (
      [
        ['ciliumEndpoints', 'ciliumendpoints.cilium.io'],
        ['ciliumnodes', 'ciliumnodes.cilium.io'],
      ] as const
    ).flatMap(([cache, crd]) => (live.crdMissing(cache) ? [crd] : []));

  // eslint-disable-next-line prefer-const -- the elector's callback, made before the reaper, reads it
  let reaper: Reaper | undefined;
  const elector = options.lease
    ? new LeaderElector({
        store: apiLeaseStore(kc, options.lease.namespace, options.lease.name),
        identity,
        clock: systemClock,
        log,
        ...(options.lease.timing ? { timing: options.lease.timing } : {}),
        onChange: (leading) => {
          reaperMetrics.setLeader(leading);
          reaper?.leadershipChanged(leading);
        },
      })
    : undefined;
  const leadership = elector ?? alwaysLeader;
  reaperMetrics.setLeader(!elector);

  const api = options.api ?? liveReaperApi(kc);
  reaper = new Reaper({
    view: live.view,
    config,
    api,
    leadership,
    metrics: reaperMetrics,
    log,
    identity,
    dryRun: options.dryRun,
    crdMissing,
    disconnected: () => live.disconnected(),
  });
  onChange = () => reaper?.changed();
  const unwatch = () => {
    onChange = () => {};
  };

  let probe: ProbeServer;
  try {
    probe = await startProbeServer({
      ...options.probe,
      metrics,
      log,
      readiness: () => {
        const missing = crdMissing();
        // Not acting because of Cilium's configuration is a steady state, not a failure: ready, and said in the detail.
        const inactive = inactiveReason(live.view, config);
        // Unlike the webhook, the reaper is not ready while a watch is down: it acts on nothing then.
        const disconnected = live.disconnected();
        const connected = Object.keys(disconnected).length === 0;
        return {
          ready: isReaperSynced(live.view) && missing.length === 0 && connected,
          detail: {
            ...live.view.syncState(),
            ...(missing.length > 0 ? { crdMissing: missing } : {}),
            ...(connected ? {} : { disconnected }),
            ...(inactive ? { notActing: inactive.message } : {}),
          },
        };
      },
      liveness: () => reaper.health(),
    });
  } catch (err) {
    unwatch();
    await live.stop();
    throw err;
  }
  reaper.start();
  // The migration's progress (cmg_migration_*): computed at scrape, and every 15 s for the time-to-ready histogram.
  const progress = new ProgressMetrics(metrics, () => (isReaperSynced(live.view) ? migrationProgress(live.view, config, new Date()) : undefined));
  const progressTimer = setInterval(() => {
    try {
      progress.update();
    } catch (err) {
      log.warn({ err }, 'could not compute the migration progress');
    }
  }, 15_000);
  progressTimer.unref();
  // Existing DaemonSets brought in line (config reconciler.enabled; off by default): leader only.
  const reconciler = config.reconciler.enabled
    ? new DaemonSetReconciler({
        api: options.reconcilerApi ?? liveReconcilerApi(kc, api),
        view: live.view,
        config,
        log,
        identity,
        dryRun: config.reconciler.dryRun || options.dryRun,
        isLeader: () => leadership.isLeader(),
        synced: () => isSynced(live.view),
        metrics: new ReconcilerMetrics(metrics),
        intervalMs: config.reconciler.intervalSeconds * 1000,
      })
    : undefined;
  reconciler?.start();
  elector?.start();
  log.info(
    {
      probe: probe.url,
      dryRun: options.dryRun,
      leaderElection: options.lease ? `${options.lease.namespace}/${options.lease.name}` : 'off',
      settings: config.reaper,
      reconciler: config.reconciler,
      nodeLabel: nodeLabelText(config),
    },
    'reaper started',
  );

  let stopping: Promise<void> | undefined;
  return {
    view: live.view,
    metrics,
    reaper,
    probe,
    isLeader: () => leadership.isLeader(),
    stop: () => {
      stopping ??= (async () => {
        clearInterval(progressTimer);
        await reconciler?.stop();
        await reaper.stop();
        await elector?.stop();
        unwatch();
        await live.stop();
        await probe.close();
        log.info('reaper stopped');
      })();
      return stopping;
    },
  };
}
