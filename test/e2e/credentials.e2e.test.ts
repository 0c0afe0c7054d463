// Credentials as src/cluster/kube-config.ts reads them, against a real kube-apiserver: who the API
// server says we are (a SelfSubjectReview, which every authenticated user may create) for
// - in-cluster credentials: KUBERNETES_SERVICE_HOST/PORT and a service-account directory with
//   ca.crt and a bound token (`kubectl create token`, what the kubelet projects into a pod),
//   rotated in place: re-read once a minute (less client-go's 10 s leeway) on an injected clock,
//   and at once after the API server answers 401 to a token that no longer works;
// - a $KUBECONFIG list: the first file's entries win, relative certificate-authority and
//   tokenFile paths resolve against that file's directory.

import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inClusterAccess, loadKubeAccess, TOKEN_FILE_LEEWAY_MS, TOKEN_FILE_PERIOD_MS, type KubeAccess } from '../../src/cluster/kube-config.js';
import { request } from '../../src/cluster/raw-api.js';
import { sharedControlPlane } from '../harness/shared.js';
import type { ControlPlane } from '../harness/controlplane.js';

const NS = 'cmg-credentials';

describe('credentials against kube-apiserver', () => {
  let cp: ControlPlane | undefined;
  let work = '';

  const plane = (): ControlPlane => {
    if (!cp) throw new Error('control plane not started');
    return cp;
  };
  const token = async (sa: string) => (await plane().kubectl(['create', 'token', sa, '-n', NS, '--duration=10m'])).stdout.trim();
  /** The user the API server authenticates these credentials as. */
  const whoami = async (kc: KubeAccess): Promise<string> => {
    const review = await request<{ status?: { userInfo?: { username?: string } } }>(kc, {
      method: 'POST',
      path: '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      timeoutMs: 10_000,
    });
    return review?.status?.userInfo?.username ?? '';
  };

  beforeAll(async () => {
    cp = await sharedControlPlane({ log: (l) => process.stderr.write(`[controlplane] ${l}\n`) });
    work = await mkdtemp(join(tmpdir(), 'cmg-credentials-'));
    await plane().createNamespace(NS);
    for (const sa of ['first', 'second']) await plane().kubectl(['create', 'serviceaccount', sa, '-n', NS]);
  }, 40 * 60_000);

  afterAll(async () => {
    await plane().kubectl(['delete', 'namespace', NS, '--wait=false'], { allowFail: true });
    await cp?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('in-cluster: the service account’s CA and token; a rotated token is used from the next re-read, and at once after a 401', async () => {
    const dir = join(work, 'serviceaccount');
    await mkdir(dir, { recursive: true });
    await copyFile(plane().caFile, join(dir, 'ca.crt'));
    await writeFile(join(dir, 'token'), await token('first'));
    const server = new URL(plane().server);
    let now = 1_000_000;
    const kc = inClusterAccess({
      env: { KUBERNETES_SERVICE_HOST: server.hostname, KUBERNETES_SERVICE_PORT: server.port },
      serviceAccountDir: dir,
      now: () => now,
    });
    expect(kc.server).toBe(plane().server);
    expect(await whoami(kc)).toBe(`system:serviceaccount:${NS}:first`);

    // The kubelet rewrites the file (here with another account's token, so the change shows).
    await writeFile(join(dir, 'token'), await token('second'));
    now += TOKEN_FILE_PERIOD_MS - TOKEN_FILE_LEEWAY_MS - 1;
    expect(await whoami(kc)).toBe(`system:serviceaccount:${NS}:first`); // not due: the cached token
    now += 1;
    expect(await whoami(kc)).toBe(`system:serviceaccount:${NS}:second`);

    // A token the API server refuses (401). As client-go's ResetTokenOlderThan: a token read for
    // the refused request itself is kept (another request is needed to reset it); a token read
    // before the refused request is dropped, and the next request reads the file at once,
    // without waiting for the minute.
    await writeFile(join(dir, 'token'), 'not-a-valid-token');
    now += TOKEN_FILE_PERIOD_MS;
    await expect(whoami(kc)).rejects.toMatchObject({ statusCode: 401 }); // read for this request: kept
    await writeFile(join(dir, 'token'), await token('first'));
    now += 1_000;
    await expect(whoami(kc)).rejects.toMatchObject({ statusCode: 401 }); // the cached one, read before: dropped
    expect(await whoami(kc)).toBe(`system:serviceaccount:${NS}:first`); // not due for 49 s, read at once
  });

  it('$KUBECONFIG: the first file’s entries win; its relative certificate-authority and tokenFile resolve against its directory', async () => {
    const dir = join(work, 'kube');
    await mkdir(join(dir, 'pki'), { recursive: true });
    await copyFile(plane().caFile, join(dir, 'pki', 'ca.crt'));
    await writeFile(join(dir, 'pki', 'token'), await token('second'));
    const first = join(dir, 'config');
    await writeFile(
      first,
      JSON.stringify({
        clusters: [{ name: 'cmg', cluster: { server: plane().server, 'certificate-authority': 'pki/ca.crt' } }],
        users: [{ name: 'sa', user: { tokenFile: 'pki/token' } }],
        contexts: [{ name: 'cmg', context: { cluster: 'cmg', user: 'sa' } }],
        'current-context': 'cmg',
      }),
    );
    // A later file naming the same cluster and user (with an admin token), and another context: ignored.
    const second = join(work, 'other-config');
    await writeFile(
      second,
      JSON.stringify({
        clusters: [{ name: 'cmg', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'sa', user: { token: plane().token } }],
        contexts: [{ name: 'admin', context: { cluster: 'cmg', user: 'sa' } }],
        'current-context': 'admin',
      }),
    );
    const kc = loadKubeAccess({}, { env: { KUBECONFIG: [first, second].join(delimiter) } });
    expect(kc?.server).toBe(plane().server);
    expect(await whoami(kc!)).toBe(`system:serviceaccount:${NS}:second`);
  });
});
