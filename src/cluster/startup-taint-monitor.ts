// The stuck-taint guard of `serve`: every nodeTaint.checkIntervalSeconds (on an injectable clock)
// it judges the nodes carrying Cilium's startup taint (startup-taint.ts) and logs a warning once
// per node when the taint becomes stuck, and an info line when it clears. The gauge
// cmg_startup_taint_nodes{state} is computed from the caches at every scrape, so it is never stale.
// It only reads: this project never removes the taint.

import { Gauge, type Registry } from 'prom-client';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { METRIC_PREFIX } from '../metrics.js';
import { systemClock, type Clock } from '../clock.js';
import type { FullClusterView } from './view.js';
import { describeStartupTaint, startupTaintStatuses, type StartupTaintState, type StartupTaintStatus } from './startup-taint.js';

export interface StartupTaintMonitorOptions {
  view: Pick<FullClusterView, 'nodes' | 'agentPodsOn'>;
  config: Config;
  logger: Logger;
  registry: Registry;
  /** Judge only once the caches have listed: a half-filled cache would show no agent, or no node. */
  synced: () => boolean;
  clock?: Clock;
}

const STATES: readonly StartupTaintState[] = ['waiting', 'agent-ready', 'stuck'];

export class StartupTaintMonitor {
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly stop$ = new AbortController();
  /** Nodes already warned about in the current stuck episode. */
  private readonly warned = new Set<string>();
  private loop: Promise<void> | undefined;

  constructor(private readonly options: StartupTaintMonitorOptions) {
    this.clock = options.clock ?? systemClock;
    this.log = options.logger.child({ component: 'startup-taint' });
    const monitor = this;
    new Gauge({
      name: `${METRIC_PREFIX}startup_taint_nodes`,
      help:
        "Nodes carrying Cilium's startup taint (cilium.agentNotReadyTaintKey), by state: waiting (no Ready Cilium agent yet), " +
        'agent-ready (the operator should remove it now), stuck (still there nodeTaint.stuckAfterSeconds after the agent turned Ready).',
      labelNames: ['state'],
      registers: [options.registry],
      collect() {
        this.reset();
        if (!options.synced()) return;
        const counts = Object.fromEntries(STATES.map((state) => [state, 0])) as Record<StartupTaintState, number>;
        for (const status of monitor.statuses()) counts[status.state]++;
        for (const state of STATES) this.set({ state }, counts[state]);
      },
    });
  }

  statuses(): StartupTaintStatus[] {
    const { view, config } = this.options;
    return startupTaintStatuses(view.nodes(), view, config, new Date(this.clock.now()));
  }

  /** One pass: a warning for each node whose taint became stuck, an info line for each that cleared. */
  check(): StartupTaintStatus[] {
    if (!this.options.synced()) return [];
    const statuses = this.statuses();
    const stuck = new Set<string>();
    for (const status of statuses) {
      if (status.state !== 'stuck') continue;
      stuck.add(status.node);
      if (this.warned.has(status.node)) continue;
      this.warned.add(status.node);
      this.log.warn(
        {
          node: status.node,
          taint: status.taint.key,
          agentPod: status.agentPod,
          agentReadySince: status.agentReadySince,
          overdueSeconds: status.overdueSeconds,
          taintedSince: status.since,
        },
        `Cilium's startup taint is stuck on node ${status.node}: ${describeStartupTaint(status)}`,
      );
    }
    for (const node of [...this.warned]) {
      if (stuck.has(node)) continue;
      this.warned.delete(node);
      this.log.info({ node }, `Cilium's startup taint on node ${node} is no longer stuck (removed, or the node or its agent changed)`);
    }
    return statuses;
  }

  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    const interval = this.options.config.nodeTaint.checkIntervalSeconds * 1000;
    while (!this.stop$.signal.aborted) {
      try {
        await this.clock.sleep(interval, this.stop$.signal);
      } catch {
        return; // stopped
      }
      try {
        this.check();
      } catch (err) {
        this.log.error({ err }, 'checking for stuck startup taints failed; retrying at the next interval');
      }
    }
  }

  async stop(): Promise<void> {
    this.stop$.abort();
    await this.loop;
  }
}
