// The PrometheusRule, the Grafana dashboard and the runbook name only metrics the code exports:
// every metric of both processes is registered here, as serve and reaper register them, and each
// PromQL expression's metric identifiers are checked against the registry's names.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { testAccess } from '../support/kube-access.js';
import { pino } from 'pino';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CertController } from '../../src/certs/cert-controller.js';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import { StartupTaintMonitor } from '../../src/cluster/startup-taint-monitor.js';
import { parseConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ProgressMetrics } from '../../src/progress/metrics.js';
import { ReaperMetrics } from '../../src/reaper/reaper-metrics.js';
import { ReconcilerMetrics } from '../../src/reconciler/metrics.js';
import { guardCounters } from '../../src/server/limits.js';

const root = join(import.meta.dirname, '..', '..');
const read = (file: string) => readFileSync(join(root, file), 'utf8');

/** Every series name the two processes can expose (histograms and summaries with their suffixes). */
function exportedNames(): Set<string> {
  const config = parseConfig({});
  const webhook = new Metrics();
  guardCounters(webhook);
  const kc = testAccess('https://127.0.0.1:1'); // never called
  new CertController({
    kc,
    secret: { namespace: 'ns', name: 's' },
    certDir: '/nonexistent',
    sans: [],
    logger: pino({ level: 'silent' }),
    registry: webhook.registry,
  });
  new StartupTaintMonitor({ view: new MemoryClusterView(config), config, logger: pino({ level: 'silent' }), registry: webhook.registry, synced: () => true });
  const reaper = new Metrics();
  new ReaperMetrics(reaper);
  new ReconcilerMetrics(reaper);
  new ProgressMetrics(reaper, () => undefined);
  const names = new Set<string>();
  for (const registry of [webhook.registry, reaper.registry]) {
    for (const metric of registry.getMetricsAsArray()) {
      const type = (metric as unknown as { type: string }).type;
      names.add(metric.name);
      if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(metric.name + s);
      if (type === 'summary') for (const s of ['_sum', '_count']) names.add(metric.name + s);
    }
  }
  return names;
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);

/** The metric names a PromQL expression reads: identifiers that are not functions, keywords, label names or strings. */
export function metricIdentifiers(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""') // strings
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // grouping label lists
    .replace(/\[[^\]]*\]/g, ''); // range and subquery durations
  const out: string[] = [];
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = stripped.slice(m.index + m[0].length).trimStart();
    if (after.startsWith('(')) continue; // a function or aggregation
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    out.push(m[0]);
  }
  return out;
}

const exported = exportedNames();

describe('metricIdentifiers', () => {
  it('finds metric names and only those', () => {
    expect(metricIdentifiers('histogram_quantile(0.99, sum by (le, webhook) (rate(cmg_x_bucket{a="b"}[5m]))) > 1')).toEqual(['cmg_x_bucket']);
    expect(metricIdentifiers('(max(cmg_reaper_leader) or vector(0)) < 1')).toEqual(['cmg_reaper_leader']);
    expect(metricIdentifiers('min(cmg_a) - time() < 7 * 86400 and on(x) up')).toEqual(['cmg_a', 'up']);
  });
});

describe('manifests/monitoring/prometheus-rule.yaml', () => {
  const rule = parse(read('manifests/monitoring/prometheus-rule.yaml'));
  const rules = (rule.spec.groups as any[]).flatMap((g) => g.rules as any[]);
  const runbook = read('docs/runbook.md');
  const anchors = new Set(
    [...runbook.matchAll(/^## (.+)$/gm)].map((m) =>
      m[1]!
        .toLowerCase()
        .replace(/[^a-z0-9 -]/g, '')
        .replace(/ /g, '-'),
    ),
  );

  it('has the alerts the migration needs', () => {
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining([
        'CMGMigratedNodeNotReady',
        'CMGUnmanagedPodsPresent',
        'CMGLegacyAgentsOnMigratedNodes',
        'CMGWebhookErrors',
        'CMGWebhookSlow',
        'CMGCertificateExpiresSoon',
        'CMGReaperNotLeading',
      ]),
    );
  });

  it.each(rules.map((r) => [r.alert as string, r] as const))('%s reads only exported metrics and links to its runbook entry', (_name, r) => {
    const names = metricIdentifiers(r.expr);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(exported, `${name} in ${r.expr}`).toContain(name);
    const anchor = /docs\/runbook\.md#([a-z0-9-]+)$/.exec(r.annotations.runbook_url)?.[1];
    expect(anchor && anchors.has(anchor), r.annotations.runbook_url).toBe(true);
    expect(r.labels.severity).toMatch(/^(info|warning|critical)$/);
  });

  it('the runbook names only exported metrics', () => {
    const mentioned = [...runbook.matchAll(/`(cmg_[a-z0-9_]+)/g)].map((m) => m[1]!);
    expect(mentioned.length).toBeGreaterThan(5);
    for (const name of mentioned) expect(exported, name).toContain(name);
  });
});

describe('manifests/monitoring/grafana-dashboard.json', () => {
  const dashboard = JSON.parse(read('manifests/monitoring/grafana-dashboard.json'));

  it('parses, and every panel query reads only exported metrics', () => {
    const targets = (dashboard.panels as any[]).flatMap((p) => p.targets as any[]);
    expect(targets.length).toBeGreaterThanOrEqual(10);
    for (const t of targets) {
      const names = metricIdentifiers(t.expr);
      expect(names.length, t.expr).toBeGreaterThan(0);
      for (const name of names) expect(exported, `${name} in ${t.expr}`).toContain(name);
    }
  });

  it('shows every progress metric', () => {
    const all = (dashboard.panels as any[]).flatMap((p) => (p.targets as any[]).map((t) => t.expr)).join('\n');
    for (const name of [
      'cmg_migration_nodes',
      'cmg_migration_oldest_waiting_node_seconds',
      'cmg_migration_node_time_to_ready_seconds_bucket',
      'cmg_migration_unmanaged_pods',
      'cmg_migration_legacy_agents_on_migrated_nodes',
      'cmg_daemonsets_out_of_line',
      'cmg_admission_decisions_total',
      'cmg_reaper_removals_total',
    ]) {
      expect(all).toContain(name);
    }
  });
});
