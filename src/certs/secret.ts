// The certificate Secret, the one copy every replica shares. Writes are race-free without a leader:
// - create: whoever creates first wins; a 409 AlreadyExists means another replica did, so read theirs.
// - update: carries the resourceVersion that was read; a 409 Conflict means another replica wrote
//   first, so read theirs and plan again. Exactly one writer per change.

import type { V1Secret } from '@kubernetes/client-node';
import { httpStatus } from '../cluster/kube-client.js';
import type { KubeAccess } from '../cluster/kube-config.js';
import { request, seg } from '../cluster/raw-api.js';
import type { CertMaterial } from './plan.js';

export interface SecretRef {
  namespace: string;
  name: string;
}

export interface StoredMaterial {
  material: CertMaterial;
  resourceVersion: string;
}

/** The outcome of a write: ours, or the one that won the race. */
export type WriteResult = { won: true; stored: StoredMaterial } | { won: false; stored: StoredMaterial | undefined };

const KEYS = { caBundle: 'ca.crt', caKey: 'ca.key', cert: 'tls.crt', key: 'tls.key' } as const;
const CALL_TIMEOUT_MS = 10_000;

export function parseSecretRef(text: string): SecretRef {
  const [namespace, name, ...rest] = text.split('/');
  if (!namespace || !name || rest.length > 0) throw new Error(`expected NAMESPACE/NAME, got ${JSON.stringify(text)}`);
  return { namespace, name };
}

function decode(secret: V1Secret): StoredMaterial {
  const data = secret.data ?? {};
  const read = (key: string) => Buffer.from(data[key] ?? '', 'base64').toString('utf8');
  const material: CertMaterial = { caBundle: read(KEYS.caBundle), caKey: read(KEYS.caKey), cert: read(KEYS.cert), key: read(KEYS.key) };
  // An empty value is "unusable", which the planner turns into a replacement.
  return { material, resourceVersion: secret.metadata?.resourceVersion ?? '' };
}

function encode(material: CertMaterial): Record<string, string> {
  return Object.fromEntries(Object.entries(KEYS).map(([field, key]) => [key, Buffer.from(material[field as keyof CertMaterial]).toString('base64')]));
}

export class SecretStore {
  constructor(
    private readonly kc: KubeAccess,
    readonly ref: SecretRef,
  ) {}

  private get collection(): string {
    return `/api/v1/namespaces/${seg(this.ref.namespace)}/secrets`;
  }

  /** Undefined when the Secret does not exist. */
  async read(): Promise<StoredMaterial | undefined> {
    try {
      return decode(await request<V1Secret>(this.kc, { path: `${this.collection}/${seg(this.ref.name)}`, timeoutMs: CALL_TIMEOUT_MS }));
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw err;
    }
  }

  async create(material: CertMaterial): Promise<WriteResult> {
    try {
      const created = await request<V1Secret>(this.kc, { method: 'POST', path: this.collection, body: this.body(material), timeoutMs: CALL_TIMEOUT_MS });
      return { won: true, stored: decode(created) };
    } catch (err) {
      if (httpStatus(err) === 409) return { won: false, stored: await this.read() };
      throw err;
    }
  }

  /** Replaces the Secret if it is still at `resourceVersion` (the API server checks it: 409 if not). */
  async update(material: CertMaterial, resourceVersion: string): Promise<WriteResult> {
    try {
      const body = this.body(material, resourceVersion);
      const replaced = await request<V1Secret>(this.kc, { method: 'PUT', path: `${this.collection}/${seg(this.ref.name)}`, body, timeoutMs: CALL_TIMEOUT_MS });
      return { won: true, stored: decode(replaced) };
    } catch (err) {
      if (httpStatus(err) === 409) return { won: false, stored: await this.read() };
      throw err;
    }
  }

  // The whole object: we own this Secret, and update (PUT) is the verb RBAC grants, not patch.
  private body(material: CertMaterial, resourceVersion?: string): V1Secret {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: {
        name: this.ref.name,
        namespace: this.ref.namespace,
        labels: { 'app.kubernetes.io/name': 'cilium-migration-guard', 'app.kubernetes.io/component': 'webhook-certificate' },
        ...(resourceVersion ? { resourceVersion } : {}),
      },
      data: encode(material),
    };
  }
}
