// A KubeAccess for a test's stand-in API server: one cluster, one user, one context, built by the
// same loader as a kubeconfig file (src/cluster/kube-config.ts).

import { accessFromDocument, type KubeAccess } from '../../src/cluster/kube-config.js';

export function testAccess(server: string, options: { token?: string; caPem?: string; insecure?: boolean } = {}): KubeAccess {
  return accessFromDocument({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'test',
        cluster: {
          server,
          ...(options.caPem ? { 'certificate-authority-data': Buffer.from(options.caPem).toString('base64') } : {}),
          ...(options.insecure ? { 'insecure-skip-tls-verify': true } : {}),
        },
      },
    ],
    users: [{ name: 'test', user: options.token ? { token: options.token } : {} }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'test' } }],
    'current-context': 'test',
  });
}
