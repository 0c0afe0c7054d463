// `serve`: the admission webhooks over HTTPS, deciding from the cluster view, and the stuck-taint guard.

import { existsSync } from 'node:fs';
import { CertController } from '../certs/cert-controller.js';
import { parseSecretRef, type SecretRef } from '../certs/secret.js';
import type { V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { request, seg } from '../cluster/raw-api.js';
import { describeManagedDataplane, managedDataplaneIn } from '../cluster/managed-dataplane.js';
import { mutatingWebhookConfiguration } from '../registration.js';
import { matchConditionDrift, staleEntries } from '../registration-conditions.js';
import { isSynced, webhookSyncState } from '../cluster/view.js';
import { createLogger, stdoutLineSink } from '../logger.js';
import { lintFindingsCounter } from '../lint/metrics.js';
import { Metrics } from '../metrics.js';
import { startServer } from '../server/start.js';
import { servingCertSans } from '../certs/local.js';
import { StartupTaintMonitor } from '../cluster/startup-taint-monitor.js';
import { startupTaint, taintText } from '../webhooks/node-taint.js';
import { webhookRoutes } from '../webhooks/routes.js';
import { noNamespaceModes, type NamespaceModes } from '../modes/mode.js';
import { modeLabelsInFile, staticNamespaceModes, startNamespaceModes } from '../modes/namespace-modes.js';
import {
  COMMON_FLAGS,
  defaultListenHost,
  flagUsage,
  inCluster,
  loadConfig,
  logLevelOf,
  openView,
  parseCommandFlags,
  parsePort,
  UsageError,
  type CommonFlags,
  type FlagSpecs,
} from './common.js';
import { onShutdownSignal, ShuttingDown } from './signals.js';
import { nodeLabelText } from '../config.js';

const SERVE_FLAGS = {
  ...COMMON_FLAGS,
  'cert-dir': { type: 'string', arg: 'DIR', default: 'certs', help: ['Directory with tls.crt and tls.key (default: certs)'] },
  'no-generate-cert': { type: 'boolean', help: ['Fail instead of generating a local CA and serving cert when none is found'] },
  'cert-secret': {
    type: 'string',
    arg: 'NS/NAME',
    help: [
      'In-cluster certificates: keep a CA and serving pair in this Secret (created',
      'once, shared by all replicas, rotated before expiry) and write the pair',
      'into --cert-dir; needs a cluster (default: off, use --cert-dir as is)',
    ],
  },
  'webhook-config': {
    type: 'string',
    arg: 'NAME',
    help: ['With --cert-secret: keep the caBundle of the Mutating- and', "ValidatingWebhookConfiguration NAME equal to the Secret's CA bundle"],
  },
  service: {
    type: 'string',
    arg: 'NAME',
    default: 'cilium-migration-guard',
    help: ["The Service in front of the webhook, for the certificate's DNS names", '(default cilium-migration-guard, in the --cert-secret namespace)'],
  },
  host: {
    type: 'string',
    arg: 'ADDR',
    help: ['Listen address (default 127.0.0.1 locally; in a cluster ::, IPv6 and IPv4,', 'or 0.0.0.0 where the pod has no IPv6)'],
  },
  port: { type: 'string', arg: 'N', default: '8443', help: ['Listen port (default 8443)'] },
  'log-level': { type: 'string', arg: 'LEVEL', default: 'info', help: ['trace, debug, info, warn, error (default info)'] },
} as const satisfies FlagSpecs;

export const SERVE_USAGE = flagUsage('serve', SERVE_FLAGS);

interface ServeFlags extends CommonFlags {
  'cert-dir': string;
  'no-generate-cert'?: boolean;
  'cert-secret'?: string;
  'webhook-config'?: string;
  service: string;
  host?: string;
  port: string;
  'log-level': string;
}

interface ParsedServe {
  flags: ServeFlags;
  port: number;
  level: ReturnType<typeof logLevelOf>;
  certSecret: SecretRef | undefined;
  nodeLabelSource: string;
}

function parseServe(args: string[], env: NodeJS.ProcessEnv): ParsedServe {
  const parsed = parseCommandFlags(args, SERVE_FLAGS, env);
  const flags = parsed.values as unknown as ServeFlags;
  if (flags['webhook-config'] && !flags['cert-secret']) {
    throw new UsageError(`${parsed.label('webhook-config')} needs --cert-secret (the CA it injects)`);
  }
  return {
    flags,
    port: parsePort(flags.port, parsed.label('port')),
    level: logLevelOf(parsed),
    certSecret: flags['cert-secret'] ? secretRef(flags['cert-secret'], parsed.label('cert-secret')) : undefined,
    nodeLabelSource: parsed.label('node-label'),
  };
}

/** The flags of `serve`: the command line, then CMG_* variables, then defaults (validated). */
export function parseServeFlags(args: string[], env: NodeJS.ProcessEnv = process.env): ServeFlags {
  return parseServe(args, env).flags;
}

function secretRef(text: string, label: string): SecretRef {
  try {
    return parseSecretRef(text);
  } catch (err) {
    throw new UsageError(`${label}: ${(err as Error).message}`);
  }
}

/**
 * The names clients reach the webhook by, which a rotated pair must keep covering: in a cluster the
 * Service's DNS name (what the API server dials for clientConfig.service), when its namespace is
 * known (--cert-secret's, or $POD_NAMESPACE); locally the loopback names and --host.
 */
function servingNamesOf(flags: ServeFlags, certSecret: SecretRef | undefined): string[] {
  if (certSecret || inCluster()) {
    const namespace = certSecret?.namespace ?? process.env.POD_NAMESPACE;
    return namespace ? [`${flags.service}.${namespace}.svc`] : [];
  }
  const host = flags.host && flags.host !== '0.0.0.0' && flags.host !== '::' ? [flags.host] : [];
  return [...new Set(['localhost', '127.0.0.1', ...host])];
}

export async function serveCommand(args: string[]): Promise<void> {
  const { flags, port, level, certSecret, nodeLabelSource } = parseServe(args, process.env);
  const config = loadConfig(flags, nodeLabelSource);
  const log = createLogger({ level });
  const metrics = new Metrics();
  const sink = stdoutLineSink();
  metrics.trackLog(() => ({ dropped: sink.dropped, queuedBytes: sink.queuedBytes }));
  // Installed before the slow steps: a signal while the informers start, the certificates
  // bootstrap or the listener opens still stops what was started and exits 0.
  const shutdown = onShutdownSignal(log);
  try {
    const source = await shutdown.step(openView(flags, config, log), (opened) => () => opened.stop());
    metrics.trackDisconnected(() => {
      const down = source.disconnected();
      return Object.fromEntries(Object.keys(source.view.syncState()).map((cache) => [cache, cache in down]));
    });

    // Namespace mode labels: watched live (optional, never gates readiness), or the snapshot's Namespaces.
    let namespaceModes: NamespaceModes = noNamespaceModes;
    if (!source.kc && flags['cluster-state']) namespaceModes = staticNamespaceModes(modeLabelsInFile(flags['cluster-state']));
    if (source.kc) {
      const live = startNamespaceModes(source.kc, log);
      shutdown.defer(() => live.stop());
      namespaceModes = live;
    }

    let certs: CertController | undefined;
    if (certSecret) {
      if (!source.kc) throw new UsageError('--cert-secret needs a cluster (--kubeconfig, $KUBECONFIG or in-cluster credentials)');
      const controller = new CertController({
        kc: source.kc,
        secret: certSecret,
        ...(flags['webhook-config'] ? { webhookConfig: flags['webhook-config'] } : {}),
        certDir: flags['cert-dir'],
        sans: servingCertSans({ serviceName: flags.service, namespace: certSecret.namespace }),
        logger: log,
        registry: metrics.registry,
      });
      certs = controller;
      shutdown.defer(() => controller.stop()); // also ends bootstrap's retries
      // The Secret and the pair on disk exist before the listener starts.
      await shutdown.step(controller.bootstrap());
    }
    const routes = webhookRoutes(config, source.view, source.reader, { namespaceModes, countLintFinding: lintFindingsCounter(metrics.registry) });
    const handle = await shutdown.step(
      startServer({
        handlers: routes,
        readiness: () => {
          // A cloud-run Cilium is a fact about the cluster, not a fault of this webhook: still ready.
          const managed = managedDataplaneIn(source.view);
          // A cache whose watch is down (API server or etcd unreachable) still holds the last state
          // the API server showed: every replica sees the same outage, and failing readiness would
          // take them all out of the Service at once (pods then placed unchecked, guarded
          // DaemonSets refused). So: still ready once synced, and the body says what is stale.
          const disconnected = source.disconnected();
          const notes = {
            ...(managed ? { managedDataplane: describeManagedDataplane(managed) } : {}),
            ...(Object.keys(disconnected).length > 0 ? { disconnected } : {}),
          };
          return {
            ready: isSynced(source.view),
            detail: webhookSyncState(source.view),
            ...(Object.keys(notes).length > 0 ? { notes } : {}),
          };
        },
        metrics,
        logger: log,
        certDir: flags['cert-dir'],
        ...(flags['no-generate-cert'] || certSecret || inCluster() ? {} : { generateCert: {} }),
        host: flags.host ?? defaultListenHost(),
        servingNames: servingNamesOf(flags, certSecret),
        // Only the default falls back: an explicit --host :: without IPv6 is an error worth seeing.
        ipv4Fallback: flags.host === undefined,
        port,
      }),
      // Stop accepting and drain first (cleanups run newest first), then the informers the handlers read from.
      (server) => () => server.close(),
    );
    // The stuck-taint guard reads the same caches the webhooks decide from; it only logs and counts.
    const taints = new StartupTaintMonitor({ view: source.view, config, logger: log, registry: metrics.registry, synced: () => isSynced(source.view) });
    shutdown.defer(() => taints.stop());
    taints.start();
    if (certs) {
      const watcher = handle.certWatcher;
      certs.onPairWritten(() => watcher.check()); // reload at once rather than at the watcher's next event
      certs.start();
    }
    // Said once the view has listed the agent pods: from then on the DaemonSet webhook patches nothing.
    void source.whenSynced().then(
      () => {
        const managed = managedDataplaneIn(source.view);
        if (managed) log.warn({ managedDataplane: managed.kind, evidence: managed.evidence }, describeManagedDataplane(managed));
      },
      () => {}, // stopped before syncing: nothing to say
    );
    // A registration generated from another config would not send this config's DaemonSets here.
    if (source.kc && flags['webhook-config']) {
      const name = flags['webhook-config'];
      const expected = mutatingWebhookConfiguration({ endpoint: { url: 'https://unused' }, ownNamespace: 'unused', config });
      void request<V1MutatingWebhookConfiguration>(source.kc, {
        path: `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${seg(name)}`,
        timeoutMs: 10_000,
      }).then(
        (registered) => {
          const drifted = matchConditionDrift(registered, expected);
          if (drifted.length > 0) {
            log.warn(
              { webhookConfig: name, entries: drifted },
              'the registered DaemonSet matchConditions were generated from another config: DaemonSets this config matches may never reach the webhook; apply `cilium-migration-guard registration --config FILE`',
            );
          }
          // Such as advisory-daemonsets… (retired): it still calls a path this server answers
          // (allowed, no patch), so it is harmless, but the registration is not the one in force.
          const stale = staleEntries(registered, expected);
          if (stale.length > 0) {
            log.warn(
              { webhookConfig: name, entries: stale },
              'the MutatingWebhookConfiguration has entries this version no longer registers: re-apply the manifests (or `cilium-migration-guard registration`) to remove them; docs/install.md "Upgrading"',
            );
          }
        },
        (err: unknown) => log.debug({ err, webhookConfig: name }, 'could not read the MutatingWebhookConfiguration to check its matchConditions'),
      );
    }
    const caFile = `${flags['cert-dir']}/ca.crt`;
    log.info(
      {
        url: handle.url,
        nodeLabel: nodeLabelText(config),
        modes: config.modes,
        nodeTaint: config.nodeTaint.enabled ? taintText(startupTaint(config)) : 'off',
        ...(existsSync(caFile) ? { ca: caFile } : {}),
      },
      `serving admission webhooks: ${routes.map((route) => `POST ${route.path}`).join(', ')}`,
    );
  } catch (err) {
    if (err instanceof ShuttingDown) return; // the signal handler cleans up and exits 0
    await shutdown.abort();
    throw err;
  }
}
