import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const readYaml = (file: string): any[] => parseAllDocuments(readFileSync(join(root, file), 'utf8')).map((d) => d.toJS());

describe('components/reconciler', () => {
  it('grants the reaper exactly the calls of src/reconciler/api.ts, bound to its ServiceAccount', () => {
    const objects = readYaml('manifests/components/reconciler/rbac.yaml');
    const role = objects.find((o) => o.kind === 'ClusterRole');
    const binding = objects.find((o) => o.kind === 'ClusterRoleBinding');
    expect(role.rules).toEqual([
      { apiGroups: ['apps'], resources: ['daemonsets'], verbs: ['list', 'patch'] },
      { apiGroups: [''], resources: ['namespaces'], verbs: ['list'] },
    ]);
    expect(binding.roleRef.name).toBe(role.metadata.name);
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'cilium-migration-guard-reaper', namespace: 'cilium-migration-guard' }]);
  });

  it('is opt-in: the base grants no one a write to DaemonSets', () => {
    for (const file of ['manifests/base/rbac-reaper.yaml', 'manifests/base/rbac-webhook.yaml']) {
      const rules = readYaml(file).flatMap((o) => (o.rules ?? []) as any[]);
      expect(
        rules.filter((r) => (r.resources as string[]).includes('daemonsets')),
        file,
      ).toEqual([]);
    }
    expect(readFileSync(join(root, 'manifests/base/kustomization.yaml'), 'utf8')).not.toContain('reconciler');
  });
});
