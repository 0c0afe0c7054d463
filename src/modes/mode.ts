// Enforcement modes (as Gatekeeper's enforcementAction and Kyverno's Audit/Enforce):
//   enforce  the decision as the policy made it (deny, patch): today's behaviour and the default;
//   warn     admit; what would have been denied or patched goes back as kubectl `Warning:` lines;
//   audit    admit silently; only the log line, the metrics and the audit annotations say it.
// The mode in force comes from the config per webhook, overridden per namespace by the label
// cilium-migration-guard.io/mode. Pure: (decision, mode) → decision.

import type { Decision } from '../admission/decision.js';
import { PROJECT_DOMAIN } from '../config.js';

export const MODES = ['enforce', 'warn', 'audit'] as const;
export type Mode = (typeof MODES)[number];

/** The namespace label that overrides the configured mode for requests in that namespace. */
export const MODE_LABEL = `${PROJECT_DOMAIN}/mode`;

/** The webhooks a mode applies to (config key → handler name). The node-taint webhook has none: see README. */
export type ModedWebhook = 'pods' | 'daemonsets';

/** The API server keeps a warning of at most 120 characters whole; longer ones are cut. */
export const WARNING_MAX_CHARS = 120;

/** What the view knows of a namespace's mode label; undefined when unlabelled or not known. */
export interface NamespaceModes {
  modeLabel(namespace: string): string | undefined;
}

export const noNamespaceModes: NamespaceModes = { modeLabel: () => undefined };

export function isMode(value: unknown): value is Mode {
  return typeof value === 'string' && (MODES as readonly string[]).includes(value);
}

export interface ModeInForce {
  mode: Mode;
  /** Where it came from: the config, or the namespace's label. */
  source: 'config' | 'namespace';
  /** A label value that is not a mode: ignored, said in a warning. */
  invalidLabel?: string;
}

export function resolveMode(namespace: string | undefined, namespaces: NamespaceModes, configured: Mode): ModeInForce {
  const label = namespace ? namespaces.modeLabel(namespace) : undefined;
  if (label === undefined) return { mode: configured, source: 'config' };
  if (isMode(label)) return { mode: label, source: 'namespace' };
  return { mode: configured, source: 'config', invalidLabel: label };
}

/** Splits text into lines of at most `max` characters, at spaces where it can (a longer word is cut). */
export function splitWarning(text: string, max = WARNING_MAX_CHARS): string[] {
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (word.length > 0) {
      if (line === '' && word.length > max) {
        lines.push(word.slice(0, max));
        word = word.slice(max);
      } else if (line === '') {
        line = word;
        word = '';
      } else if (line.length + 1 + word.length <= max) {
        line = `${line} ${word}`;
        word = '';
      } else {
        lines.push(line);
        line = '';
      }
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** The audit annotation value a mode turns a decision into (pod webhook key "decision", DaemonSet key "action"). */
function wouldBe(value: string | undefined, fallback: string): string {
  if (value === 'denied' || value === 'conflict-denied') return 'would-deny';
  if (value === 'injected') return 'would-inject';
  return value ?? fallback;
}

/**
 * The decision the API server gets under `mode`. Every decision records the mode (decision.mode
 * for the log line and metrics, audit annotation `mode`); in warn and audit a denial becomes an
 * admission and a patch is dropped, and decision.wouldBe says which.
 */
export function applyMode(decision: Decision, inForce: ModeInForce): Decision {
  const { mode } = inForce;
  const notes =
    inForce.invalidLabel !== undefined
      ? [`cilium-migration-guard ignored namespace label ${MODE_LABEL}=${inForce.invalidLabel} (not one of ${MODES.join(', ')}); mode ${mode} applies`]
      : [];
  const audit: Record<string, string> = { ...decision.audit, mode };
  const withNotes = (warnings: string[] | undefined): string[] | undefined => {
    const all = [...(warnings ?? []), ...notes];
    return all.length > 0 ? all : undefined;
  };
  const acts = !decision.allowed || (decision.patch !== undefined && decision.patch.length > 0);
  if (mode === 'enforce' || !acts) {
    const warnings = mode === 'audit' ? undefined : withNotes(decision.warnings);
    const { warnings: _w, ...rest } = decision;
    return { ...rest, ...(warnings ? { warnings } : {}), audit, mode };
  }

  const outcome = decision.allowed ? 'patched' : 'denied';
  const { patch: _p, message, code: _c, warnings: _w, ...rest } = decision;
  const wouldAudit: Record<string, string> = { ...audit };
  if (audit.decision !== undefined) wouldAudit.decision = wouldBe(audit.decision, 'would-deny');
  if (audit.action !== undefined) wouldAudit.action = wouldBe(audit.action, 'would-inject');
  if (audit.decision === undefined && audit.action === undefined) wouldAudit.decision = outcome === 'denied' ? 'would-deny' : 'would-inject';
  const base: Decision = { ...rest, allowed: true, audit: wouldAudit, mode, wouldBe: outcome };
  if (mode === 'audit') return base;

  // warn: say what enforce would have done, in lines the API server keeps whole.
  const said =
    outcome === 'denied'
      ? splitWarning(`cilium-migration-guard (mode warn) would deny: ${message ?? decision.reason}`)
      : (decision.warnings ?? []).flatMap((w) =>
          splitWarning(
            w.startsWith('cilium-migration-guard added ')
              ? `cilium-migration-guard (mode warn) would add ${w.slice('cilium-migration-guard added '.length)}; not applied`
              : `cilium-migration-guard (mode warn) would patch: ${w}`,
          ),
        );
  return { ...base, warnings: [...said, ...notes] };
}
