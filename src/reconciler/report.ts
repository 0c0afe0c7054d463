// The `report` section about existing DaemonSets: which ones a rule matches whose stored affinity
// does not meet their role (and which contradict it), and the agent pods that show it on migrated
// nodes. DaemonSets come from the cluster (one list) or from the snapshot file's DaemonSet objects.

import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { KubeAccess } from '../cluster/kube-config.js';
import type { FullClusterView } from '../cluster/view.js';
import type { Config } from '../config.js';
import { liveReconcilerApi } from './api.js';
import { agentPlacement, daemonSetFindings, type AgentPlacement, type DaemonSetObject } from './findings.js';

export interface DaemonSetReport {
  /** Whether DaemonSets were read at all (a snapshot without any says nothing about them). */
  daemonSetsRead: number;
  outOfLine: Array<{ namespace: string; name: string; role: string; rule: string; requirement: string }>;
  conflicts: Array<{ namespace: string; name: string; role: string; rule: string; requirement: string; detail: string }>;
  agents: AgentPlacement;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** apps/v1 DaemonSets in a snapshot file (single objects or Lists); everything else is ignored. */
export function daemonSetsInFile(path: string): DaemonSetObject[] {
  const out: DaemonSetObject[] = [];
  for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
    const value: unknown = doc.toJS();
    if (!isObj(value)) continue;
    const items = Array.isArray(value.items) ? value.items : [value];
    const listKind = value.kind === 'DaemonSetList';
    for (const item of items) {
      if (!isObj(item) || !isObj(item.metadata) || typeof item.metadata.name !== 'string') continue;
      if (!listKind && !(item.kind === 'DaemonSet' && item.apiVersion === 'apps/v1')) continue;
      out.push(item as unknown as DaemonSetObject);
    }
  }
  return out;
}

export async function readDaemonSets(kc: KubeAccess | undefined, snapshotFile: string | undefined): Promise<DaemonSetObject[]> {
  if (kc) {
    const noEvents = { createEvent: async () => {}, patchEvent: async () => {} };
    return liveReconcilerApi(kc, noEvents).listDaemonSets();
  }
  return snapshotFile ? daemonSetsInFile(snapshotFile) : [];
}

export function daemonSetReport(daemonSets: readonly DaemonSetObject[], view: FullClusterView, config: Config): DaemonSetReport {
  const findings = daemonSetFindings(daemonSets, view, config);
  return {
    daemonSetsRead: daemonSets.length,
    outOfLine: findings.flatMap((f) =>
      f.state === 'out-of-line' ? [{ namespace: f.namespace, name: f.name, role: f.role, rule: f.rule, requirement: f.requirement }] : [],
    ),
    conflicts: findings.flatMap((f) =>
      f.state === 'conflict' ? [{ namespace: f.namespace, name: f.name, role: f.role, rule: f.rule, requirement: f.requirement, detail: f.detail }] : [],
    ),
    agents: agentPlacement(view, daemonSets, config),
  };
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}

export function formatDaemonSetReport(r: DaemonSetReport): string {
  const out: string[] = [''];
  if (r.daemonSetsRead === 0) {
    out.push('DaemonSets: none read (add `kubectl get daemonsets -A -o yaml` to the snapshot to check them).');
  } else if (r.outOfLine.length === 0 && r.conflicts.length === 0) {
    out.push(`DaemonSets: all ${r.daemonSetsRead} meet their role (or have none).`);
  } else {
    out.push(
      'DaemonSets whose stored affinity does not meet their role (written before the webhook, while it was down, or in warn mode):',
      '',
      ...table([
        ['DAEMONSET', 'ROLE', 'RULE', 'STATE', 'NEEDS'],
        ...r.outOfLine.map((d) => [`${d.namespace}/${d.name}`, d.role, d.rule, 'out of line', d.requirement]),
        ...r.conflicts.map((d) => [`${d.namespace}/${d.name}`, d.role, d.rule, 'CONFLICT', d.requirement]),
      ]),
    );
    if (r.outOfLine.length > 0) out.push('', 'Out of line: the reconciler (reconciler.enabled) patches these, or any write through the webhook does.');
    for (const c of r.conflicts) out.push(`${c.namespace}/${c.name}: ${c.detail}`);
  }
  const { legacyOnMigrated, ciliumMissing } = r.agents;
  if (legacyOnMigrated.length > 0) {
    out.push(
      '',
      'Previous-CNI agent pods on migrated nodes:',
      '',
      ...table([['POD', 'NODE', 'DAEMONSET', 'RULE'], ...legacyOnMigrated.map((p) => [`${p.namespace}/${p.name}`, p.node, p.daemonSet, p.rule])]),
    );
  }
  if (ciliumMissing.length > 0) out.push('', `Migrated nodes with no Cilium agent pod: ${ciliumMissing.join(', ')}.`);
  return `${out.join('\n')}\n`;
}
