// The certificate controller every webhook replica runs: one pass reads the webhook configurations
// and the Secret, applies the plan's steps (each a race-free write, see secret.ts), writes the
// serving pair to the cert directory, and injects the trust bundle into caBundle. No leader
// election: concurrent replicas plan the same step, one write wins, the others adopt it.

import type { KubeAccess } from '../cluster/kube-config.js';
import { Counter, type Gauge, type Registry } from 'prom-client';
import { systemClock, type Clock, type Timer } from '../clock.js';
import type { Logger } from '../logger.js';
import { METRIC_PREFIX, caCertificateExpiryGauge, type CaExpiryLabelName } from '../metrics.js';
import { CaBundleInjector, allTrust, type ConfigKind, type ConfigSnapshot } from './ca-bundle.js';
import { syncPair } from './files.js';
import { nextMaterial } from './issue.js';
import { DEFAULT_POLICY, inspect, planRotation, validatePolicy, type CertMaterial, type CertPolicy, type Plan } from './plan.js';
import { SecretStore, type SecretRef, type StoredMaterial } from './secret.js';

export interface CertControllerOptions {
  kc: KubeAccess;
  secret: SecretRef;
  /** Name of our Mutating- and ValidatingWebhookConfiguration; no injection when unset. */
  webhookConfig?: string;
  /** Where tls.crt and tls.key go (CertWatcher's directory). */
  certDir: string;
  /** Names and IPs the serving certificate covers. */
  sans: string[];
  logger: Logger;
  policy?: Partial<CertPolicy>;
  /** Longest time between two passes. Default 60 s; a pass also runs when the plan says a step is due. */
  intervalMs?: number;
  /** Timers (periodic passes, bootstrap retries) and, unless `now` is given, the time. */
  clock?: Clock;
  now?: () => Date;
  /** Where to register the controller's counters (the app's metrics registry). */
  registry?: Registry;
}

export interface PassResult {
  /** The steps this replica wrote (others' writes are adopted, not listed). */
  steps: Exclude<Plan['action'], 'keep'>[];
  wrotePair: boolean;
  patched: ConfigKind[];
  /** The trust bundle (PEM) now in the Secret. */
  caBundle: string;
  nextAt: Date;
}

/** Plan/write rounds per pass: issue → keep, add-ca → keep, ... converge in one or two. */
const MAX_STEPS = 4;

export class CertController {
  private readonly store: SecretStore;
  private readonly injector: CaBundleInjector | undefined;
  private readonly policy: CertPolicy;
  private readonly now: () => Date;
  private readonly log: Logger;
  private readonly passes: Counter<'result'>;
  private readonly caExpiry: Gauge<CaExpiryLabelName>;
  private readonly pairListeners: Array<() => void | Promise<void>> = [];
  private running: Promise<unknown> = Promise.resolve();
  private timer: Timer | undefined;
  private readonly clock: Clock;
  private stopped = false;

  constructor(private readonly options: CertControllerOptions) {
    this.store = new SecretStore(options.kc, options.secret);
    this.injector = options.webhookConfig ? new CaBundleInjector(options.kc, options.webhookConfig) : undefined;
    this.policy = validatePolicy({ ...DEFAULT_POLICY, ...options.policy });
    const clock = (this.clock = options.clock ?? systemClock);
    this.now = options.now ?? (() => new Date(clock.now()));
    this.log = options.logger.child({ component: 'certificates', secret: `${options.secret.namespace}/${options.secret.name}` });
    this.passes = new Counter({
      name: `${METRIC_PREFIX}certificate_steps_total`,
      help: 'Certificate lifecycle steps written by this replica (issue, add-ca, reissue-serving, prune), and failed passes (error).',
      labelNames: ['result'],
      registers: options.registry ? [options.registry] : [],
    });
    this.caExpiry = caCertificateExpiryGauge(options.registry ? [options.registry] : []);
  }

  /** One pass; passes never overlap. */
  reconcile(): Promise<PassResult> {
    const pass = this.running.then(() => this.pass());
    this.running = pass.catch(() => {});
    return pass;
  }

  /**
   * The first pass, retried with backoff: serving starts only with a pair on disk. Throws after
   * `attempts` failures (the pod restarts and says why in its log).
   */
  async bootstrap(attempts = 8): Promise<PassResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.reconcile();
      } catch (err) {
        if (attempt >= attempts || this.stopped) throw err;
        const delayMs = Math.min(500 * 2 ** (attempt - 1), 10_000);
        this.log.warn({ err, attempt, retryInMs: delayMs }, 'certificate bootstrap failed; retrying');
        await this.clock.sleep(delayMs);
      }
    }
  }

  /** Called after a new serving pair was written, e.g. CertWatcher.check() to reload at once. */
  onPairWritten(listener: () => void | Promise<void>): void {
    this.pairListeners.push(listener);
  }

  /** Periodic passes until stop(). */
  start(): void {
    this.schedule(this.options.intervalMs ?? 60_000);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.clear();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(
      () => {
        this.reconcile().then(
          (result) => this.schedule(this.delayUntil(result.nextAt)),
          (err: unknown) => {
            this.log.error({ err }, 'certificate pass failed; serving the current pair and retrying');
            this.schedule(this.options.intervalMs ?? 60_000);
          },
        );
      },
      delayMs,
      { unref: true },
    );
  }

  private delayUntil(at: Date): number {
    const interval = this.options.intervalMs ?? 60_000;
    const floor = Math.min(interval, 1_000); // a step waiting on something else (publication) is re-checked, not spun on
    return Math.min(Math.max(at.getTime() - this.now().getTime(), floor), interval);
  }

  private async pass(): Promise<PassResult> {
    try {
      return await this.passOnce();
    } catch (err) {
      this.passes.inc({ result: 'error' });
      throw err;
    }
  }

  private async passOnce(): Promise<PassResult> {
    // Configurations first, then the Secret: see ca-bundle.ts for why the order matters.
    const configs: ConfigSnapshot[] = this.injector ? await this.injector.read() : [];
    let stored = await this.store.read();
    const steps: PassResult['steps'] = [];
    let plan: Plan | undefined;
    for (let round = 0; round < MAX_STEPS; round++) {
      const now = this.now();
      plan = planRotation({
        material: stored?.material,
        now,
        policy: this.policy,
        sans: this.options.sans,
        signerPublished: (pem) => allTrust(configs, pem),
      });
      if (plan.action === 'keep') break;
      const next = await nextMaterial(plan, stored?.material, { now, policy: this.policy, sans: this.options.sans });
      const result = stored ? await this.store.update(next, stored.resourceVersion) : await this.store.create(next);
      if (result.won) {
        steps.push(plan.action);
        this.passes.inc({ result: plan.action });
        this.log.info({ step: plan.action, reason: plan.reason }, 'certificate Secret updated');
      } else {
        this.log.debug({ step: plan.action }, 'another replica changed the certificate Secret first; adopting its version');
      }
      stored = result.stored;
    }
    if (!stored) throw new Error('the certificate Secret disappeared while it was being written');
    if (plan?.action !== 'keep') this.log.warn({ plan }, 'certificate lifecycle did not settle in one pass; continuing next pass');
    this.recordCaExpiry(stored.material);

    const wrotePair = await syncPair(this.options.certDir, stored.material);
    if (wrotePair) for (const listener of this.pairListeners) await listener();
    const { patched, conflicts } = await this.inject(configs, stored);
    const nextAt = plan?.action === 'keep' && conflicts.length === 0 ? plan.nextAt : this.now();
    return { steps, wrotePair, patched, caBundle: stored.material.caBundle, nextAt };
  }

  /** One series per CA of the bundle now in the Secret; a pruned CA's series goes with it. */
  private recordCaExpiry(material: CertMaterial): void {
    const state = inspect(material);
    this.caExpiry.reset();
    if (typeof state === 'string') return;
    for (const ca of state.cas) {
      this.caExpiry.set({ fingerprint: ca.x509.fingerprint256, signing: String(ca === state.signer) }, ca.notAfter.getTime() / 1000);
    }
  }

  private async inject(configs: ConfigSnapshot[], stored: StoredMaterial): Promise<{ patched: ConfigKind[]; conflicts: ConfigKind[] }> {
    if (!this.injector) return { patched: [], conflicts: [] };
    if (configs.length < 2) this.log.debug({ name: this.injector.name, found: configs.map((c) => c.kind) }, 'webhook configuration(s) missing; injecting when they appear');
    const { patched, conflicts } = await this.injector.inject(configs, stored.material.caBundle);
    if (patched.length > 0) this.log.info({ name: this.injector.name, patched }, 'caBundle injected');
    if (conflicts.length > 0) this.log.info({ conflicts }, 'webhook configuration changed while injecting; retrying');
    return { patched, conflicts };
  }
}
