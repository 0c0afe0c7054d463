// Configuration: parsed and validated once at start into a frozen, typed object.
// A bad file fails start-up with a message that names the field; it never half-applies.

import { CHECK_IDS } from './lint/checks.js';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { deepFreeze } from './objects.js';
import { PRESET_NAMES, type PresetName } from './presets.js';

/** Project-wide keys. Documented in the README; changing them is a breaking change. */
export const PROJECT_DOMAIN = 'cilium-migration-guard.io';
export const SKIP_AFFINITY_ANNOTATION = `${PROJECT_DOMAIN}/skip-affinity`;
export const DEFAULT_EXEMPT_LABEL = `${PROJECT_DOMAIN}/exempt`;

/**
 * Cilium's pods that must run before Cilium is ready on a node, by the labels its chart sets
 * (install/kubernetes/cilium/templates): agent k8s-app=cilium, envoy k8s-app=cilium-envoy,
 * node-init app=cilium-node-init, operator io.cilium/app=operator and name=cilium-operator.
 */
export const DEFAULT_CILIUM_OWN_POD_LABELS: readonly Readonly<Record<string, string>>[] = [
  { 'k8s-app': 'cilium' },
  { 'k8s-app': 'cilium-envoy' },
  { app: 'cilium-node-init' },
  { 'io.cilium/app': 'operator' },
  { name: 'cilium-operator' },
];

const labelKey = z.string().regex(/^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, 'not a valid label key');
const labelValue = z.string().regex(/^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/, 'not a valid label value');
const labels = z.record(labelKey, labelValue);
// A selector with no labels would select every pod: never what a setting of this kind means.
const selector = labels.refine((value) => Object.keys(value).length > 0, { message: 'needs at least one label' });

const nodeLabel = z.string().transform((text, ctx) => {
  const at = text.indexOf('=');
  const key = at < 0 ? '' : text.slice(0, at);
  const value = at < 0 ? '' : text.slice(at + 1);
  const ok = labelKey.safeParse(key).success && value.length > 0 && labelValue.safeParse(value).success;
  if (!ok) {
    ctx.addIssue({ code: 'custom', message: `expected "key=value" with a valid label key and a non-empty value, got "${text}"` });
    return z.NEVER;
  }
  return { key, value };
});

const match = z
  .object({
    namespace: z.string().min(1).optional(),
    names: z.array(z.string().min(1)).min(1).optional(),
    labels: labels.optional(),
  })
  .strict()
  .refine((m) => m.names !== undefined || m.labels !== undefined, {
    message: 'a rule must match on names or labels (a namespace alone would catch every DaemonSet in it)',
  });

const rule = z
  .object({
    name: z.string().min(1),
    role: z.enum(['cilium', 'legacy']),
    match,
    note: z.string().optional(),
  })
  .strict();

const reaperSchema = z
  .object({
    /** evict honours PodDisruptionBudgets (a blocked eviction is retried later); delete does not. */
    action: z.enum(['evict', 'delete']).default('evict'),
    /** duplicate-ip: only unmanaged pods whose IP another pod also holds; any-unmanaged: every unmanaged early pod. */
    target: z.enum(['duplicate-ip', 'any-unmanaged']).default('duplicate-ip'),
    /** A pod must be this old, and Cilium Ready on its node this long, before the pod can be a victim. */
    gracePeriodSeconds: z.number().int().min(0).default(60),
    /** Pods without a controller owner are only reported, since nothing would recreate them, unless this is true. */
    removeUnowned: z.boolean().default(false),
    /** Observe only: log, count and emit Events, change nothing. The --dry-run flag turns it on too. */
    dryRun: z.boolean().default(false),
    rateLimit: z
      .object({
        /** Removals per minute across the cluster (also the burst size). */
        perMinute: z.number().int().min(1).default(10),
        /** Removals per minute on any one node (also the burst size). */
        perNodePerMinute: z.number().int().min(1).default(2),
      })
      .strict()
      .prefault({}),
    /** Full re-evaluation period, on top of the event-driven one. */
    resyncSeconds: z.number().int().min(5).default(300),
    /** Quiet time after a cluster change before re-evaluating (changes arrive in bursts). */
    debounceMs: z.number().int().min(0).max(60_000).default(500),
  })
  .strict();

const nodeTaintSchema = z
  .object({
    /** Add the taint to nodes registering with the migration label. false: the webhook admits every node unchanged. */
    enabled: z.boolean().default(true),
    /**
     * NoExecute (Cilium's recommendation): nothing runs on the node before the taint is gone, also
     * pods already bound to it. NoSchedule: only keeps the scheduler away.
     */
    effect: z.enum(['NoExecute', 'NoSchedule']).default('NoExecute'),
    /** The taint counts as stuck once it has outlived a Ready Cilium agent pod on its node by this long. */
    stuckAfterSeconds: z.number().int().min(1).default(600),
    /** How often `serve` looks for stuck taints (warning log; the gauges are computed at every scrape). */
    checkIntervalSeconds: z.number().int().min(1).max(3600).default(60),
  })
  .strict();

/** enforce: deny and patch (the default); warn: admit, say what would happen; audit: admit silently, only log, count and annotate. */
const mode = z.enum(['enforce', 'warn', 'audit']);

const modesSchema = z
  .object({
    /** The pod placement webhook (/validate/pods). */
    pods: mode.default('enforce'),
    /** The DaemonSet affinity webhook (/mutate/daemonsets). */
    daemonsets: mode.default('enforce'),
  })
  .strict();

const reconcilerSchema = z
  .object({
    /** Bring existing DaemonSets in line from the reaper's leader-elected process. Off by default. */
    enabled: z.boolean().default(false),
    /** Report and emit Events only; patch nothing. */
    dryRun: z.boolean().default(false),
    /** Patches per minute across the cluster (also the burst size). */
    perMinute: z.number().int().min(1).max(600).default(10),
    /** Seconds between passes (a pass also runs once the caches have synced). */
    intervalSeconds: z.number().int().min(5).max(3600).default(60),
  })
  .strict();

const schema = z
  .object({
    /** The node label that marks a migrated node, as key=value. Cilium's guide uses io.cilium.migration/cilium-default=true. */
    nodeLabel: nodeLabel.prefault('cni=cilium'),
    /** Which built-in sets of old-CNI agents to keep off migrated nodes. */
    presets: z.array(z.enum(PRESET_NAMES as unknown as [PresetName, ...PresetName[]])).default([...PRESET_NAMES]),
    /**
     * Confine Cilium's own DaemonSets to migrated nodes (cni In [cilium]). Turn off when Cilium's
     * agent must run on every node, as in Cilium's own migration guide (dual overlay).
     */
    confineCilium: z.boolean().default(true),
    /** When Cilium replaces kube-proxy, kube-proxy is kept off migrated nodes too. */
    kubeProxyReplacement: z.boolean().default(false),
    /** Extra rules, tried before the presets; the first matching rule decides a DaemonSet's role. */
    rules: z.array(rule).default([]),
    /** What to do when a DaemonSet's own affinity contradicts its role (see README). */
    onConflict: z.enum(['warn', 'deny']).default('warn'),
    cilium: z
      .object({
        namespace: z.string().min(1).default('kube-system'),
        /** Labels of the Cilium agent pods (cilium-operator's own readiness test uses k8s-app=cilium). */
        agentLabels: selector.default({ 'k8s-app': 'cilium' }),
        /**
         * The taint cilium-operator removes once the agent on a node is Ready (Helm
         * agentNotReadyTaintKey; operator flag --agent-not-ready-taint-key). While a node carries it,
         * Cilium is not ready there.
         */
        agentNotReadyTaintKey: labelKey.default('node.cilium.io/agent-not-ready'),
        /**
         * Any of these label sets, in Cilium's namespace, marks a pod as Cilium's own: never blocked.
         * Only what must run before Cilium is ready on a node (labels from Cilium's chart): the
         * agent, envoy, node-init and the operator. hubble-relay, hubble-ui, clustermesh-apiserver
         * and other app.kubernetes.io/part-of=cilium pods use the pod network like any pod and are
         * gated like any pod.
         */
        ownPodLabels: z.array(selector).default(DEFAULT_CILIUM_OWN_POD_LABELS.map((labels) => ({ ...labels }))),
      })
      .strict()
      .default({
        namespace: 'kube-system',
        agentLabels: { 'k8s-app': 'cilium' },
        agentNotReadyTaintKey: 'node.cilium.io/agent-not-ready',
        ownPodLabels: DEFAULT_CILIUM_OWN_POD_LABELS.map((labels) => ({ ...labels })),
      }),
    exemptions: z
      .object({
        /** A pod labelled "<label>=true" is never blocked. */
        label: labelKey.default(DEFAULT_EXEMPT_LABEL),
        /** Pods in these namespaces are never blocked (namespace labels are matched by the webhook registration). */
        namespaces: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .default({ label: DEFAULT_EXEMPT_LABEL, namespaces: [] }),
    /** This project's own pods: never blocked, so the webhook cannot lock itself out. */
    self: z
      .object({
        namespace: z.string().min(1).default('cilium-migration-guard'),
        labels: selector.default({ 'app.kubernetes.io/name': 'cilium-migration-guard' }),
      })
      .strict()
      .default({ namespace: 'cilium-migration-guard', labels: { 'app.kubernetes.io/name': 'cilium-migration-guard' } }),
    /**
     * Born tainted (README "New migrated nodes join tainted"): the mutating webhook adds Cilium's
     * startup taint (key cilium.agentNotReadyTaintKey) to nodes that register with the migration
     * label, and `serve` warns when such a taint outlives a Ready agent pod (cilium-operator is not
     * removing it). This project never removes the taint itself.
     */
    nodeTaint: nodeTaintSchema.prefault({}),
    /** The reaper (docs/reaper.md): which early, unmanaged pods it removes, how, and how fast. */
    reaper: reaperSchema.prefault({}),
    /**
     * `lint` at apply time (docs/lint.md): writes of cilium-config and CiliumNodeConfigs get kubectl
     * warnings. A check listed here also refuses the write when it finds an error. Default: none.
     */
    lint: z
      .object({ denyChecks: z.array(z.enum(CHECK_IDS as unknown as [string, ...string[]])).default([]) })
      .strict()
      .prefault({}),
    /**
     * Enforcement mode per webhook (README "Enforcement modes"); a namespace labelled
     * cilium-migration-guard.io/mode=enforce|warn|audit overrides it for requests in that namespace.
     */
    modes: modesSchema.prefault({}),
    /** Brings DaemonSets written before the webhook (or while it was down) in line (docs/reconciler.md). */
    reconciler: reconcilerSchema.prefault({}),
  })
  .strict();

export type Config = Readonly<z.output<typeof schema>>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function parseConfig(input: unknown, source = 'config'): Config {
  const result = schema.safeParse(input ?? {});
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new ConfigError(`invalid ${source}:\n${lines.join('\n')}`);
  }
  return deepFreeze(result.data);
}

export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid YAML: ${(err as Error).message}`);
  }
  return parseConfig(data, `config file ${path}`);
}

export const defaultConfig: Config = parseConfig({});

/** Does a node with these labels carry the migration label (nodeLabel)? The one test for "migrated". */
export function isMigratedNode(labels: Record<string, string> | undefined, config: Pick<Config, 'nodeLabel'>): boolean {
  return labels?.[config.nodeLabel.key] === config.nodeLabel.value;
}

/** The migration label as people write it: "key=value". */
export function nodeLabelText(config: Pick<Config, 'nodeLabel'>): string {
  return `${config.nodeLabel.key}=${config.nodeLabel.value}`;
}
