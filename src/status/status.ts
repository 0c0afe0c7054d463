// `status`: the migration at a glance. Pure: what the command gathered (progress, DaemonSets, modes,
// the webhooks' registration and probes) and `now` → a Status with the items that need attention,
// and its one-screen table. The command (src/commands/status.ts) does the reading.

import { X509Certificate } from 'node:crypto';
import type { Mode } from '../modes/mode.js';
import { isMode, MODE_LABEL } from '../modes/mode.js';
import type { Progress } from '../progress/progress.js';
import type { DaemonSetReport } from '../reconciler/report.js';

/** A webhook entry as registered (Mutating- or ValidatingWebhookConfiguration .webhooks[]). */
export interface RegisteredWebhook {
  configuration: string;
  kind: 'Mutating' | 'Validating';
  name: string;
  failurePolicy?: string;
  caBundle?: string;
  url?: string;
  service?: string;
}

export interface WebhookHealth {
  name: string;
  kind: 'Mutating' | 'Validating';
  failurePolicy: string;
  /** "ok", or why not (no caBundle, not PEM, expired, expires in N days). */
  caBundle: string;
  caExpires?: string;
  /** "ok" (/healthz answered 200 over TLS verified with the caBundle), "unreachable: …", or "not checked: …". */
  reachable: string;
}

export interface StatusInputs {
  source: string;
  progress: Progress;
  daemonSets: DaemonSetReport;
  modes: { pods: Mode; daemonsets: Mode };
  /** Namespace → its mode label (labelled namespaces only). */
  namespaceModes: Record<string, string>;
  /** undefined: not checked (snapshot). */
  webhooks?: { registered: RegisteredWebhook[]; reachable: Record<string, string>; missing: string[] };
  /** A migrated node waiting longer than this needs attention (the alert's N). */
  stuckAfterSeconds: number;
  /** Reads that failed (RBAC, API errors): each needs attention, the rest of the screen stands. */
  problems?: string[];
}

export interface Status {
  source: string;
  at: string;
  nodes: Progress['nodes'];
  slowestWaiting: Progress['waiting'];
  unmanagedPods: number;
  legacyAgentsOnMigrated: number;
  ciliumMissing: string[];
  daemonSets: { read: number; outOfLine: string[]; conflicts: string[] };
  modes: { pods: Mode; daemonsets: Mode; namespaces: Record<string, string> };
  webhooks: WebhookHealth[] | 'not checked (snapshot)' | 'not checked';
  attention: string[];
}

const DAY_S = 86_400;
export const CA_WARN_DAYS = 7;

/** Whether a caBundle holds at least one certificate valid now, and when the last valid one expires. */
export function judgeCaBundle(caBundle: string | undefined, now: Date): { verdict: string; expires?: string } {
  if (!caBundle) return { verdict: 'missing' };
  const pem = Buffer.from(caBundle, 'base64').toString('utf8');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const certs: X509Certificate[] = [];
  for (const block of blocks) {
    try {
      certs.push(new X509Certificate(block));
    } catch {
      // an unparsable block counts as none
    }
  }
  if (certs.length === 0) return { verdict: 'not a PEM certificate bundle' };
  const valid = certs.filter((c) => Date.parse(c.validFrom) <= now.getTime() && now.getTime() <= Date.parse(c.validTo));
  if (valid.length === 0) return { verdict: 'expired or not yet valid' };
  const last = Math.max(...valid.map((c) => Date.parse(c.validTo)));
  const expires = new Date(last).toISOString();
  const days = Math.floor((last - now.getTime()) / 1000 / DAY_S);
  return days < CA_WARN_DAYS ? { verdict: `expires in ${days} day(s)`, expires } : { verdict: 'ok', expires };
}

function duration(seconds: number | undefined): string {
  if (seconds === undefined) return 'unknown';
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7_200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 2 * DAY_S) return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(seconds / DAY_S)}d${String(Math.floor((seconds % DAY_S) / 3600)).padStart(2, '0')}h`;
}

export function buildStatus(inputs: StatusInputs, now: Date, slowest = 5): Status {
  const { progress, daemonSets: ds } = inputs;
  const attention: string[] = [];
  const stuck = progress.waiting.filter((w) => (w.seconds ?? 0) > inputs.stuckAfterSeconds);
  if (stuck.length > 0) {
    attention.push(
      `${stuck.length} migrated node(s) waiting for Cilium longer than ${duration(inputs.stuckAfterSeconds)}: ${stuck
        .slice(0, slowest)
        .map((w) => w.node)
        .join(', ')}`,
    );
  }
  if (progress.unmanagedPods > 0) attention.push(`${progress.unmanagedPods} pod(s) on migrated nodes hold IPs Cilium does not manage (see \`report\`)`);
  if (progress.legacyAgentsOnMigrated > 0) attention.push(`${progress.legacyAgentsOnMigrated} previous-CNI agent pod(s) run on migrated nodes`);
  if (ds.outOfLine.length > 0)
    attention.push(`${ds.outOfLine.length} DaemonSet(s) out of line: ${ds.outOfLine.map((d) => `${d.namespace}/${d.name}`).join(', ')}`);
  if (ds.conflicts.length > 0)
    attention.push(`${ds.conflicts.length} DaemonSet(s) contradict their role: ${ds.conflicts.map((d) => `${d.namespace}/${d.name}`).join(', ')}`);
  const invalidLabels = Object.entries(inputs.namespaceModes).filter(([, v]) => !isMode(v));
  for (const [ns, v] of invalidLabels) attention.push(`namespace ${ns} has ${MODE_LABEL}=${v}, not a mode (ignored)`);

  for (const problem of inputs.problems ?? []) attention.push(problem);
  let webhooks: Status['webhooks'] = inputs.source.startsWith('snapshot') ? 'not checked (snapshot)' : 'not checked';
  if (inputs.webhooks) {
    for (const missing of inputs.webhooks.missing) attention.push(`${missing} is not registered`);
    webhooks = inputs.webhooks.registered.map((w) => {
      const ca = judgeCaBundle(w.caBundle, now);
      const reachable = inputs.webhooks!.reachable[w.name] ?? 'not checked';
      if (ca.verdict !== 'ok') attention.push(`webhook ${w.name}: caBundle ${ca.verdict}`);
      if (reachable.startsWith('unreachable')) attention.push(`webhook ${w.name}: ${reachable}`);
      return {
        name: w.name,
        kind: w.kind,
        failurePolicy: w.failurePolicy ?? 'Fail',
        caBundle: ca.verdict,
        ...(ca.expires ? { caExpires: ca.expires } : {}),
        reachable,
      };
    });
  }
  return {
    source: inputs.source,
    at: now.toISOString(),
    nodes: progress.nodes,
    slowestWaiting: progress.waiting.slice(0, slowest),
    unmanagedPods: progress.unmanagedPods,
    legacyAgentsOnMigrated: progress.legacyAgentsOnMigrated,
    ciliumMissing: ds.agents.ciliumMissing,
    daemonSets: {
      read: ds.daemonSetsRead,
      outOfLine: ds.outOfLine.map((d) => `${d.namespace}/${d.name}`),
      conflicts: ds.conflicts.map((d) => `${d.namespace}/${d.name}`),
    },
    modes: { pods: inputs.modes.pods, daemonsets: inputs.modes.daemonsets, namespaces: inputs.namespaceModes },
    webhooks,
    attention,
  };
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

export function formatStatus(s: Status): string {
  const out: string[] = [`cilium-migration-guard status: ${s.source} at ${s.at}`, ''];
  const total = s.nodes.legacy + s.nodes['migrated-ready'] + s.nodes['migrated-not-ready'];
  out.push(
    ...table([
      ['NODES', 'COUNT'],
      ['legacy', String(s.nodes.legacy)],
      ['migrated-ready', String(s.nodes['migrated-ready'])],
      ['migrated-not-ready', String(s.nodes['migrated-not-ready'])],
      ['total', String(total)],
    ]),
  );
  if (s.slowestWaiting.length > 0) {
    out.push(
      '',
      'Slowest waiting for Cilium:',
      ...table([['NODE', 'WAITING', 'MISSING'], ...s.slowestWaiting.map((w) => [w.node, duration(w.seconds), w.gaps.join(', ')])]).map((l) => `  ${l}`),
    );
  }
  out.push(
    '',
    `Unmanaged pods on migrated nodes:       ${s.unmanagedPods}`,
    `Previous-CNI agents on migrated nodes:  ${s.legacyAgentsOnMigrated}`,
    `DaemonSets out of line / conflicting:   ${s.daemonSets.read === 0 ? 'not checked (no DaemonSets read)' : `${s.daemonSets.outOfLine.length} / ${s.daemonSets.conflicts.length}`}`,
    '',
    `Modes: pods ${s.modes.pods}, daemonsets ${s.modes.daemonsets}` +
      (Object.keys(s.modes.namespaces).length > 0
        ? `; namespaces: ${Object.entries(s.modes.namespaces)
            .map(([n, m]) => `${n}=${m}`)
            .join(', ')}`
        : '; no namespace overrides'),
    '',
  );
  if (typeof s.webhooks === 'string') {
    out.push(`Webhooks: ${s.webhooks}`);
  } else {
    out.push(...table([['WEBHOOK', 'FAILURE POLICY', 'CABUNDLE', 'REACHABLE'], ...s.webhooks.map((w) => [w.name, w.failurePolicy, w.caBundle, w.reachable])]));
  }
  out.push('');
  if (s.attention.length === 0) out.push('Nothing needs attention.');
  else out.push('Needs attention:', ...s.attention.map((a) => `  - ${a}`));
  return `${out.join('\n')}\n`;
}
