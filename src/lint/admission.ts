// Lint at apply time: writes of `<cilium ns>/cilium-config` and of CiliumNodeConfigs are judged by
// the same checks, against the Nodes and CiliumNodes the webhook's cluster view holds, and
// answered with kubectl `Warning:` lines. Never a denial unless a check is listed in
// lint.denyChecks (and the finding is an error). Pure: the handler adapter only reads the view.

import { allowed, denied, type Decision } from '../admission/decision.js';
import type { AdmissionHandler } from '../admission/handler.js';
import type { AdmissionRequest } from '../admission/types.js';
import { CHECKS } from './checks.js';
import { addObject, finish, newCollector } from './load.js';
import { nodeConfigsFor } from './options.js';
import { DEFAULT_LINT_OPTIONS, lint } from './run.js';
import type { Finding, LintInput, LintNode, LintOptions } from './types.js';

/** kubectl prints each warning on its own `Warning:` line; kept short enough to read in a terminal. */
export const MAX_WARNING_CHARS = 119;

/** What the webhook knows of the cluster when a write arrives. */
export interface LintFacts {
  nodes: readonly LintNode[];
  ciliumNodes: ReadonlyMap<string, readonly string[]>;
  /** The current cilium-config data, when the view holds it (for a CiliumNodeConfig write). */
  ciliumConfigData?: Readonly<Record<string, string>>;
}

export interface LintAdmissionOptions {
  ciliumNamespace: string;
  settings: LintOptions;
  /** Check ids whose error findings deny the write. Empty (the default): never deny. */
  denyChecks: readonly string[];
}

/**
 * One finding as kubectl warning lines: `[error] native-routing-cidr: pod CIDR …`, wrapped at word
 * boundaries so each line stays under MAX_WARNING_CHARS; continuation lines are indented. The whole
 * message (with the Helm value to change) reaches the terminal.
 */
export function warningLines(f: Finding): string[] {
  const lines: string[] = [];
  // Node subjects (a CiliumNodeConfig's nodes) are named; the written object itself is not.
  let line = f.subject.startsWith('node') ? `[${f.severity}] ${f.id} (${f.subject}):` : `[${f.severity}] ${f.id}:`;
  for (const word of f.message.split(/\s+/).filter(Boolean)) {
    const piece = word.length > MAX_WARNING_CHARS - 2 ? `${word.slice(0, MAX_WARNING_CHARS - 3)}…` : word;
    if (line.length + 1 + piece.length > MAX_WARNING_CHARS) {
      lines.push(line);
      line = `  ${piece}`;
    } else line = `${line} ${piece}`;
  }
  lines.push(line);
  return lines;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The lint input a write makes, or undefined when the write is not one lint judges. */
export function inputForWrite(
  request: AdmissionRequest,
  facts: LintFacts,
  options: LintAdmissionOptions,
): { input: LintInput; only?: ReadonlySet<string> } | undefined {
  const object = request.object;
  if (!isObj(object) || (request.operation !== 'CREATE' && request.operation !== 'UPDATE')) return undefined;
  const c = newCollector();
  const kind = request.kind.kind;
  const name = request.name ?? (isObj(object.metadata) ? String(object.metadata.name ?? '') : '');
  const namespace = request.namespace ?? options.ciliumNamespace;
  const meta = { ...(isObj(object.metadata) ? object.metadata : {}), name, namespace };
  if (kind === 'ConfigMap') {
    if (name !== 'cilium-config' || namespace !== options.ciliumNamespace) return undefined;
    addObject(c, { ...object, apiVersion: 'v1', kind: 'ConfigMap', metadata: meta }, `ConfigMap ${namespace}/${name}`, options.ciliumNamespace);
  } else if (kind === 'CiliumNodeConfig') {
    addObject(c, { ...object, apiVersion: 'cilium.io/v2', kind, metadata: meta }, `CiliumNodeConfig ${namespace}/${name}`);
    // The webhook's view does not cache cilium-config: without it the object's defaults are judged
    // over Cilium's own defaults (a key it does not set can hide a finding, never invent one).
    if (facts.ciliumConfigData) c.input.ciliumConfig = { data: facts.ciliumConfigData, subject: `ConfigMap ${options.ciliumNamespace}/cilium-config` };
  } else return undefined;
  c.nodes.push(...facts.nodes);
  for (const [node, cidrs] of facts.ciliumNodes) c.ciliumNodes.set(node, cidrs);
  const input = finish(c, false);
  if (kind === 'CiliumNodeConfig') {
    // Judge only the nodes this object selects (the rest did not change), against every pod CIDR.
    return { input, only: new Set(input.nodes.filter((n) => nodeConfigsFor(n, input.nodeConfigs).length > 0).map((n) => n.name)) };
  }
  return { input };
}

export function lintAdmission(request: AdmissionRequest, facts: LintFacts, options: LintAdmissionOptions): { decision: Decision; findings: Finding[] } {
  const what = inputForWrite(request, facts, options);
  if (!what) return { decision: allowed('lint-not-applicable'), findings: [] };
  if (what.only && what.only.size === 0) return { decision: allowed('lint-selects-no-node'), findings: [] };
  const checks = what.only ? CHECKS.filter((c) => c.scope === 'node') : CHECKS;
  // info findings (the pod CIDR plan) are for `lint` and `report`, not for every apply.
  const findings = lint(what.input, options.settings, checks, what.only).filter((f) => f.severity !== 'info');
  const audit = findings.length > 0 ? { findings: findings.map((f) => `${f.severity}:${f.id}`).join(',') } : undefined;
  const warnings = findings.flatMap(warningLines);
  if (findings.length > 0) warnings.push('details: cilium-migration-guard lint -f FILE (or against the cluster); see docs/lint.md');
  const blocking = findings.filter((f) => f.severity === 'error' && options.denyChecks.includes(f.id));
  const subject = `${request.kind.kind} ${request.namespace ?? ''}/${request.name ?? ''}`;
  if (blocking.length > 0) {
    const message = `${subject} is refused by cilium-migration-guard lint (lint.denyChecks): ${blocking.map((f) => `${f.id}: ${f.message}`).join(' ')}`;
    return { decision: denied('lint-denied', message, { warnings, ...(audit ? { audit } : {}) }), findings };
  }
  return {
    decision: allowed(findings.length > 0 ? 'lint-findings' : 'lint-clean', { ...(warnings.length > 0 ? { warnings } : {}), ...(audit ? { audit } : {}) }),
    findings,
  };
}

/** The view the handler reads: the webhook's informer caches. */
export interface LintViewSource {
  nodes(): readonly { metadata: { name: string; labels?: Record<string, string> }; spec?: { podCIDRs?: string[] } }[];
  ciliumNode(name: string): { spec?: { ipam?: { podCIDRs?: string[] } } } | undefined;
}

export function factsFromView(view: LintViewSource): LintFacts {
  const nodes: LintNode[] = [];
  const ciliumNodes = new Map<string, readonly string[]>();
  for (const n of view.nodes()) {
    nodes.push({ name: n.metadata.name, labels: n.metadata.labels ?? {}, podCIDRs: n.spec?.podCIDRs ?? [] });
    const cidrs = view.ciliumNode(n.metadata.name)?.spec?.ipam?.podCIDRs;
    if (cidrs) ciliumNodes.set(n.metadata.name, cidrs);
  }
  return { nodes, ciliumNodes };
}

/** POST /validate/cilium-config. `count` is called once per finding (the findings metric). */
export function lintAdmissionHandler(
  view: LintViewSource,
  options: Omit<LintAdmissionOptions, 'settings'> & { settings?: LintOptions },
  count: (finding: Finding) => void = () => {},
): AdmissionHandler {
  const full: LintAdmissionOptions = { ...options, settings: options.settings ?? DEFAULT_LINT_OPTIONS };
  return {
    name: 'cilium-config-lint',
    handle(request) {
      const { decision, findings } = lintAdmission(request, factsFromView(view), full);
      if (!request.dryRun) for (const f of findings) count(f);
      return decision;
    },
  };
}
