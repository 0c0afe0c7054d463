// The certificate controller (src/certs/cert-controller.ts) and the caBundle injector
// (src/certs/ca-bundle.ts) against an in-memory stand-in for the API server: a Secret and the two
// webhook configurations with resourceVersions, optimistic concurrency as kube-apiserver does it
// (replace with a stale resourceVersion: 409; a JSON patch whose `test` op fails: 409/422), and a
// fake clock, served over HTTP on 127.0.0.1 so the real request code runs. No cluster, no timers.

import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { V1Secret } from '@kubernetes/client-node';
import type { KubeAccess } from '../../src/cluster/kube-config.js';
import { testAccess } from '../support/kube-access.js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CaBundleInjector, type ConfigKind } from '../../src/certs/ca-bundle.js';
import { CertController } from '../../src/certs/cert-controller.js';
import { DEFAULT_POLICY, splitPem } from '../../src/certs/plan.js';
import type { Logger } from '../../src/logger.js';
import { listenOnLoopback, closeNow } from '../support/loopback.js';

const NS = 'cilium-migration-guard';
const NAME = 'cilium-migration-guard';
const SECRET = { namespace: NS, name: 'cilium-migration-guard-tls' };
const SANS = ['localhost', '127.0.0.1'];
const T0 = new Date('2030-01-01T00:00:00Z');
const GAUGE = 'cmg_ca_certificate_expiry_timestamp_seconds';

interface StoredConfig {
  resourceVersion: string;
  caBundles: string[];
}

/** An error answer of the stand-in: its HTTP status. */
class ApiException extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

interface JsonPatchOp {
  op: string;
  path: string;
  value: string;
}

/** The API server, as far as the certificate controller talks to it. */
class FakeApiServer {
  private rv = 100;
  secret: V1Secret | undefined;
  readonly configs = new Map<ConfigKind, StoredConfig>();
  readonly configReads: Record<ConfigKind, number> = { MutatingWebhookConfiguration: 0, ValidatingWebhookConfiguration: 0 };
  /** Every patch attempt: the resourceVersion its test op carried, and the answer. */
  readonly patches: Array<{ kind: ConfigKind; testedRv: string; status: number }> = [];
  /** Runs before a patch is applied: another writer can change the configuration here. */
  beforePatch: ((kind: ConfigKind) => void) | undefined;
  /** The status a failed `test` op answers with (kube-apiserver: 409 or 422 depending on the path). */
  testFailureStatus = 422;

  nextRv(): string {
    return String(++this.rv);
  }

  addConfig(kind: ConfigKind, webhooks = 2): void {
    this.configs.set(kind, { resourceVersion: this.nextRv(), caBundles: Array.from({ length: webhooks }, () => '') });
  }

  /** Another writer (kubectl apply, another replica) replaces the configuration's caBundles. */
  overwrite(kind: ConfigKind, bundleB64: string): void {
    const config = this.configs.get(kind)!;
    this.configs.set(kind, { resourceVersion: this.nextRv(), caBundles: config.caBundles.map(() => bundleB64) });
  }

  private readConfig(kind: ConfigKind) {
    this.configReads[kind]++;
    return this.object(kind);
  }

  private object(kind: ConfigKind) {
    const config = this.configs.get(kind);
    if (!config) throw new ApiException(404, 'NotFound');
    return {
      metadata: { name: NAME, resourceVersion: config.resourceVersion },
      webhooks: config.caBundles.map((caBundle) => ({ clientConfig: { caBundle } })),
    };
  }

  private patchConfig(kind: ConfigKind, body: JsonPatchOp[]) {
    this.beforePatch?.(kind);
    const config = this.configs.get(kind);
    if (!config) throw new ApiException(404, 'NotFound');
    const [test, ...ops] = body;
    expect(test).toMatchObject({ op: 'test', path: '/metadata/resourceVersion' });
    if (test!.value !== config.resourceVersion) {
      this.patches.push({ kind, testedRv: test!.value, status: this.testFailureStatus });
      throw new ApiException(this.testFailureStatus, 'the test operation failed');
    }
    const caBundles = [...config.caBundles];
    for (const op of ops) {
      const index = Number(/^\/webhooks\/(\d+)\/clientConfig\/caBundle$/.exec(op.path)?.[1]);
      caBundles[index] = op.value;
    }
    this.configs.set(kind, { resourceVersion: this.nextRv(), caBundles });
    this.patches.push({ kind, testedRv: test!.value, status: 200 });
    return this.object(kind);
  }

  readonly core = {
    readNamespacedSecret: async () => {
      if (!this.secret) throw new ApiException(404, 'NotFound');
      return structuredClone(this.secret);
    },
    createNamespacedSecret: async ({ body }: { body: V1Secret }) => {
      if (this.secret) throw new ApiException(409, 'AlreadyExists');
      this.secret = { ...body, metadata: { ...body.metadata, resourceVersion: this.nextRv() } };
      return structuredClone(this.secret);
    },
    replaceNamespacedSecret: async ({ body }: { body: V1Secret }) => {
      if (!this.secret) throw new ApiException(404, 'NotFound');
      if (body.metadata?.resourceVersion !== this.secret.metadata?.resourceVersion) throw new ApiException(409, 'Conflict');
      this.secret = { ...body, metadata: { ...body.metadata, resourceVersion: this.nextRv() } };
      return structuredClone(this.secret);
    },
  };

  private server: Server | undefined;
  /** The stand-in's address, once listen() has run. */
  kc!: KubeAccess;

  /** Serves the calls above over HTTP, as kube-apiserver's paths name them. */
  async listen(): Promise<void> {
    const secretPath = `/api/v1/namespaces/${SECRET.namespace}/secrets`;
    const configPath = (kind: ConfigKind) => `/apis/admissionregistration.k8s.io/v1/${kind.toLowerCase()}s/${NAME}`;
    const route = async (req: IncomingMessage, body: unknown): Promise<unknown> => {
      const key = `${req.method} ${req.url}`;
      if (key === `GET ${secretPath}/${SECRET.name}`) return this.core.readNamespacedSecret();
      if (key === `POST ${secretPath}`) return this.core.createNamespacedSecret({ body: body as V1Secret });
      if (key === `PUT ${secretPath}/${SECRET.name}`) return this.core.replaceNamespacedSecret({ body: body as V1Secret });
      for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'] as const) {
        if (key === `GET ${configPath(kind)}`) return this.readConfig(kind);
        if (key === `PATCH ${configPath(kind)}`) {
          expect(req.headers['content-type']).toBe('application/json-patch+json');
          return this.patchConfig(kind, body as JsonPatchOp[]);
        }
      }
      throw new Error(`unexpected call ${key}`);
    };
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        route(req, text ? JSON.parse(text) : undefined).then(
          (answer) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer)),
          (err: unknown) => {
            const code = err instanceof ApiException ? err.code : 500;
            res
              .writeHead(code, { 'content-type': 'application/json' })
              .end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, message: (err as Error).message }));
          },
        );
      });
    });
    this.kc = testAccess(await listenOnLoopback(this.server), { token: 't' });
  }

  async close(): Promise<void> {
    if (this.server) await closeNow(this.server);
  }

  secretCaBundle(): string {
    return Buffer.from(this.secret?.data?.['ca.crt'] ?? '', 'base64').toString('utf8');
  }

  caBundlesOf(kind: ConfigKind): string[] {
    return this.configs.get(kind)!.caBundles.map((b64) => Buffer.from(b64, 'base64').toString('utf8'));
  }
}

const silent = pino({ level: 'silent' }) as unknown as Logger;
const b64 = (text: string) => Buffer.from(text).toString('base64');

describe('CertController', () => {
  let dir = '';
  let api: FakeApiServer;
  let now: Date;
  let registry: Registry;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cmg-certs-'));
    api = new FakeApiServer();
    await api.listen();
    now = T0;
    registry = new Registry();
  });
  afterEach(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  const controller = (options: { webhookConfig?: string } = {}) =>
    new CertController({ kc: api.kc, secret: SECRET, certDir: join(dir, 'certs'), sans: SANS, logger: silent, now: () => now, registry, ...options });

  async function caExpirySeries(): Promise<Array<{ fingerprint: string; signing: string; value: number }>> {
    const metric = registry.getSingleMetric(GAUGE);
    if (!metric) throw new Error(`${GAUGE} is not registered`);
    const { values } = await metric.get();
    return values
      .map((v) => ({ fingerprint: String(v.labels.fingerprint), signing: String(v.labels.signing), value: v.value }))
      .sort((a, b) => a.value - b.value);
  }

  const cas = () => splitPem(api.secretCaBundle()).map((pem) => new X509Certificate(pem));
  const expiry = (ca: X509Certificate) => new Date(ca.validTo).getTime() / 1000;

  describe(`${GAUGE}`, () => {
    it('is one series per CA of the bundle, the signing CA marked, and follows add-ca and prune', async () => {
      const certs = controller();
      expect(await caExpirySeries()).toEqual([]); // registered, nothing known before the first pass

      expect((await certs.bootstrap(1)).steps).toEqual(['issue']);
      const [first] = cas() as [X509Certificate];
      expect(await caExpirySeries()).toEqual([{ fingerprint: first.fingerprint256, signing: 'true', value: expiry(first) }]);
      expect(expiry(first)).toBe((T0.getTime() + DEFAULT_POLICY.caValidityMs) / 1000);

      // 90 days before the CA's end: a second CA joins the bundle and becomes the signer.
      now = new Date(T0.getTime() + DEFAULT_POLICY.caValidityMs - DEFAULT_POLICY.caRenewBeforeMs + 1_000);
      expect((await certs.reconcile()).steps).toContain('add-ca');
      const [, second] = cas() as [X509Certificate, X509Certificate];
      expect(await caExpirySeries()).toEqual([
        { fingerprint: first.fingerprint256, signing: 'false', value: expiry(first) },
        { fingerprint: second.fingerprint256, signing: 'true', value: expiry(second) },
      ]);

      // Past the old CA's end: it leaves the bundle, and its series with it.
      now = new Date(T0.getTime() + DEFAULT_POLICY.caValidityMs + 1_000);
      expect((await certs.reconcile()).steps).toContain('prune');
      expect(cas().map((ca) => ca.fingerprint256)).toEqual([second.fingerprint256]);
      expect(await caExpirySeries()).toEqual([{ fingerprint: second.fingerprint256, signing: 'true', value: expiry(second) }]);
      expect(await registry.metrics()).toMatch(new RegExp(`^${GAUGE}\\{fingerprint="${second.fingerprint256}",signing="true"\\} ${expiry(second)}$`, 'm'));
    });

    it('reports the bundle another replica wrote (adopted, not written by this one)', async () => {
      await controller().bootstrap(1); // "replica A", its own registry
      registry = new Registry();
      const b = controller();
      expect((await b.reconcile()).steps).toEqual([]);
      const [ca] = cas() as [X509Certificate];
      expect(await caExpirySeries()).toEqual([{ fingerprint: ca.fingerprint256, signing: 'true', value: expiry(ca) }]);
    });
  });

  describe('caBundle injection when the configuration changes under it (409/422 on the test op)', () => {
    for (const status of [409, 422]) {
      it(`HTTP ${status}: the pass skips that configuration, asks for a prompt retry, and the next pass re-reads and patches`, async () => {
        api.testFailureStatus = status;
        api.addConfig('MutatingWebhookConfiguration');
        api.addConfig('ValidatingWebhookConfiguration');
        // Between this pass's read and its patch, someone re-applies the mutating configuration
        // (caBundle back to empty): the patch, tested against the old resourceVersion, must fail.
        let raced = '';
        api.beforePatch = (kind) => {
          if (kind !== 'MutatingWebhookConfiguration' || raced) return;
          api.overwrite(kind, '');
          raced = api.configs.get(kind)!.resourceVersion;
        };
        const certs = controller({ webhookConfig: NAME });
        const first = await certs.bootstrap(1);
        expect(first.patched).toEqual(['ValidatingWebhookConfiguration']);
        expect(first.nextAt).toEqual(now); // a conflict is retried at once (the scheduler's floor is 1 s), not after the interval
        expect(api.patches.map((p) => [p.kind, p.status])).toEqual([
          ['MutatingWebhookConfiguration', status],
          ['ValidatingWebhookConfiguration', 200],
        ]);
        expect(api.caBundlesOf('MutatingWebhookConfiguration')).toEqual(['', '']); // the other writer's version stands

        const readsBefore = api.configReads.MutatingWebhookConfiguration;
        const second = await certs.reconcile();
        expect(api.configReads.MutatingWebhookConfiguration).toBe(readsBefore + 1);
        expect(second.patched).toEqual(['MutatingWebhookConfiguration']);
        expect(api.patches.at(-1)).toEqual({ kind: 'MutatingWebhookConfiguration', testedRv: raced, status: 200 }); // tested against the re-read version
        expect(api.caBundlesOf('MutatingWebhookConfiguration')).toEqual([api.secretCaBundle(), api.secretCaBundle()]);
        expect(api.caBundlesOf('ValidatingWebhookConfiguration')).toEqual([api.secretCaBundle(), api.secretCaBundle()]);
        expect(second.nextAt.getTime()).toBeGreaterThan(now.getTime()); // settled: back to the plan's schedule
      });
    }

    it('a replica holding an older bundle never overwrites a newer one (no lost update)', async () => {
      api.addConfig('MutatingWebhookConfiguration', 1);
      const injector = new CaBundleInjector(api.kc, NAME);
      const stale = await injector.read(); // replica B reads ...
      api.overwrite('MutatingWebhookConfiguration', b64('NEWER')); // ... replica A injects a newer bundle ...
      const result = await injector.inject(stale, 'OLDER'); // ... B patches with what it read before
      expect(result).toEqual({ patched: [], conflicts: ['MutatingWebhookConfiguration'] });
      expect(api.caBundlesOf('MutatingWebhookConfiguration')).toEqual(['NEWER']);

      // Re-read: the snapshot now shows the newer bundle; patching it is a deliberate change.
      const fresh = await injector.read();
      expect(fresh[0]?.caBundles).toEqual([b64('NEWER')]);
      expect(await injector.inject(fresh, 'NEWER')).toEqual({ patched: [], conflicts: [] }); // equal: no write at all
      expect(api.patches).toHaveLength(1);
    });

    it('a configuration deleted meanwhile (404) is a conflict too, other errors fail the pass', async () => {
      api.addConfig('ValidatingWebhookConfiguration', 1);
      const injector = new CaBundleInjector(api.kc, NAME);
      const snapshot = await injector.read();
      api.configs.delete('ValidatingWebhookConfiguration');
      expect(await injector.inject(snapshot, 'X')).toEqual({ patched: [], conflicts: ['ValidatingWebhookConfiguration'] });
      api.addConfig('ValidatingWebhookConfiguration', 1);
      api.beforePatch = () => {
        throw new ApiException(403, 'Forbidden');
      };
      await expect(injector.inject(await injector.read(), 'X')).rejects.toMatchObject({ code: 403 });
    });
  });
});
