// Part 2, "through the real API server": the local control plane (test/harness), pod creations
// with spec.nodeName and bindings (POST pods/NAME/binding, as the scheduler does) in three
// namespaces at once, round-robin, one request at a time:
//   - `bench-none`: exempt (the registration's namespaceSelector skips it): no webhook is called;
//   - `bench-floor`: exempt from this webhook, and matched by a second registration with the same
//     rules, matchConditions, timeout and failure policy that calls the floor server
//     (bench/floor-server.mjs: parse the review, answer allowed): what any webhook costs;
//   - `bench-guard`: this webhook (the built CLI `serve --kubeconfig`, registered as `registration`
//     generates it).
// Interleaving puts the three at the same moments of a shared, noisy machine; the added latency
// is each request's time minus the "none" request made just before or after it, and the API
// server's own histogram (apiserver_admission_webhook_admission_duration_seconds, GET /metrics
// with the admin token) gives its time per call for the floor and for this webhook. Warm-up
// rounds first (the webhook's caches are synced before it reports ready; the warm-up is for the
// JIT, the API server's webhook clients and their connections). Everything stops at the end.

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startControlPlane, type ControlPlane } from '../test/harness/controlplane.js';
import { stopChild } from '../test/harness/controlplane.js';
import { OWN_NAMESPACE, installCiliumCrds, startGuard, type Guard } from '../test/harness/guard.js';
import { NAMESPACE_EXEMPT_LABEL, validatingWebhookConfiguration } from '../src/registration.js';
import { CERT_FILE, KEY_FILE } from '../src/certs/local.js';
import { startFloor } from './floor.js';
import { fmt, percentile, table } from './stats.js';

const NODE = 'bench-node-legacy';
const VARIANTS = ['none', 'floor', 'guard'] as const;
type Variant = (typeof VARIANTS)[number];
const NS: Record<Variant, string> = { none: 'bench-none', floor: 'bench-floor', guard: 'bench-guard' };
const FLOOR_REGISTRATION = 'bench-floor';
const POD_WEBHOOK = 'pods.cilium-migration-guard.io';
const FLOOR_WEBHOOK = 'pods.bench-floor.io';

export interface Histogram {
  buckets: Map<number, number>; // le → cumulative count
  sum: number;
  count: number;
}

/** The API server's webhook admission histogram for one webhook (by its name) and CREATE, summed over `rejected`. */
export function webhookHistogram(metrics: string, webhook: string): Histogram {
  const h: Histogram = { buckets: new Map(), sum: 0, count: 0 };
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('apiserver_admission_webhook_admission_duration_seconds') || !line.includes(`name="${webhook}"`)) continue;
    if (!line.includes('operation="CREATE"')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (line.startsWith('apiserver_admission_webhook_admission_duration_seconds_bucket') && le) {
      const bound = le === '+Inf' ? Infinity : Number(le);
      h.buckets.set(bound, (h.buckets.get(bound) ?? 0) + value);
    } else if (line.startsWith('apiserver_admission_webhook_admission_duration_seconds_sum')) h.sum += value;
    else if (line.startsWith('apiserver_admission_webhook_admission_duration_seconds_count')) h.count += value;
  }
  return h;
}

export function minus(a: Histogram, b: Histogram): Histogram {
  return { buckets: new Map([...a.buckets].map(([le, n]) => [le, n - (b.buckets.get(le) ?? 0)])), sum: a.sum - b.sum, count: a.count - b.count };
}

/** The upper bound of the bucket holding the p-th percentile ("≤ 5 ms"): the API server's buckets are coarse. */
export function bucketBound(h: Histogram, p: number): string {
  const target = (p / 100) * h.count;
  for (const [le, n] of [...h.buckets].sort((x, y) => x[0] - y[0])) if (n >= target) return le === Infinity ? '> last bucket' : `≤ ${le * 1000} ms`;
  return '–';
}

export async function apiMetrics(cp: ControlPlane): Promise<string> {
  const r = await cp.api('GET', '/metrics');
  if (r.status !== 200) throw new Error(`GET /metrics: ${r.status}`);
  return r.body;
}

function podManifest(namespace: string, name: string, nodeName?: string) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: 'bench' } },
    spec: {
      ...(nodeName ? { nodeName } : { schedulerName: 'bench-no-scheduler' }), // nobody else binds these
      containers: [{ name: 'app', image: 'registry.k8s.io/pause:3.10' }],
      tolerations: [{ operator: 'Exists' }],
    },
  };
}

async function timed(fn: () => Promise<{ status: number; body: string }>, ok: number): Promise<number> {
  const t0 = performance.now();
  const r = await fn();
  const ms = performance.now() - t0;
  if (r.status !== ok) throw new Error(`expected ${ok}, got ${r.status}: ${r.body.slice(0, 300)}`);
  return ms;
}

type Samples = Record<Variant, number[]>;
const samples = (): Samples => ({ none: [], floor: [], guard: [] });

/** Round i's order of the three namespaces: rotated, so none goes first, second and third equally often. */
function order(i: number): Variant[] {
  return [0, 1, 2].map((k) => VARIANTS[(i + k) % 3]!);
}

/** n rounds: in each, a pod with spec.nodeName created in each namespace; then n rounds of bindings of pods left unscheduled. */
async function rounds(cp: ControlPlane, tag: string, n: number): Promise<{ create: Samples; bind: Samples }> {
  const create = samples();
  const bind = samples();
  for (let i = 0; i < n; i++) {
    for (const v of order(i)) {
      create[v].push(await timed(() => cp.api('POST', `/api/v1/namespaces/${NS[v]}/pods`, podManifest(NS[v], `${tag}-placed-${i}`, NODE)), 201));
    }
  }
  for (let i = 0; i < n; i++) {
    for (const v of VARIANTS) {
      const r = await cp.api('POST', `/api/v1/namespaces/${NS[v]}/pods`, podManifest(NS[v], `${tag}-bound-${i}`));
      if (r.status !== 201) throw new Error(`create ${NS[v]}/${tag}-bound-${i}: ${r.status} ${r.body.slice(0, 300)}`);
    }
  }
  for (let i = 0; i < n; i++) {
    for (const v of order(i)) {
      const name = `${tag}-bound-${i}`;
      const binding = { apiVersion: 'v1', kind: 'Binding', metadata: { name, namespace: NS[v] }, target: { apiVersion: 'v1', kind: 'Node', name: NODE } };
      bind[v].push(await timed(() => cp.api('POST', `/api/v1/namespaces/${NS[v]}/pods/${name}/binding`, binding), 201));
    }
  }
  return { create, bind };
}

/** The webhook's own time per decision (its decision log's latencyMs), for one kind of request. */
function decisionLatencies(guard: Guard, kind: string): number[] {
  const out: number[] = [];
  for (const line of guard.logs().split('\n')) {
    if (!line.includes('"admission decision"')) continue;
    try {
      const entry = JSON.parse(line) as { kind?: string; latencyMs?: number };
      if (entry.kind === kind && typeof entry.latencyMs === 'number') out.push(entry.latencyMs);
    } catch {
      /* not a JSON line */
    }
  }
  return out;
}

/** The floor's registration: this webhook's pod entry, pointed at the floor and matching only bench-floor. */
function floorRegistration(floorUrl: string, caPem: string) {
  const own = validatingWebhookConfiguration({ endpoint: { url: floorUrl }, caPem, ownNamespace: OWN_NAMESPACE });
  const pods = own.webhooks.find((w) => w.name === POD_WEBHOOK);
  if (!pods) throw new Error(`no ${POD_WEBHOOK} entry in the generated registration`);
  return {
    ...own,
    metadata: { name: FLOOR_REGISTRATION },
    webhooks: [
      {
        ...pods,
        name: FLOOR_WEBHOOK,
        clientConfig: { ...pods.clientConfig, url: `${floorUrl}/validate/pods` },
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS.floor } },
      },
    ],
  };
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

/** Per-round differences to the "none" request of the same round. */
function paired(xs: number[], none: number[]): number[] {
  return sorted(xs.map((x, i) => x - (none[i] ?? NaN)).filter((d) => !Number.isNaN(d)));
}

function rows(label: string, s: Samples): string[][] {
  const none = sorted(s.none);
  return (['floor', 'guard'] as const).map((v) => {
    const x = sorted(s[v]);
    const d = paired(s[v], s.none);
    return [
      `${label}, ${v === 'floor' ? 'minimal webhook' : 'this webhook'}`,
      `${fmt(percentile(none, 50), 2)} / ${fmt(percentile(x, 50), 2)}`,
      `${fmt(percentile(none, 99), 2)} / ${fmt(percentile(x, 99), 2)}`,
      fmt(percentile(x, 50) - percentile(none, 50), 2),
      fmt(percentile(x, 99) - percentile(none, 99), 2),
      `${fmt(percentile(d, 50), 2)} / ${fmt(percentile(d, 99), 2)}`,
    ];
  });
}

export async function runApiServer(n: number, warmup = Math.max(20, Math.min(200, n))): Promise<void> {
  const started = performance.now();
  const cp = await startControlPlane({ nodes: [{ name: NODE }] });
  let guard: Guard | undefined;
  let floor: Awaited<ReturnType<typeof startFloor>> | undefined;
  try {
    await installCiliumCrds(cp);
    await cp.createNamespace(NS.none, { [NAMESPACE_EXEMPT_LABEL]: 'true' });
    await cp.createNamespace(NS.floor, { [NAMESPACE_EXEMPT_LABEL]: 'true' });
    await cp.createNamespace(NS.guard);

    guard = await startGuard(cp);
    await guard.register();
    floor = await startFloor(cp.dir, join(guard.certDir, CERT_FILE), join(guard.certDir, KEY_FILE));
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(floorRegistration(floor.url, guard.caPem)) });
    // Both registrations are live once a pod create in each namespace shows up in the API server's
    // histogram for that webhook (the API server picks registrations up through its informer).
    for (const [v, webhook] of [
      ['floor', FLOOR_WEBHOOK],
      ['guard', POD_WEBHOOK],
    ] as const) {
      const deadline = Date.now() + 30_000;
      for (let i = 0; ; i++) {
        const before = webhookHistogram(await apiMetrics(cp), webhook).count;
        await timed(() => cp.api('POST', `/api/v1/namespaces/${NS[v]}/pods`, podManifest(NS[v], `probe-${i}`, NODE)), 201);
        if (webhookHistogram(await apiMetrics(cp), webhook).count > before) break;
        if (Date.now() > deadline) throw new Error(`the API server did not call ${webhook} within 30 s`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }

    await rounds(cp, 'warm', warmup);
    const metricsBefore = await apiMetrics(cp);
    const decisionsBefore = { Pod: decisionLatencies(guard, 'Pod').length, Binding: decisionLatencies(guard, 'Binding').length };
    const measured = await rounds(cp, 'm', n);
    const metricsAfter = await apiMetrics(cp);
    const api = {
      floor: minus(webhookHistogram(metricsAfter, FLOOR_WEBHOOK), webhookHistogram(metricsBefore, FLOOR_WEBHOOK)),
      guard: minus(webhookHistogram(metricsAfter, POD_WEBHOOK), webhookHistogram(metricsBefore, POD_WEBHOOK)),
    };
    const own = {
      Pod: sorted(decisionLatencies(guard, 'Pod').slice(decisionsBefore.Pod)),
      Binding: sorted(decisionLatencies(guard, 'Binding').slice(decisionsBefore.Binding)),
    };

    console.log(
      `  ${n} rounds (after ${warmup} warm-up rounds), each a request in ${NS.none} (no webhook), ${NS.floor} (the minimal webhook) and ${NS.guard} (this webhook), interleaved`,
    );
    console.log(
      table(
        ['request (client side, ms)', 'p50 none / with', 'p99 none / with', 'added p50', 'added p99', 'paired difference p50 / p99'],
        [...rows('pod CREATE with nodeName', measured.create), ...rows('pods/binding', measured.bind)],
      ),
    );
    const apiLine = (label: string, h: Histogram) =>
      `${label} ${h.count} calls, mean ${fmt((h.sum / h.count) * 1000, 2)} ms, p50 ${bucketBound(h, 50)}, p99 ${bucketBound(h, 99)}`;
    console.log(
      `  API server's apiserver_admission_webhook_admission_duration_seconds (CREATE, pods and bindings of the measured rounds; buckets 5, 25, 100 ms, …): ` +
        `${apiLine('minimal webhook', api.floor)}; ${apiLine('this webhook', api.guard)}`,
    );
    const p = (xs: number[], q: number) => fmt(percentile(xs, q), 3);
    console.log(
      `  the webhook's own time (decision log latencyMs, measured rounds): Pod p50 ${p(own.Pod, 50)} / p99 ${p(own.Pod, 99)} / max ${p(own.Pod, 100)} ms, ` +
        `Binding p50 ${p(own.Binding, 50)} / p99 ${p(own.Binding, 99)} / max ${p(own.Binding, 100)} ms; ${own.Pod.length + own.Binding.length} decisions logged (${2 * n} requests sent to it)`,
    );
    console.log(`  (part 2 took ${fmt((performance.now() - started) / 1000, 0)} s)`);
  } finally {
    if (floor) await stopChild(floor.child);
    await guard?.stop();
    await cp.stop();
  }
}
