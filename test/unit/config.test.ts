import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, loadConfigFile, parseConfig } from '../../src/config.js';

describe('config', () => {
  it('has documented defaults', () => {
    expect(defaultConfig.nodeLabel).toEqual({ key: 'cni', value: 'cilium' });
    expect(defaultConfig.presets).toEqual(['aws', 'azure', 'gke', 'calico', 'flannel', 'weave', 'kube-router']);
    expect(defaultConfig.onConflict).toBe('warn');
    expect(defaultConfig.cilium.agentLabels).toEqual({ 'k8s-app': 'cilium' });
    expect(defaultConfig.exemptions.label).toBe('cilium-migration-guard.io/exempt');
    expect(defaultConfig.reconciler).toMatchObject({ enabled: false, perMinute: 10, intervalSeconds: 60 });
  });

  it("takes Cilium's migration-guide label as one setting", () => {
    expect(parseConfig({ nodeLabel: 'io.cilium.migration/cilium-default=true' }).nodeLabel).toEqual({
      key: 'io.cilium.migration/cilium-default',
      value: 'true',
    });
  });

  it('is frozen: nothing can change it after start', () => {
    expect(Object.isFrozen(defaultConfig)).toBe(true);
    expect(Object.isFrozen(defaultConfig.cilium.agentLabels)).toBe(true);
  });

  it.each([
    [{ nodeLabel: 'cni' }, 'nodeLabel: expected "key=value"'],
    [{ nodeLabel: 'bad key!=x' }, 'nodeLabel: expected "key=value"'],
    [{ presets: ['aws', 'gcp'] }, 'presets.1'],
    [{ onConflict: 'ignore' }, 'onConflict'],
    [{ rules: [{ name: 'r', role: 'legacy', match: { namespace: 'kube-system' } }] }, 'a rule must match on names or labels'],
    [{ rules: [{ name: 'r', role: 'other', match: { names: ['x'] } }] }, 'rules.0.role'],
    [{ unknownField: 1 }, 'unknownField'],
    [{ cilium: { agentLabels: { 'k8s-app': 'bad value!' } } }, 'cilium.agentLabels'],
    [{ cilium: { agentLabels: {} } }, 'cilium.agentLabels: needs at least one label'],
    [{ self: { labels: {} } }, 'self.labels: needs at least one label'],
    [{ cilium: { ownPodLabels: [{}] } }, 'cilium.ownPodLabels.0: needs at least one label'],
    [{ reconciler: { intervalSeconds: 0 } }, 'reconciler.intervalSeconds'],
    [{ reconciler: { intervalSeconds: 1.5 } }, 'reconciler.intervalSeconds'],
  ])('rejects %j naming the field', (input, fragment) => {
    expect(() => parseConfig(input)).toThrow(ConfigError);
    expect(() => parseConfig(input)).toThrow(fragment);
  });

  describe('files', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'cmg-config-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('loads YAML', async () => {
      await writeFile(join(dir, 'ok.yaml'), 'nodeLabel: migrated=yes\npresets: [aws]\n');
      const config = loadConfigFile(join(dir, 'ok.yaml'));
      expect(config.nodeLabel).toEqual({ key: 'migrated', value: 'yes' });
      expect(config.presets).toEqual(['aws']);
    });
    it('names the file when it cannot be read or parsed', async () => {
      expect(() => loadConfigFile(join(dir, 'missing.yaml'))).toThrow(/cannot read config file .*missing.yaml/);
      await writeFile(join(dir, 'broken.yaml'), 'presets: [aws\n');
      expect(() => loadConfigFile(join(dir, 'broken.yaml'))).toThrow(/broken.yaml is not valid YAML/);
    });
  });
});
