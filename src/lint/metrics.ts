// The findings metric: lint findings at apply time, by check and severity. Both labels are
// bounded (the check ids of checks.ts, three severities), so the series count is fixed.

import { Counter, type Registry } from 'prom-client';
import { METRIC_PREFIX } from '../metrics.js';
import type { Finding } from './types.js';

export function lintFindingsCounter(registry: Registry): (finding: Finding) => void {
  const counter = new Counter({
    name: `${METRIC_PREFIX}lint_findings_total`,
    help: 'Lint findings on writes of cilium-config and CiliumNodeConfigs (not dry runs), by check and severity.',
    labelNames: ['check', 'severity'],
    registers: [registry],
  });
  return (finding) => counter.inc({ check: finding.id, severity: finding.severity });
}
