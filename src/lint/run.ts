// Runs every check: node-scoped checks once per node on its effective options (cilium-config
// with the CiliumNodeConfigs that select it), cluster-scoped checks once. A finding that comes out
// the same on several nodes is reported once, naming the nodes (or cilium-config, when it is all
// of them). Pure: the input is a bundle of objects already read.

import { CHECKS, type Check, type CheckContext, type Raw } from './checks.js';
import { effectiveOptions } from './options.js';
import type { Finding, LintInput, LintOptions, Severity } from './types.js';

export const SEVERITIES: readonly Severity[] = ['error', 'warning', 'info'];
const RANK: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

export const DEFAULT_LINT_OPTIONS: LintOptions = { nodeLabel: { key: 'cni', value: 'cilium' }, peeredCIDRs: [], interfaces: [] };

function nodeList(names: readonly string[], max = 5): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `nodes ${shown} and ${names.length - max} more` : `node${names.length > 1 ? 's' : ''} ${shown}`;
}

function runCheck(check: Check, input: LintInput, settings: LintOptions, configSubject: string, only?: ReadonlySet<string>): Finding[] {
  const toFinding = (raw: Raw, subject: string): Finding => ({ id: check.id, severity: raw.severity, message: raw.message, subject: raw.subject ?? subject });
  if (check.scope === 'cluster' || input.nodes.length === 0) {
    const ctx: CheckContext = { options: effectiveOptions(input), input, settings };
    return check.run(ctx).map((raw) => toFinding(raw, configSubject));
  }
  const byKey = new Map<string, { raw: Raw; nodes: string[] }>();
  for (const node of input.nodes.filter((n) => !only || only.has(n.name))) {
    for (const raw of check.run({ options: effectiveOptions(input, node), node, input, settings })) {
      const key = `${raw.severity}\u0000${raw.message}\u0000${raw.subject ?? ''}`;
      const entry = byKey.get(key) ?? { raw, nodes: [] };
      entry.nodes.push(node.name);
      byKey.set(key, entry);
    }
  }
  return [...byKey.values()].map(({ raw, nodes }) =>
    toFinding(raw, nodes.length === input.nodes.length ? `${configSubject} (every node)` : nodeList([...nodes].sort())),
  );
}

/** `only`: judge node-scoped checks on these nodes alone (a CiliumNodeConfig write); every node by default. */
export function lint(input: LintInput, settings: LintOptions = DEFAULT_LINT_OPTIONS, checks: readonly Check[] = CHECKS, only?: ReadonlySet<string>): Finding[] {
  const configSubject = input.ciliumConfig?.subject ?? 'Cilium defaults (no cilium-config given)';
  return checks
    .flatMap((check) => runCheck(check, input, settings, configSubject, only))
    .sort((a, b) => RANK[a.severity] - RANK[b.severity] || a.id.localeCompare(b.id) || a.subject.localeCompare(b.subject));
}

export function countBySeverity(findings: readonly Finding[]): Record<Severity, number> {
  const counts: Record<Severity, number> = { error: 0, warning: 0, info: 0 };
  for (const f of findings) counts[f.severity] += 1;
  return counts;
}

/** The command's exit code: 1 when any finding is an error, else 0 (2 is kept for usage mistakes). */
export const exitCodeFor = (findings: readonly Finding[]): number => (findings.some((f) => f.severity === 'error') ? 1 : 0);

/** For people: one block per finding, then a count. */
export function formatFindings(findings: readonly Finding[], source: string): string {
  const out = [`Cilium lint of ${source}`, ''];
  if (findings.length === 0) out.push('No findings.');
  for (const f of findings) out.push(`${f.severity.toUpperCase().padEnd(8)} ${f.id}  (${f.subject})`, `  ${f.message}`, '');
  const counts = countBySeverity(findings);
  out.push(SEVERITIES.map((s) => `${counts[s]} ${s}${counts[s] === 1 || s === 'info' ? '' : 's'}`).join(', '));
  return `${out.join('\n')}\n`;
}

/** The short section `report` prints: one line per finding, errors and warnings first. */
export function formatLintSection(findings: readonly Finding[] | undefined, error?: string): string {
  if (error !== undefined) return `Cilium configuration (lint): could not be read: ${error}\n`;
  const list = findings ?? [];
  const counts = countBySeverity(list);
  const out = [
    `Cilium configuration (lint): ${counts.error} error(s), ${counts.warning} warning(s), ${counts.info} info (details: cilium-migration-guard lint)`,
  ];
  for (const f of list) out.push(`  ${f.severity.toUpperCase().padEnd(8)} ${f.id} (${f.subject}): ${f.message}`);
  return `${out.join('\n')}\n`;
}
