// The install manifests (manifests/) and the Dockerfile, read as files: they agree with the code
// (webhook registrations, flags, names, config schema, version), and keep their safety invariants.
// Rendering and the API server's verdict are in test/e2e/install.e2e.test.ts.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseReaperFlags } from '../../src/commands/reaper.js';
import { parseServeFlags } from '../../src/commands/serve.js';
import jsonpatch from 'fast-json-patch';
import { loadConfigFile, parseConfig } from '../../src/config.js';
import {
  CONFIGURATION_NAME,
  MUTATING_NODES_NAME,
  mutatingWebhookConfiguration,
  nodeLabelCondition,
  validatingWebhookConfiguration,
} from '../../src/registration.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const NS = 'cilium-migration-guard';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}
// The manifests are hand-written YAML: reach into them loosely, let the assertions do the checking.
type Any = any;

function readYaml(path: string): Obj[] {
  return parseAllDocuments(readFileSync(join(root, path), 'utf8'))
    .map((doc) => doc.toJSON() as Obj)
    .filter(Boolean);
}

const baseKustomization = parse(readFileSync(join(root, 'manifests/base/kustomization.yaml'), 'utf8')) as Any;
const base: Obj[] = (baseKustomization.resources as string[]).flatMap((file) => readYaml(`manifests/base/${file}`));
const find = (kind: string, name: string): Any => {
  const found = base.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in manifests/base`);
  return found;
};
const webhook = find('Deployment', 'cilium-migration-guard-webhook');
const reaper = find('Deployment', 'cilium-migration-guard-reaper');
const flag = (deployment: Any, name: string): string | undefined =>
  (deployment.spec.template.spec.containers[0].args as string[]).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

describe('webhook registrations', () => {
  const registration = {
    endpoint: { service: { namespace: NS, name: 'cilium-migration-guard', port: 443 } },
    ownNamespace: NS,
  };

  it('are exactly what src/registration.ts builds for the Service (caBundle is injected at run time)', () => {
    expect(find('MutatingWebhookConfiguration', CONFIGURATION_NAME)).toEqual(mutatingWebhookConfiguration(registration));
    expect(find('ValidatingWebhookConfiguration', CONFIGURATION_NAME)).toEqual(validatingWebhookConfiguration(registration));
  });

  it.each(['aws', 'azure', 'gke'])("overlay %s: its patches give the DaemonSet entries the matchConditions its own config's presets need", (cloud) => {
    const kustomization = parse(readFileSync(join(root, `manifests/overlays/${cloud}/kustomization.yaml`), 'utf8')) as Any;
    let mutating = structuredClone(find('MutatingWebhookConfiguration', CONFIGURATION_NAME));
    for (const patch of kustomization.patches ?? []) {
      if (patch.target?.kind !== 'MutatingWebhookConfiguration') continue;
      const ops = parse(patch.patch) as jsonpatch.Operation[];
      mutating = jsonpatch.applyPatch(mutating, ops, true, false).newDocument;
    }
    const config = loadConfigFile(join(root, `manifests/overlays/${cloud}/config.yaml`));
    const expected = mutatingWebhookConfiguration({ ...registration, config });
    expect(mutating.webhooks).toEqual(expected.webhooks);
    // And they differ from the base's: the base registration would send the other presets' DaemonSets.
    expect(mutating.webhooks).not.toEqual(mutatingWebhookConfiguration(registration).webhooks);
  });

  it('point at the Service in front of the webhook, on its https port', () => {
    const service = find('Service', 'cilium-migration-guard');
    expect(service.metadata.namespace).toBe(NS);
    expect(service.spec.ports).toEqual([expect.objectContaining({ port: 443, targetPort: 'https' })]);
    expect(webhook.spec.template.spec.containers[0].ports).toContainEqual(expect.objectContaining({ name: 'https' }));
    expect(service.spec.selector).toEqual(webhook.spec.selector.matchLabels);
    expect(flag(webhook, 'service')).toBe(service.metadata.name);
  });
});

describe('deployments', () => {
  const maxTimeout = Math.max(
    ...['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'].flatMap((kind) =>
      (find(kind, CONFIGURATION_NAME).webhooks as Any[]).map((w) => w.timeoutSeconds as number),
    ),
  );

  it.each([
    ['webhook', webhook],
    ['reaper', reaper],
  ])('%s: replicated, spread, non-root, read-only, no privileges, bounded resources', (_name, deployment: Any) => {
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(pod.topologySpreadConstraints).toContainEqual(
      expect.objectContaining({ topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule' }),
    );
    expect(pod.priorityClassName).toBe('system-cluster-critical');
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 65532,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    for (const kind of ['requests', 'limits']) expect(Object.keys(container.resources[kind]).sort()).toEqual(['cpu', 'memory']);
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(pod.hostNetwork).toBeUndefined(); // only the cloud overlays' component turns it on
    expect(pod.serviceAccountName).toMatch(/^cilium-migration-guard-/);
    // Config file from the generated ConfigMap, at the path --config names.
    const config = pod.volumes.find((v: Any) => v.configMap);
    const mount = container.volumeMounts.find((m: Any) => m.name === config.name);
    expect(flag(deployment, 'config')).toBe(`${mount.mountPath}/config.yaml`);
    expect(config.configMap.name).toBe(baseKustomization.configMapGenerator[0].name);
    // Selector labels include the ones config.self exempts from the pod webhook.
    expect(deployment.spec.template.metadata.labels).toMatchObject(parseConfig({}).self.labels);
  });

  it('webhook: probes over HTTPS, graceful termination longer than the webhook timeout plus preStop', () => {
    const pod = webhook.spec.template.spec;
    const container = pod.containers[0];
    expect(container.readinessProbe.httpGet.scheme).toBe('HTTPS');
    const preStop = container.lifecycle.preStop.sleep.seconds as number;
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(maxTimeout + preStop + 20); // 20 s: server drain deadline
    expect(container.args[0]).toBe('serve');
    expect(flag(webhook, 'webhook-config')).toBe(CONFIGURATION_NAME);
    // The server listens where the container port says: the CLI's own default, and CMG_PORT
    // where the host-network component sets one.
    const env = Object.fromEntries((container.env ?? []).filter((e: Any) => 'value' in e).map((e: Any) => [e.name, e.value]));
    const listens = parseServeFlags((container.args as string[]).slice(1), env).port;
    expect(String(container.ports[0].containerPort)).toBe(listens);
    // The cert dir is a writable emptyDir, not the Secret: the webhook writes it.
    const certs = pod.volumes.find((v: Any) => v.name === 'certs');
    expect(certs.emptyDir).toBeDefined();
    expect(container.volumeMounts.find((m: Any) => m.name === 'certs').mountPath).toBe(flag(webhook, 'cert-dir'));
  });

  it('reaper: the agreed command line, probes on 9090', () => {
    const container = reaper.spec.template.spec.containers[0];
    expect(container.args).toEqual([
      'reaper',
      '--config=/etc/cilium-migration-guard/config.yaml',
      '--lease-namespace=$(POD_NAMESPACE)',
      '--identity=$(POD_NAME)',
    ]);
    expect(container.ports).toEqual([{ name: 'http-metrics', containerPort: 9090, protocol: 'TCP' }]);
    expect(container.env.map((e: Any) => e.name)).toEqual(expect.arrayContaining(['POD_NAMESPACE', 'POD_NAME']));
  });

  it('each has a PodDisruptionBudget selecting it, allowing one disruption at a time', () => {
    for (const deployment of [webhook, reaper]) {
      const pdb = base.find((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === deployment.metadata.name) as Any;
      expect(pdb.spec).toMatchObject({ minAvailable: 1, selector: deployment.spec.selector });
    }
  });
});

describe('RBAC', () => {
  type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
  /** What each ServiceAccount may do: role kind/name → rules. The table in docs/install.md. */
  const rulesOf = (sa: string): Record<string, Rule[]> => {
    const out: Record<string, Rule[]> = {};
    for (const binding of base.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') as Any[]) {
      if (!binding.subjects.some((s: Any) => s.kind === 'ServiceAccount' && s.name === sa && s.namespace === NS)) continue;
      const role = find(binding.roleRef.kind, binding.roleRef.name);
      out[`${role.kind}/${role.metadata.name}`] = role.rules;
    }
    return out;
  };

  it('has no wildcard and no aggregation anywhere', () => {
    for (const role of base.filter((o) => o.kind.endsWith('Role')) as Any[]) {
      expect(role.aggregationRule).toBeUndefined();
      for (const rule of role.rules) for (const value of [...rule.apiGroups, ...rule.resources, ...rule.verbs]) expect(value).not.toContain('*');
    }
  });

  it('webhook: the informers, the fallback reads, its certificate Secret and its own two configurations', () => {
    const secret = flag(webhook, 'cert-secret')!.split('/');
    expect(secret[0]).toBe(NS);
    expect(rulesOf('cilium-migration-guard-webhook')).toEqual({
      'ClusterRole/cilium-migration-guard-webhook': [
        { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['cilium.io'], resources: ['ciliumnodes'], verbs: ['list', 'watch'] },
        { apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] },
      ],
      'ClusterRole/cilium-migration-guard-webhook-cabundle': [
        {
          apiGroups: ['admissionregistration.k8s.io'],
          resources: ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'],
          resourceNames: [CONFIGURATION_NAME],
          verbs: ['get', 'patch'],
        },
      ],
      'Role/cilium-migration-guard-webhook-certs': [
        { apiGroups: [''], resources: ['secrets'], resourceNames: [secret[1]], verbs: ['get', 'update'] },
        { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
      ],
    });
    expect(find('Role', 'cilium-migration-guard-webhook-certs').metadata.namespace).toBe(NS);
  });

  it('reaper: its view, eviction, Events, and its Lease in its own namespace (delete only through its component)', () => {
    expect(rulesOf('cilium-migration-guard-reaper')).toEqual({
      'ClusterRole/cilium-migration-guard-reaper': [
        { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['pods/eviction'], verbs: ['create'] },
        { apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch'] },
        { apiGroups: ['cilium.io'], resources: ['ciliumnodes'], verbs: ['list', 'watch'] },
        { apiGroups: ['cilium.io'], resources: ['ciliumendpoints'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
      ],
      'Role/cilium-migration-guard-reaper-leader-election': [
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['cilium-migration-guard-reaper'], verbs: ['get', 'update'] },
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      ],
      'Role/cilium-migration-guard-reaper-cilium-config': [
        { apiGroups: [''], resources: ['configmaps'], resourceNames: ['cilium-config'], verbs: ['get', 'list', 'watch'] },
      ],
    });
    expect(find('Role', 'cilium-migration-guard-reaper-leader-election').metadata.namespace).toBe(NS);
    // Cilium's ConfigMap lives in Cilium's namespace: the one the shipped config names.
    const ciliumNs = parseConfig(parse(readFileSync(join(root, 'manifests/base/config.yaml'), 'utf8'))).cilium.namespace;
    expect(find('Role', 'cilium-migration-guard-reaper-cilium-config').metadata.namespace).toBe(ciliumNs);
    expect(find('RoleBinding', 'cilium-migration-guard-reaper-cilium-config').metadata.namespace).toBe(ciliumNs);
  });
});

describe('kustomizations', () => {
  it('every config file (base and overlays) is valid for src/config.ts', () => {
    const files = ['manifests/base/config.yaml', ...readdirSync(join(root, 'manifests/overlays')).map((o) => `manifests/overlays/${o}/config.yaml`)];
    let checked = 0;
    for (const file of files) {
      let text: string;
      try {
        text = readFileSync(join(root, file), 'utf8');
      } catch {
        continue; // overlays that keep the base config
      }
      expect(() => parseConfig(parse(text), file)).not.toThrow();
      checked++;
    }
    expect(checked).toBe(5);
  });

  it('the image tag is the package version', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    expect(baseKustomization.images).toEqual([{ name: 'ghcr.io/cilium-migration-guard/cilium-migration-guard', newTag: pkg.version }]);
    expect(webhook.spec.template.spec.containers[0].image).toBe(baseKustomization.images[0].name);
    expect(reaper.spec.template.spec.containers[0].image).toBe(baseKustomization.images[0].name);
  });

  it('every namespaced object is in the project namespace', () => {
    for (const o of base) {
      if (['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'].includes(o.kind)) continue;
      // The reaper's read of Cilium's own ConfigMap is granted where that ConfigMap is (checked above).
      if (o.metadata.name === 'cilium-migration-guard-reaper-cilium-config') continue;
      expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(NS);
    }
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const lines = text.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  const stages: string[][] = [];
  for (const line of lines) {
    if (/^FROM\s/i.test(line)) stages.push([]);
    stages.at(-1)?.push(line);
  }
  const runtime = stages.at(-1)!;
  const stageNamed = (name: string) => stages.find((s) => new RegExp(`\\sAS\\s+${name}$`, 'i').test(s[0]!));

  it('is multi-stage on Node 26, with a shell-less runtime', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage[0]).toMatch(/node(js)?:?26|nodejs26/);
    expect(runtime[0]).toMatch(/^FROM gcr\.io\/distroless\/nodejs26-debian1[23]:nonroot$/);
    expect(runtime.some((l) => /^RUN\s/i.test(l))).toBe(false); // no shell to run anything
  });

  it('runs as a numeric non-root user with node dist/cli.js as entrypoint', () => {
    expect(runtime.find((l) => /^USER\s/i.test(l))).toMatch(/^USER 65532(:65532)?$/);
    expect(runtime.find((l) => /^ENTRYPOINT\s/i.test(l))).toBe('ENTRYPOINT ["/nodejs/bin/node", "dist/cli.js"]');
  });

  it('ships production dependencies only: node_modules from a stage that installed with --omit=dev', () => {
    const copies = runtime.filter((l) => /^COPY\s/i.test(l));
    const modules = copies.find((l) => l.includes('node_modules'));
    const from = /--from=(\S+)/.exec(modules ?? '')?.[1];
    expect(from).toBeDefined();
    const deps = stageNamed(from!)!;
    expect(deps.some((l) => /npm ci\b.*--omit=dev/.test(l))).toBe(true);
    expect(deps.some((l) => /^COPY\s+(\.|src)\s/.test(l))).toBe(false); // only the manifests
    // Nothing else brings a node_modules or the whole context in.
    expect(copies.filter((l) => l.includes('node_modules'))).toHaveLength(1);
    expect(copies.some((l) => /^COPY\s+\.\s/.test(l))).toBe(false);
    expect(copies.map((l) => l.split(/\s+/).at(-1))).toEqual(expect.arrayContaining(['./dist', './examples']));
  });

  it('.dockerignore keeps the build context to what the Dockerfile copies', () => {
    const ignore = readFileSync(join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    expect(ignore).not.toContain('!node_modules/');
  });
});

describe('the Deployments run commands the CLI accepts', () => {
  // Kubernetes expands $(VAR) from the container env; any value parses the same way.
  const expand = (args: string[]) => args.map((a) => a.replace(/\$\((\w+)\)/g, 'x-$1'));
  it.each([
    ['webhook', 'serve', webhook, parseServeFlags],
    ['reaper', 'reaper', reaper, parseReaperFlags],
  ] as const)('%s: its args parse with the `%s` flag parser', (_name, command, deployment, parse) => {
    const [first, ...rest] = expand(deployment.spec.template.spec.containers[0].args as string[]);
    expect(first).toBe(command);
    expect(() => parse(rest)).not.toThrow();
  });
});

describe('components/reaper-delete', () => {
  it('grants the reaper `delete pods` and nothing else', () => {
    const objects = readYaml('manifests/components/reaper-delete/rbac.yaml') as Any[];
    const role = objects.find((o) => o.kind === 'ClusterRole');
    const binding = objects.find((o) => o.kind === 'ClusterRoleBinding');
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['delete'] }]);
    expect(binding.roleRef.name).toBe(role.metadata.name);
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'cilium-migration-guard-reaper', namespace: NS }]);
  });
});

describe('the node webhook entry', () => {
  it('sends only nodes with the label every shipped config.yaml uses (the matchCondition names it; the handler checks it again)', () => {
    const entry = (find('MutatingWebhookConfiguration', CONFIGURATION_NAME).webhooks as Any[]).find((w) => w.name === MUTATING_NODES_NAME);
    const files = ['manifests/base/config.yaml', ...readdirSync(join(root, 'manifests/overlays')).map((o) => `manifests/overlays/${o}/config.yaml`)];
    for (const file of files) {
      let text: string;
      try {
        text = readFileSync(join(root, file), 'utf8');
      } catch {
        continue;
      }
      expect(entry.matchConditions, file).toEqual([{ name: 'has-migration-label', expression: nodeLabelCondition(parseConfig(parse(text)).nodeLabel) }]);
    }
    expect(entry).toMatchObject({ failurePolicy: 'Ignore', rules: [{ resources: ['nodes'], operations: ['CREATE'] }] });
  });
});
