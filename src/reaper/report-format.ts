// The `report` command's output, from one detect() result: per migrated node, is Cilium ready
// (and why not), and the pods Cilium does not manage with the reaper's verdict and evidence.
// A table for people, JSON for scripts; both say the same thing.

import { nodeLabelText, type Config } from '../config.js';
import { describeCiliumSince, describeGaps } from '../cluster/readiness.js';
import { describeStartupTaint, formatDuration, type StartupTaintStatus } from '../cluster/startup-taint.js';
import type { Assessment, Detection, Inactive, TargetAdvice, Verdict } from './detect.js';
import { describeEvidence } from './evidence.js';

export interface ReportPod {
  namespace: string;
  name: string;
  uid?: string;
  ip: string;
  verdict: Verdict;
  reason?: string;
  why: string;
  evidence: Assessment['evidence'];
}

export interface ReportNode {
  node: string;
  ciliumReady: boolean;
  /** Why Cilium is not ready, in words; empty when ready. */
  notReadyBecause: string[];
  agentPod?: string;
  /** When the serving agent pod last turned Ready. */
  readySince?: string;
  /** When Cilium first became ready on the node since its boot (what the reaper compares pod starts with), and what says so. */
  ciliumSince?: string;
  ciliumSinceFrom?: string;
  pods: ReportPod[];
}

export interface Report {
  at: string;
  source: string;
  nodeLabel: string;
  settings: Pick<Config['reaper'], 'action' | 'target' | 'gracePeriodSeconds' | 'removeUnowned'>;
  summary: { nodes: number; ciliumNotReady: number } & Record<Verdict, number>;
  nodes: ReportNode[];
  /** Nodes carrying Cilium's startup taint (any node, labelled or not), with how long and whether it is stuck. */
  startupTaint?: { key: string; stuckAfterSeconds: number; nodes: StartupTaintStatus[] };
  /** Set when the reaper acts on nothing at all, and why. */
  inactive?: Inactive;
  /** Which reaper.target fits the cluster seen. */
  targetAdvice: TargetAdvice;
}

export function buildReport(detection: Detection, config: Config, source: string, startupTaint?: StartupTaintStatus[]): Report {
  const { action, target, gracePeriodSeconds, removeUnowned } = config.reaper;
  const nodes = detection.nodes.map((n): ReportNode => ({
    node: n.node,
    ciliumReady: n.readiness.ready,
    notReadyBecause: describeGaps(n.readiness, n.node),
    ...(n.readiness.agentPod ? { agentPod: n.readiness.agentPod } : {}),
    ...(n.readiness.readySince ? { readySince: n.readiness.readySince } : {}),
    ...(n.readiness.ciliumSince ? { ciliumSince: n.readiness.ciliumSince } : {}),
    ...(n.readiness.ciliumSinceFrom ? { ciliumSinceFrom: describeCiliumSince(n.readiness.ciliumSinceFrom) } : {}),
    pods: n.unmanaged.map((a) => ({
      namespace: a.pod.namespace,
      name: a.pod.name,
      ...(a.pod.uid ? { uid: a.pod.uid } : {}),
      ip: a.evidence.ip,
      verdict: a.verdict,
      ...(a.reason ? { reason: a.reason } : {}),
      why: a.why,
      evidence: a.evidence,
    })),
  }));
  const count = (verdict: Verdict) => nodes.reduce((sum, n) => sum + n.pods.filter((p) => p.verdict === verdict).length, 0);
  return {
    at: detection.at,
    source,
    nodeLabel: nodeLabelText(config),
    settings: { action, target, gracePeriodSeconds, removeUnowned },
    summary: {
      nodes: nodes.length,
      ciliumNotReady: nodes.filter((n) => !n.ciliumReady).length,
      remove: count('remove'),
      'report-only': count('report-only'),
      wait: count('wait'),
      keep: count('keep'),
    },
    nodes,
    ...(startupTaint
      ? { startupTaint: { key: config.cilium.agentNotReadyTaintKey, stuckAfterSeconds: config.nodeTaint.stuckAfterSeconds, nodes: startupTaint } }
      : {}),
    ...(detection.inactive ? { inactive: detection.inactive } : {}),
    targetAdvice: detection.advice,
  };
}

const TAINT_STATE_WORDS: Record<StartupTaintStatus['state'], string> = { waiting: 'waiting', 'agent-ready': 'agent-ready', stuck: 'STUCK' };

/** The startup-taint section: only printed when some node carries the taint. */
function startupTaintSection(report: Report): string[] {
  const tainted = report.startupTaint?.nodes ?? [];
  if (tainted.length === 0) return [];
  return [
    '',
    `Nodes waiting on Cilium's startup taint ${report.startupTaint!.key} (stuck after ${report.startupTaint!.stuckAfterSeconds}s of a Ready agent):`,
    '',
    table([
      ['NODE', 'TAINT', 'FOR', 'SINCE', 'DETAIL'],
      ...tainted.map((t) => [
        t.node,
        TAINT_STATE_WORDS[t.state],
        t.taintedSeconds !== undefined ? formatDuration(t.taintedSeconds) : '?',
        t.since ? `${t.since} (${t.sinceSource})` : 'unknown',
        describeStartupTaint(t),
      ]),
    ]),
  ];
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

const VERDICT_WORDS: Record<Verdict, string> = {
  remove: 'REMOVE',
  'report-only': 'REPORT-ONLY',
  wait: 'wait',
  keep: 'keep',
};

/** `extra`: sections other modules add (e.g. existing DaemonSets), printed before the summary line. */
export function formatReportTable(report: Report, extra: readonly string[] = []): string {
  const out: string[] = [];
  out.push(`Migrated nodes (${report.nodeLabel}), from ${report.source} at ${report.at}`);
  if (report.nodes.length === 0) {
    out.push('', `No node has the label ${report.nodeLabel}.`, ...startupTaintSection(report));
    for (const section of extra) out.push('', section.replace(/^\n+|\n+$/g, ''));
    return `${out.join('\n')}\n`;
  }
  out.push(
    '',
    table([
      ['NODE', 'CILIUM', 'DETAIL'],
      ...report.nodes.map((n) => [
        n.node,
        n.ciliumReady ? 'ready' : 'NOT READY',
        n.ciliumReady ? `since ${n.ciliumSince ?? n.readySince ?? 'unknown'} (${n.agentPod ?? 'agent'})` : n.notReadyBecause.join('; '),
      ]),
    ]),
  );
  const pods = report.nodes.flatMap((n) => n.pods.map((p) => ({ node: n.node, ...p })));
  out.push('');
  if (report.inactive) {
    out.push(`The reaper acts on nothing here: ${report.inactive.message}.`);
  } else if (pods.length === 0) {
    out.push('Every pod with an IP on these nodes is managed by Cilium (or exempt). Nothing to do.');
  } else {
    out.push(
      `Pods Cilium does not manage (${report.settings.target}, grace ${report.settings.gracePeriodSeconds}s, action ${report.settings.action}):`,
      '',
      table([
        ['POD', 'NODE', 'IP', 'VERDICT', 'REASON'],
        ...pods.map((p) => [`${p.namespace}/${p.name}`, p.node, p.ip, VERDICT_WORDS[p.verdict], p.reason ?? '-']),
      ]),
      '',
      ...pods.flatMap((p) => [`${p.namespace}/${p.name}: ${p.why}.`, `  evidence: ${describeEvidence(p.evidence)}`]),
    );
  }
  out.push(...startupTaintSection(report));
  const a = report.targetAdvice;
  out.push(
    '',
    a.fits === undefined
      ? `reaper.target: ${a.configured} (${a.why}).`
      : `reaper.target: ${a.configured}; ${a.fits} fits this cluster${a.fits === a.configured ? '' : ' — consider changing it'}: ${a.why}` +
          (a.outsideExamples.length > 0 ? ` (e.g. ${a.outsideExamples.join(', ')})` : '') +
          '. See docs/reaper.md, "Which target".',
  );
  for (const section of extra) out.push('', section.replace(/^\n+|\n+$/g, ''));
  const s = report.summary;
  out.push(
    '',
    `Summary: ${s.nodes} migrated node(s), ${s.ciliumNotReady} without a ready Cilium; ${s.remove} to remove, ${s['report-only']} report-only, ${s.wait} waiting, ${s.keep} kept.`,
  );
  return `${out.join('\n')}\n`;
}
