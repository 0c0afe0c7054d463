// caBundle injection into our own Mutating- and ValidatingWebhookConfiguration (both share one
// name). RBAC grants get and patch on that name only, hence GET by name, never list.
//
// The patch is a JSON patch whose first op tests metadata.resourceVersion: it applies only to the
// configuration as it was read. Reading the configuration before the Secret, and patching under
// that test, means a replica holding an older bundle can never overwrite a newer one.

import type { V1MutatingWebhookConfiguration, V1ValidatingWebhookConfiguration } from '@kubernetes/client-node';
import { httpStatus } from '../cluster/kube-client.js';
import type { KubeAccess } from '../cluster/kube-config.js';
import { request, seg } from '../cluster/raw-api.js';
import { splitPem } from './plan.js';

export type ConfigKind = 'MutatingWebhookConfiguration' | 'ValidatingWebhookConfiguration';

export interface ConfigSnapshot {
  kind: ConfigKind;
  resourceVersion: string;
  /** caBundle of each webhook, base64 as stored ('' when unset). */
  caBundles: string[];
}

const CALL_TIMEOUT_MS = 10_000;

const toBase64 = (pem: string) => Buffer.from(pem).toString('base64');

/**
 * Whether every webhook of every configuration trusts `caPem`, one certificate as splitPem() gives
 * it (vacuously true when no configuration exists: then the API server calls nobody).
 */
export function allTrust(snapshots: ConfigSnapshot[], caPem: string): boolean {
  return snapshots.every((config) => config.caBundles.every((b64) => splitPem(Buffer.from(b64, 'base64').toString('utf8')).includes(caPem)));
}

const PATHS: Record<ConfigKind, string> = {
  MutatingWebhookConfiguration: '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
  ValidatingWebhookConfiguration: '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations',
};

export class CaBundleInjector {
  constructor(
    private readonly kc: KubeAccess,
    readonly name: string,
  ) {}

  private path(kind: ConfigKind): string {
    return `${PATHS[kind]}/${seg(this.name)}`;
  }

  /** The configurations that exist (none yet is normal: kubectl applies them after the Deployment). */
  async read(): Promise<ConfigSnapshot[]> {
    const read = (kind: ConfigKind) =>
      request<V1MutatingWebhookConfiguration | V1ValidatingWebhookConfiguration>(this.kc, { path: this.path(kind), timeoutMs: CALL_TIMEOUT_MS }).then((c) => ({
        kind,
        c,
      }));
    const reads = [read('MutatingWebhookConfiguration'), read('ValidatingWebhookConfiguration')].map((read) =>
      read.catch((err: unknown) => {
        if (httpStatus(err) === 404) return undefined;
        throw err;
      }),
    );
    const found = await Promise.all(reads);
    return found.flatMap((entry) =>
      entry
        ? [{ kind: entry.kind, resourceVersion: entry.c.metadata?.resourceVersion ?? '', caBundles: (entry.c.webhooks ?? []).map((w) => w.clientConfig.caBundle ?? '') }]
        : [],
    );
  }

  /**
   * Sets every webhook's caBundle to `bundlePem` where it differs. Returns the kinds patched; a
   * configuration changed since `snapshots` was read is skipped (the next pass retries).
   */
  async inject(snapshots: ConfigSnapshot[], bundlePem: string): Promise<{ patched: ConfigKind[]; conflicts: ConfigKind[] }> {
    const wanted = toBase64(bundlePem);
    const patched: ConfigKind[] = [];
    const conflicts: ConfigKind[] = [];
    for (const config of snapshots) {
      if (config.caBundles.every((b64) => b64 === wanted)) continue;
      const body = [
        { op: 'test', path: '/metadata/resourceVersion', value: config.resourceVersion },
        ...config.caBundles.map((_, i) => ({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: wanted })),
      ];
      try {
        await request(this.kc, { method: 'PATCH', path: this.path(config.kind), body, contentType: 'application/json-patch+json', timeoutMs: CALL_TIMEOUT_MS });
        patched.push(config.kind);
      } catch (err) {
        // A failed test op is 422 (Invalid) or 409; a configuration deleted meanwhile is 404.
        const code = httpStatus(err);
        if (code === 409 || code === 422 || code === 404) conflicts.push(config.kind);
        else throw err;
      }
    }
    return { patched, conflicts };
  }
}
