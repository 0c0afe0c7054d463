// report's lint section takes its pods from the reaper's pod cache (lint/from-view.ts) instead of
// listing every pod again: the same fixtures, read as files or through trimPodForReaper and a
// MemoryClusterView, give the same pod facts and the same findings.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config.js';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import { hostPortsOf, trimPod, trimPodForReaper } from '../../src/cluster/trim.js';
import { lintPodsOf } from '../../src/lint/from-view.js';
import { loadFiles } from '../../src/lint/load.js';
import { DEFAULT_LINT_OPTIONS, lint } from '../../src/lint/run.js';
import type { LintInput } from '../../src/lint/types.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'lint');

type Obj = Record<string, unknown>;

/** Every Pod in a file, from single documents and from Lists. */
function podsIn(text: string): Obj[] {
  const out: Obj[] = [];
  for (const doc of parseAllDocuments(text) as ReturnType<typeof parseAllDocuments> & unknown[]) {
    const data = doc.toJS() as Obj | null;
    if (!data) continue;
    if (data.kind === 'Pod') out.push(data);
    if (typeof data.kind === 'string' && data.kind.endsWith('List') && Array.isArray(data.items)) {
      for (const item of data.items as Obj[]) if (item.kind === 'Pod' || data.kind === 'PodList') out.push(item);
    }
  }
  return out;
}

/** The file's LintInput with its pod facts replaced by those of a view fed the same pods. */
function fromView(input: LintInput, pods: Obj[], trim: (raw: unknown) => ReturnType<typeof trimPod>): LintInput {
  const view = new MemoryClusterView(defaultConfig);
  for (const pod of pods) view.upsertPod(trim(pod), 'all');
  const { hostPortPods: _h, podCount: _p, ...rest } = input;
  return { ...rest, ...lintPodsOf(view.pods()) };
}

const cases = readdirSync(FIXTURES).flatMap((dir) => readdirSync(join(FIXTURES, dir)).map((file) => join(FIXTURES, dir, file)));

describe('lint pods from the view = lint pods from a list', () => {
  it.each(cases)('%s', (file) => {
    const pods = podsIn(readFileSync(file, 'utf8'));
    const listed = loadFiles([file]).input;
    for (const trim of [trimPodForReaper, (raw: unknown) => trimPod(raw)]) {
      const cached = fromView(listed, pods, trim);
      expect(cached.hostPortPods).toEqual(listed.hostPortPods);
      expect(cached.podCount).toBe(listed.podCount ?? 0);
      expect(lint(cached, DEFAULT_LINT_OPTIONS)).toEqual(lint(listed.podCount === undefined ? { ...listed, podCount: 0 } : listed, DEFAULT_LINT_OPTIONS));
    }
  });

  it('the fixtures hold host-port pods, so the comparison is not vacuous', () => {
    const withHostPorts = cases.filter((file) => loadFiles([file]).input.hostPortPods.length > 0);
    expect(withHostPorts.length).toBeGreaterThan(0);
    const trigger = join(FIXTURES, 'aks-fqdn-kube-proxy', 'trigger.yaml');
    const findings = lint(fromView(loadFiles([trigger]).input, podsIn(readFileSync(trigger, 'utf8')), trimPodForReaper), DEFAULT_LINT_OPTIONS);
    expect(findings.find((f) => f.id === 'aks-fqdn-kube-proxy')?.message).toContain('ingress-nginx/ingress-nginx-controller-7d9f8');
  });

  it('edge pods: host network, hostPort 0, init containers, unscheduled, several namespaces', () => {
    const pods: Obj[] = [
      { metadata: { name: 'hostnet', namespace: 'a' }, spec: { hostNetwork: true, containers: [{ name: 'c', ports: [{ containerPort: 9, hostPort: 9 }] }] } },
      { metadata: { name: 'zero', namespace: 'a' }, spec: { containers: [{ name: 'c', ports: [{ containerPort: 80, hostPort: 0 }] }] } },
      {
        metadata: { name: 'init', namespace: 'a' },
        spec: { initContainers: [{ name: 'i', ports: [{ containerPort: 1, hostPort: 1 }] }], containers: [{ name: 'c' }] },
      },
      { metadata: { name: 'pending', namespace: 'b' }, spec: { containers: [{ name: 'c', ports: [{ containerPort: 80, hostPort: 8080 }] }] } },
      {
        metadata: { name: 'two', namespace: 'c' },
        spec: {
          nodeName: 'n1',
          containers: [
            { name: 'c', ports: [{ containerPort: 80, hostPort: 80 }] },
            { name: 'd', ports: [{ containerPort: 443, hostPort: 443 }, { containerPort: 5 }] },
          ],
        },
      },
    ];
    const list = { apiVersion: 'v1', kind: 'PodList', items: pods };
    const listed = loadFiles(['pods.json'], () => JSON.stringify(list)).input;
    const cached = fromView(listed, pods, trimPodForReaper);
    expect(listed.podCount).toBe(5);
    expect(cached.podCount).toBe(5);
    const byName = (p: { name: string }, q: { name: string }) => p.name.localeCompare(q.name);
    expect([...cached.hostPortPods].sort(byName)).toEqual([...listed.hostPortPods].sort(byName));
    expect([...cached.hostPortPods].sort(byName)).toEqual([
      { namespace: 'b', name: 'pending', hostPorts: [8080] },
      { namespace: 'c', name: 'two', node: 'n1', hostPorts: [80, 443] },
    ]);
  });

  it('the trimmed pod keeps host ports only where the lint reads them', () => {
    expect(hostPortsOf({ containers: [{ ports: [{ containerPort: 80 }] }] })).toBeUndefined();
    expect(hostPortsOf({ hostNetwork: true, containers: [{ ports: [{ hostPort: 80 }] }] })).toBeUndefined();
    expect(hostPortsOf({ containers: 'bad' })).toBeUndefined();
    expect(trimPodForReaper({ metadata: { name: 'p' }, spec: { containers: [{ ports: [{ hostPort: 53 }] }] } }).spec.hostPorts).toEqual([53]);
    expect('hostPorts' in trimPodForReaper({ metadata: { name: 'p' }, spec: { containers: [{ ports: [{ containerPort: 53 }] }] } }).spec).toBe(false);
  });
});
