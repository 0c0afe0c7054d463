// Part 2, "through the real API server": the local control plane (test/harness), N pod creations
// with spec.nodeName and N bindings (POST pods/NAME/binding, as the scheduler does), first with no
// webhook registered, then with this webhook registered (the built CLI `serve --kubeconfig`).
// The added latency per request comes from the API server's own histogram
// (apiserver_admission_webhook_admission_duration_seconds, GET /metrics with the admin token),
// from the client (the difference between the two phases) and from the webhook's decision log.
// Requests are sequential: this measures latency, not throughput. Everything stops at the end.

import { performance } from 'node:perf_hooks';
import { startControlPlane, type ControlPlane } from '../test/harness/controlplane.js';
import { VALIDATING_NAME } from '../src/registration.js';
import { installCiliumCrds, startGuard, type Guard } from '../test/harness/guard.js';
import { fmt, percentile, table } from './stats.js';

const NAMESPACE = 'bench';
const NODE = 'bench-node-legacy';

export interface Histogram {
  buckets: Map<number, number>; // le → cumulative count
  sum: number;
  count: number;
}

/** The API server's webhook admission histogram for one webhook and operation, summed over `rejected`. */
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

function podManifest(name: string, nodeName?: string) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NAMESPACE, labels: { app: 'bench' } },
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

interface Phase {
  create: number[];
  bind: number[];
}

/** N creations with spec.nodeName, then N pods left unscheduled and bound, one request at a time. */
async function phase(cp: ControlPlane, tag: string, n: number): Promise<Phase> {
  const create: number[] = [];
  const bind: number[] = [];
  for (let i = 0; i < n; i++) {
    create.push(await timed(() => cp.api('POST', `/api/v1/namespaces/${NAMESPACE}/pods`, podManifest(`${tag}-placed-${i}`, NODE)), 201));
  }
  for (let i = 0; i < n; i++) {
    const r = await cp.api('POST', `/api/v1/namespaces/${NAMESPACE}/pods`, podManifest(`${tag}-bound-${i}`));
    if (r.status !== 201) throw new Error(`create ${tag}-bound-${i}: ${r.status} ${r.body.slice(0, 300)}`);
  }
  for (let i = 0; i < n; i++) {
    const name = `${tag}-bound-${i}`;
    const binding = { apiVersion: 'v1', kind: 'Binding', metadata: { name, namespace: NAMESPACE }, target: { apiVersion: 'v1', kind: 'Node', name: NODE } };
    bind.push(await timed(() => cp.api('POST', `/api/v1/namespaces/${NAMESPACE}/pods/${name}/binding`, binding), 201));
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
  return out.sort((a, b) => a - b);
}

export async function runApiServer(n: number): Promise<void> {
  const started = performance.now();
  const cp = await startControlPlane({ nodes: [{ name: NODE }] });
  let guard: Guard | undefined;
  try {
    await installCiliumCrds(cp);
    await cp.kubectl(['create', 'namespace', NAMESPACE]);
    // Warm the API server's paths (and the client's connection) before measuring anything.
    await phase(cp, 'warm', Math.min(20, n));
    const without = await phase(cp, 'plain', n);

    guard = await startGuard(cp);
    await guard.register();
    await phase(cp, 'warm2', Math.min(20, n));
    const before = webhookHistogram(await apiMetrics(cp), VALIDATING_NAME);
    const decisionsBefore = decisionLatencies(guard, 'Pod').length + decisionLatencies(guard, 'Binding').length;
    const withWebhook = await phase(cp, 'guarded', n);
    const h = minus(webhookHistogram(await apiMetrics(cp), VALIDATING_NAME), before);
    const own = { Pod: decisionLatencies(guard, 'Pod'), Binding: decisionLatencies(guard, 'Binding') };
    const called = own.Pod.length + own.Binding.length - decisionsBefore;

    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    const row = (label: string, a: number[], b: number[]) => {
      const [x, y] = [sorted(a), sorted(b)];
      return [
        label,
        `${fmt(percentile(x, 50), 2)} / ${fmt(percentile(y, 50), 2)}`,
        fmt(percentile(y, 50) - percentile(x, 50), 2),
        `${fmt(percentile(x, 99), 2)} / ${fmt(percentile(y, 99), 2)}`,
        fmt(percentile(y, 99) - percentile(x, 99), 2),
      ];
    };
    console.log(
      table(
        ['request (client side, ms)', 'p50 no webhook / webhook', 'added p50', 'p99 no webhook / webhook', 'added p99'],
        [row(`pod CREATE with nodeName ×${n}`, without.create, withWebhook.create), row(`pods/binding ×${n}`, without.bind, withWebhook.bind)],
      ),
    );
    console.log(
      `  API server's apiserver_admission_webhook_admission_duration_seconds (${VALIDATING_NAME}, CREATE, pods and bindings of the measured phase): ` +
        `${h.count} calls, mean ${fmt((h.sum / h.count) * 1000, 2)} ms, p50 ${bucketBound(h, 50)}, p99 ${bucketBound(h, 99)} (its buckets: 5, 25, 100 ms, …)`,
    );
    const p = (xs: number[], q: number) => fmt(percentile(xs, q), 3);
    console.log(
      `  the webhook's own time (decision log latencyMs, all calls): Pod p50 ${p(own.Pod, 50)} / p99 ${p(own.Pod, 99)} ms, ` +
        `Binding p50 ${p(own.Binding, 50)} / p99 ${p(own.Binding, 99)} ms; ${called} decisions logged in the measured phase (${2 * n} requests sent)`,
    );
    console.log(`  (part 2 took ${fmt((performance.now() - started) / 1000, 0)} s)`);
  } finally {
    await guard?.stop();
    await cp.stop();
  }
}
