import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReport } from '../../src/commands/report.js';

// `report` shows the lint findings of the same snapshot in a short section (and under `lint` in JSON).
describe('report: the lint section', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cmg-lint-report-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists the findings of the snapshot, errors first', async () => {
    const race = await readFile(new URL('../../examples/migration-race.yaml', import.meta.url), 'utf8');
    const config = [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata: {name: cilium-config, namespace: kube-system}',
      'data:',
      '  routing-mode: native',
      '  ipv4-native-routing-cidr: 192.168.0.0/16',
      '  enable-wireguard: "true"',
    ].join('\n');
    const file = join(dir, 'state.yaml');
    await writeFile(file, `${race}\n---\n${config}\n`);
    const { text, report } = await runReport(['--cluster-state', file]);
    expect(text).toMatch(/Cilium configuration \(lint\): 1 error\(s\), 0 warning\(s\), 0 info/);
    expect(text).toContain('  ERROR    native-routing-cidr (ConfigMap kube-system/cilium-config (every node)): pod CIDR');
    expect(report.lint?.map((f) => f.id)).toEqual(['native-routing-cidr']);
    const json = JSON.parse((await runReport(['--cluster-state', file, '-o', 'json'])).text) as { lint: { id: string }[] };
    expect(json.lint.map((f) => f.id)).toContain('native-routing-cidr');
  });
});
