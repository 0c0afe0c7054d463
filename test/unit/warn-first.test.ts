import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config.js';

const root = join(import.meta.dirname, '..', '..');

describe('manifests/overlays/warn-first', () => {
  it('is the base config with both webhooks in warn; the base stays enforce', () => {
    const base = loadConfigFile(join(root, 'manifests/base/config.yaml'));
    const warnFirst = loadConfigFile(join(root, 'manifests/overlays/warn-first/config.yaml'));
    expect(base.modes).toEqual({ pods: 'enforce', daemonsets: 'enforce' });
    expect(warnFirst.modes).toEqual({ pods: 'warn', daemonsets: 'warn' });
    expect({ ...warnFirst, modes: base.modes }).toEqual(base);
  });

  it('replaces the base ConfigMap (same name, behavior replace) on top of the base', () => {
    const k = parse(readFileSync(join(root, 'manifests/overlays/warn-first/kustomization.yaml'), 'utf8'));
    expect(k.resources).toEqual(['../../base']);
    expect(k.configMapGenerator).toEqual([
      { name: 'cilium-migration-guard-config', namespace: 'cilium-migration-guard', behavior: 'replace', files: ['config.yaml'] },
    ]);
  });
});
