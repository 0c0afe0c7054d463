// `status`: the migration at a glance, one screen (src/status/status.ts decides and formats; this
// file reads). Against a live cluster: informers until synced (then stopped), one DaemonSet list,
// one label-selected Namespace list, the two webhook configurations and a /healthz probe of each
// webhook endpoint. Against a snapshot: what the file holds (no webhook checks).
// Exit code: 0 when nothing needs attention, 3 when something does (1 and 2 stay errors and usage).

import { request as httpsRequest } from 'node:https';
import type { V1MutatingWebhookConfiguration, V1ValidatingWebhookConfiguration } from '@kubernetes/client-node';
import { httpStatus } from '../cluster/kube-client.js';
import type { KubeAccess } from '../cluster/kube-config.js';
import { get, readAll, request, seg } from '../cluster/raw-api.js';
import { createLogger } from '../logger.js';
import { MODE_LABEL } from '../modes/mode.js';
import { modeLabelsInFile, modeLabelsOf } from '../modes/namespace-modes.js';
import { migrationProgress } from '../progress/progress.js';
import { isReaperSynced } from '../cluster/view.js';
import { daemonSetReport, readDaemonSets } from '../reconciler/report.js';
import { CONFIGURATION_NAME } from '../registration.js';
import { buildStatus, formatStatus, type RegisteredWebhook, type Status } from '../status/status.js';
import {
  COMMON_FLAGS,
  envName,
  flagUsage,
  loadConfig,
  logLevelOf,
  openView,
  parseCommandFlags,
  UsageError,
  type CommonFlags,
  type FlagSpecs,
} from './common.js';

/** What a status snapshot holds (kubectl get … -A -o yaml). */
const SNAPSHOT_KINDS = 'nodes,ciliumnodes,ciliumendpoints,pods,daemonsets,namespaces';

const STATUS_FLAGS = {
  config: COMMON_FLAGS.config,
  kubeconfig: { ...COMMON_FLAGS.kubeconfig, help: ['Read a live cluster (default: $KUBECONFIG, or in-cluster credentials)'] },
  'cluster-state': {
    ...COMMON_FLAGS['cluster-state'],
    help: [`Read a snapshot (kubectl get ${SNAPSHOT_KINDS} -A -o yaml)`],
  },
  'node-label': COMMON_FLAGS['node-label'],
  'webhook-config': { type: 'string', arg: 'NAME', default: CONFIGURATION_NAME, help: [`The webhook configurations to check (default ${CONFIGURATION_NAME})`] },
  'stuck-after': { type: 'string', arg: 'SECONDS', default: '1800', help: ['A migrated node waiting longer needs attention (default 1800)'] },
  output: { type: 'string', short: 'o', arg: 'FORMAT', default: 'table', help: ['table (default) or json'] },
  timeout: { type: 'string', arg: 'SECONDS', default: '60', help: ["Give up when the cluster's caches have not synced by then (default 60)"] },
  'log-level': { type: 'string', arg: 'LEVEL', default: 'warn', help: ['Logs go to stderr (default warn)'] },
} as const satisfies FlagSpecs;

export const STATUS_USAGE = flagUsage('status', STATUS_FLAGS);

/** The exit code when something needs attention. */
export const EXIT_ATTENTION = 3;

interface StatusFlags extends CommonFlags {
  'webhook-config': string;
  'stuck-after': string;
  output: string;
  timeout: string;
  'log-level': string;
}

function positive(text: string, label: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${label} must be a positive number of seconds, got ${JSON.stringify(text)}`);
  return n;
}

/** GET {origin}/healthz over TLS verified with the caBundle: "ok" or why not. */
function probe(url: string, caBundle: string | undefined, timeoutMs = 3_000): Promise<string> {
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL('/healthz', url);
    } catch {
      resolve(`unreachable: bad url ${url}`);
      return;
    }
    const ca = caBundle ? Buffer.from(caBundle, 'base64').toString('utf8') : undefined;
    const req = httpsRequest(target, { ...(ca ? { ca } : {}), timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? 'ok' : `unreachable: /healthz answered ${res.statusCode}`);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs / 1000}s`)));
    req.on('error', (err) => resolve(`unreachable: ${err.message}`));
    req.end();
  });
}

/** Deadline of each API call of `status` (its caches have their own, --timeout). */
const CALL_TIMEOUT_MS = 10_000;

async function readWebhooks(kc: KubeAccess, name: string): Promise<NonNullable<Parameters<typeof buildStatus>[0]['webhooks']>> {
  const registered: RegisteredWebhook[] = [];
  const missing: string[] = [];
  const read = async (kind: 'Mutating' | 'Validating') => {
    try {
      const cfg = await request<V1MutatingWebhookConfiguration | V1ValidatingWebhookConfiguration>(kc, {
        path: `/apis/admissionregistration.k8s.io/v1/${kind.toLowerCase()}webhookconfigurations/${seg(name)}`,
        timeoutMs: CALL_TIMEOUT_MS,
      });
      for (const w of cfg.webhooks ?? []) {
        const svc = w.clientConfig.service;
        registered.push({
          configuration: name,
          kind,
          name: w.name,
          ...(w.failurePolicy ? { failurePolicy: w.failurePolicy } : {}),
          ...(w.clientConfig.caBundle ? { caBundle: w.clientConfig.caBundle } : {}),
          ...(w.clientConfig.url ? { url: w.clientConfig.url } : {}),
          ...(svc ? { service: `${svc.namespace}/${svc.name}:${svc.port ?? 443}` } : {}),
        });
      }
    } catch (err) {
      if (httpStatus(err) === 404) missing.push(`${kind}WebhookConfiguration ${name}`);
      else throw err;
    }
  };
  await Promise.all([read('Mutating'), read('Validating')]);
  const reachable: Record<string, string> = {};
  await Promise.all(
    registered.map(async (w) => {
      if (w.url) {
        reachable[w.name] = await probe(w.url, w.caBundle);
      } else if (w.service) {
        // Through the API server's service proxy (it does not verify the webhook's certificate).
        const [ns, rest] = w.service.split('/') as [string, string];
        const [svc, port] = rest.split(':') as [string, string];
        try {
          const body = await get(kc, `/api/v1/namespaces/${seg(ns)}/services/${seg(`https:${svc}:${port}`)}/proxy/healthz`, {
            signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
          });
          await readAll(body, 64 * 1024);
          reachable[w.name] = 'ok (via API server proxy)';
        } catch (err) {
          reachable[w.name] = `unreachable: via API server proxy: ${(err as Error).message.split('\n')[0]}`;
        }
      }
    }),
  );
  return { registered, reachable, missing };
}

export async function runStatus(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ status: Status; text: string }> {
  const parsed = parseCommandFlags(args, STATUS_FLAGS, env);
  const flags = parsed.values as unknown as StatusFlags;
  if (flags.output !== 'table' && flags.output !== 'json') {
    throw new UsageError(`${parsed.source.output === 'env' ? envName('output') : '-o'} must be table or json, got ${JSON.stringify(flags.output)}`);
  }
  const timeoutMs = positive(flags.timeout, parsed.label('timeout')) * 1000;
  const stuckAfterSeconds = positive(flags['stuck-after'], parsed.label('stuck-after'));
  const config = loadConfig(flags, parsed.label('node-label'));
  const log = createLogger({ level: logLevelOf(parsed), destination: process.stderr });
  const source = await openView(flags, config, log, {
    withReaperCaches: true,
    withoutUnscheduledPods: true,
    exampleIfNoCluster: false,
    snapshotKinds: SNAPSHOT_KINDS,
  });
  try {
    const deadline = Date.now() + timeoutMs;
    while (!isReaperSynced(source.view)) {
      if (Date.now() > deadline) throw new Error(`the cluster's caches did not sync within ${timeoutMs / 1000}s: ${JSON.stringify(source.view.syncState())}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const now = new Date();
    const kc = source.kc;
    // Each read may fail on its own (RBAC, API errors): the screen says which, and shows the rest.
    const problems: string[] = [];
    const orElse =
      <T>(what: string, fallback: T) =>
      (err: unknown): T => {
        problems.push(`could not read ${what}: ${((err as Error)?.message ?? String(err)).split('\n')[0]}`);
        return fallback;
      };
    const [daemonSets, namespaceModes, webhooks] = await Promise.all([
      readDaemonSets(kc, flags['cluster-state']).catch(orElse('DaemonSets', [])),
      kc
        ? request<{ items?: Array<{ metadata?: { name?: string; labels?: Record<string, string> } }> }>(kc, {
            path: '/api/v1/namespaces',
            query: { labelSelector: MODE_LABEL },
            timeoutMs: CALL_TIMEOUT_MS,
          })
            .then((list) => modeLabelsOf(list?.items ?? []))
            .catch(orElse('namespace mode labels', {}))
        : Promise.resolve(flags['cluster-state'] ? modeLabelsInFile(flags['cluster-state']) : {}),
      kc ? readWebhooks(kc, flags['webhook-config']).catch(orElse('the webhook configurations', undefined)) : Promise.resolve(undefined),
    ]);
    const status = buildStatus(
      {
        source: kc ? `cluster ${kc.server}` : `snapshot ${flags['cluster-state'] ?? ''}`,
        progress: migrationProgress(source.view, config, now),
        daemonSets: daemonSetReport(daemonSets, source.view, config),
        modes: config.modes,
        namespaceModes,
        ...(webhooks ? { webhooks } : {}),
        stuckAfterSeconds,
        problems,
      },
      now,
    );
    return { status, text: flags.output === 'json' ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status) };
  } finally {
    await source.stop();
  }
}

export async function statusCommand(args: string[]): Promise<number> {
  const { status, text } = await runStatus(args);
  process.stdout.write(text);
  return status.attention.length > 0 ? EXIT_ATTENTION : 0;
}
