// Adversarial but valid DaemonSets: what anyone allowed to create a DaemonSet (even with
// --dry-run=server) can send. Each shape passes the API server's validation (In/NotIn have at
// least one value, Exists/DoesNotExist none, label values are valid: kubernetes
// pkg/apis/core/validation/validation.go ValidateNodeSelectorRequirement / ValidateNodeSelectorTerm),
// which bounds neither how many terms a node affinity holds nor how many expressions a term holds:
// only the object's size (the API server's 3 MiB request limit) does.

export const SHAPES = [
  /** aws-node (legacy role) with `count` NotIn expressions on the node label's key. */
  'notin-one-key',
  /** aws-node with `count` In expressions on the node label's key, each listing cilium and one other value: a conflict. */
  'in-one-key',
  /** aws-node with `count` expressions over `count` distinct other keys. */
  'many-keys',
  /**
   * aws-node with `count` NotIn expressions on another key and, last, In on the first value: no
   * node matches, found only after every candidate value was tried.
   */
  'unsatisfiable',
  /** aws-node with `count` terms of one expression each, every one needing the patch. */
  'many-terms',
  /** aws-node with `count` terms, each pinned to the migrated nodes (In [cilium]): `count` conflicting terms. */
  'many-conflicts',
  /**
   * A DaemonSet of no role (GKE's netd, which only a registration from before the lint check
   * gke-netd-source-valid-mark still sends) with `count` NotIn expressions and `count` args.
   */
  'no-role',
] as const;
export type Shape = (typeof SHAPES)[number];

function expression(shape: Shape, i: number, count: number, labelKey: string): Record<string, unknown> {
  switch (shape) {
    case 'in-one-key':
      return { key: labelKey, operator: 'In', values: ['cilium', `v${i}`] };
    case 'many-keys':
      return { key: `k${i}.example.com/zone`, operator: 'NotIn', values: [`v${i}`] };
    case 'unsatisfiable':
      return i === count - 1
        ? { key: 'zone.example.com/x', operator: 'In', values: ['v0'] }
        : { key: 'zone.example.com/x', operator: 'NotIn', values: [`v${i}`] };
    default:
      return { key: labelKey, operator: 'NotIn', values: [`v${i}`] };
  }
}

function terms(shape: Shape, count: number, labelKey: string): unknown[] {
  if (shape === 'many-terms') {
    return Array.from({ length: count }, (_, i) => ({ matchExpressions: [{ key: 'zone.example.com/x', operator: 'In', values: [`z${i}`] }] }));
  }
  if (shape === 'many-conflicts') {
    return Array.from({ length: count }, () => ({ matchExpressions: [{ key: labelKey, operator: 'In', values: ['cilium'] }] }));
  }
  return [{ matchExpressions: Array.from({ length: count }, (_, i) => expression(shape, i, count, labelKey)) }];
}

function args(shape: Shape, count: number): string[] {
  if (shape === 'no-role') return Array.from({ length: count }, (_, i) => `--flag-${i}=x`);
  return [];
}

export function adversarialDaemonSet(shape: Shape, count: number, labelKey = 'cni'): Record<string, unknown> {
  const name = shape === 'no-role' ? 'netd' : 'aws-node';
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace: 'kube-system', labels: { 'k8s-app': name } },
    spec: {
      selector: { matchLabels: { 'k8s-app': name } },
      template: {
        metadata: { labels: { 'k8s-app': name } },
        spec: {
          affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms(shape, count, labelKey) } } },
          containers: [{ name: 'c', image: 'registry.example/c:1', args: args(shape, count) }],
        },
      },
    },
  };
}

/** How many expressions (or terms, or argument lines) of `shape` make an object of about `bytes`. */
export function countFor(shape: Shape, bytes: number): number {
  const probe = 1000;
  const perItem = (JSON.stringify(adversarialDaemonSet(shape, probe)).length - JSON.stringify(adversarialDaemonSet(shape, 0)).length) / probe;
  return Math.floor(bytes / perItem);
}
