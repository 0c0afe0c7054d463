// Helpers of the fault tests (test/e2e/faults-*.e2e.test.ts): a second kube-apiserver on the same
// etcd (another member of an HA control plane), raw HTTPS calls to any API server or webhook,
// process signals, and reading a process's RSS from its /metrics.

import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePorts, httpGet, startChild, stopChild, waitFor, type Child, type ControlPlane } from './controlplane.js';

export interface HttpsAnswer {
  status: number;
  body: string;
}

/** One HTTPS request; body JSON-encoded when given. Rejects on a network error or the timeout. */
export function https(url: string, opts: { ca: string; method?: string; token?: string; body?: unknown; timeoutMs?: number }): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = httpsRequest(
      url,
      {
        method: opts.method ?? (payload === undefined ? 'GET' : 'POST'),
        ca: opts.ca,
        timeout: opts.timeoutMs ?? 10_000,
        headers: {
          accept: 'application/json',
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        let body = '';
        res
          .setEncoding('utf8')
          .on('data', (d: string) => (body += d))
          .on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

/** A value of a Prometheus text exposition (first sample whose line starts with `sample `). */
export function metricValue(text: string, sample: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

/** RSS in MiB from a /metrics page with prom-client's process metrics. */
export function rssMiB(metricsText: string): number {
  // This project's registries prefix prom-client's process metrics with cmg_.
  const bytes = metricValue(metricsText, 'cmg_process_resident_memory_bytes') ?? metricValue(metricsText, 'process_resident_memory_bytes');
  if (bytes === undefined) throw new Error('no process_resident_memory_bytes in /metrics');
  return Math.round(bytes / 2 ** 20);
}

export async function reaperMetrics(url: string): Promise<string> {
  return (await httpGet(`${url}/metrics`)).body;
}

/** Kills a child and waits for it to exit (bounded). */
export async function kill(child: Child, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== undefined) return;
  child.proc.kill(signal);
  await Promise.race([child.exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (child.exitCode === undefined) throw new Error(`${child.name} did not exit after ${signal}`);
}

export interface PeerApiServer {
  server: string;
  kubeconfigPath: string;
  child: Child;
  stop(): Promise<void>;
}

/**
 * Another kube-apiserver on the same etcd, with the same flags, certificates and tokens, on
 * another port and with its own audit log: what the rest of an HA control plane is while one of
 * its API servers is down. The processes under test do not talk to it.
 */
export async function startPeerApiServer(cp: ControlPlane): Promise<PeerApiServer> {
  const primary = cp.process('kube-apiserver');
  if (!primary) throw new Error('no kube-apiserver in this control plane');
  const [port] = (await freePorts(1)) as [number];
  const args = primary.start.args.map((a) =>
    a.startsWith('--secure-port=') ? `--secure-port=${port}` : a.startsWith('--audit-log-path=') ? `--audit-log-path=${join(cp.dir, 'audit-peer.log')}` : a,
  );
  const child = startChild('kube-apiserver-peer', primary.start.bin, args, primary.start.dir, primary.start.env);
  const server = `https://127.0.0.1:${port}`;
  const ca = readFileSync(cp.caFile, 'utf8');
  await waitFor(
    'the peer kube-apiserver /readyz',
    async () => ((await https(`${server}/readyz`, { ca, token: cp.token, timeoutMs: 3_000 })).status === 200 ? true : undefined),
    {
      timeoutMs: 90_000,
      intervalMs: 300,
      children: [child],
    },
  );
  const kubeconfigPath = join(cp.dir, 'kubeconfig-peer');
  await writeFile(
    kubeconfigPath,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'peer', cluster: { server, 'certificate-authority': cp.caFile } }],
      users: [{ name: 'admin', user: { token: cp.token } }],
      contexts: [{ name: 'peer', context: { cluster: 'peer', user: 'admin', namespace: 'default' } }],
      'current-context': 'peer',
    }),
    { mode: 0o600 },
  );
  return { server, kubeconfigPath, child, stop: () => stopChild(child) };
}

/** An AdmissionReview of a Pod CREATE with spec.nodeName, as the API server sends it to /validate/pods. */
export function podCreateReview(uid: string, name: string, node: string): unknown {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', labels: { app: 'web' } },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
  };
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      operation: 'CREATE',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'default',
      name,
      userInfo: { username: 'e2e' },
      object: pod,
    },
  };
}

export interface RoundRobinProxy {
  port: number;
  /** Connections handed to each backend port, and connections refused by a dead backend. */
  stats: { perBackend: Record<number, number>; refused: number };
  close(): Promise<void>;
}

/**
 * A Service with several endpoints, as kube-proxy makes one on loopback: each new TCP connection
 * goes to the next backend (kube-proxy: random in iptables mode, round robin in IPVS mode), bytes
 * pass through untouched (TLS ends at the webhook), an established connection stays on its
 * backend, and a backend whose process is gone while its endpoint is still listed refuses the
 * connection, which the client sees as a reset. Endpoints are never removed here: the worst case,
 * as if the EndpointSlice never caught up.
 */
export async function startRoundRobinProxy(backends: number[]): Promise<RoundRobinProxy> {
  const { createServer, connect } = await import('node:net');
  const stats = { perBackend: Object.fromEntries(backends.map((b) => [b, 0])) as Record<number, number>, refused: 0 };
  const sockets = new Set<import('node:net').Socket>();
  let next = 0;
  const server = createServer((client) => {
    const port = backends[next++ % backends.length]!;
    stats.perBackend[port] = (stats.perBackend[port] ?? 0) + 1;
    client.pause();
    const upstream = connect({ host: '127.0.0.1', port });
    sockets.add(client);
    sockets.add(upstream);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    const end = (err?: Error) => {
      if (!connected && err) stats.refused++;
      // A reset on one side is a reset on the other, as a NAT'd connection would see it.
      if (err) {
        if (!client.destroyed) client.resetAndDestroy();
        if (!upstream.destroyed) upstream.resetAndDestroy();
      } else {
        client.end();
        upstream.end();
      }
    };
    upstream.on('error', end);
    client.on('error', end);
    upstream.on('close', () => {
      sockets.delete(upstream);
      if (!client.destroyed) client.destroy();
    });
    client.on('close', () => {
      sockets.delete(client);
      if (!upstream.destroyed) upstream.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
