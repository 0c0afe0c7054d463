import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { ApiException, type CoreV1Event } from '@kubernetes/client-node';
import type { MemoryClusterView } from '../../src/cluster/memory.js';
import type { CiliumEndpointInfo, PodInfo } from '../../src/cluster/view.js';
import { defaultConfig, type Config } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { Actuator } from '../../src/reaper/actuator.js';
import type { Preconditions, ReaperApi, RemovalAction, RemovalOutcome } from '../../src/reaper/api.js';
import { Reaper } from '../../src/reaper/controller.js';
import { detect, type Assessment } from '../../src/reaper/detect.js';
import { EventRecorder } from '../../src/reaper/events.js';
import { ReaperMetrics } from '../../src/reaper/metrics.js';
import { RemovalRateLimiter } from '../../src/reaper/ratelimit.js';
import { FakeClock } from './fake-clock.js';
import { cep, configWith, LATER, pod, world } from './reaper-support.js';

/** The API server as the actuator sees it: a pod and CEP store, and a log of writes. */
class FakeApi implements ReaperApi {
  pods = new Map<string, PodInfo>();
  ceps = new Map<string, CiliumEndpointInfo>();
  removals: Array<{ action: RemovalAction; namespace: string; name: string; preconditions: Preconditions }> = [];
  events: CoreV1Event[] = [];
  patches: Array<{ namespace: string; name: string; patch: Record<string, unknown> }> = [];
  outcome: RemovalOutcome | Error = 'removed';

  async readPod(namespace: string, name: string) {
    return this.pods.get(`${namespace}/${name}`);
  }
  async readCiliumEndpoint(namespace: string, name: string) {
    return this.ceps.get(`${namespace}/${name}`);
  }
  async remove(action: RemovalAction, namespace: string, name: string, preconditions: Preconditions) {
    this.removals.push({ action, namespace, name, preconditions });
    if (this.outcome instanceof Error) throw this.outcome;
    return this.outcome;
  }
  async createEvent(event: CoreV1Event) {
    if (this.events.some((e) => e.metadata.name === event.metadata.name && e.metadata.namespace === event.metadata.namespace)) {
      throw new ApiException(409, 'AlreadyExists', '', {});
    }
    this.events.push(event);
  }
  async patchEvent(namespace: string, name: string, patch: Record<string, unknown>) {
    this.patches.push({ namespace, name, patch });
  }
}

const A = pod({ name: 'a', ip: '10.0.0.7', start: 5 });
const B = pod({ name: 'b', ip: '10.0.0.7', start: 60 });
const cepB = cep('default', 'b', ['10.0.0.7']);

describe('Actuator', () => {
  let api: FakeApi;
  let view: MemoryClusterView;
  let metrics: Metrics;
  let leader: boolean;

  const make = (config: Config = defaultConfig, dryRun = false) => {
    const clock = new FakeClock(LATER.getTime());
    const reaperMetrics = new ReaperMetrics(metrics);
    const log = pino({ level: 'silent' });
    return new Actuator({
      view,
      config,
      api,
      events: new EventRecorder(api, 'replica-1', () => new Date(clock.now()), log),
      limiter: new RemovalRateLimiter(config.reaper.rateLimit, clock),
      metrics: reaperMetrics,
      leadership: { isLeader: () => leader },
      clock,
      log,
      dryRun,
    });
  };
  const finding = (config: Config = defaultConfig): Assessment => detect(view, config, LATER).findings[0]!;
  const metric = async (name: string) => (await metrics.text()).split('\n').filter((l) => l.startsWith(`cmg_reaper_${name}`));

  beforeEach(() => {
    view = world({ pods: [A, B], ceps: [cepB] });
    api = new FakeApi();
    api.pods.set('default/a', { ...A, metadata: { ...A.metadata, resourceVersion: '101' } });
    api.ceps.set('default/b', cepB);
    metrics = new Metrics({ defaultMetrics: false });
    leader = true;
  });

  it('evicts the victim with uid and resourceVersion preconditions from the re-read, and records Events', async () => {
    expect(await make().handle(finding(), new AbortController().signal)).toBe('removed');
    expect(api.removals).toEqual([{ action: 'evict', namespace: 'default', name: 'a', preconditions: { uid: 'uid-default-a', resourceVersion: '101' } }]);
    expect(api.events.map((e) => [e.involvedObject.kind, e.metadata.namespace, e.reason, e.action, e.type, e.reportingComponent])).toEqual([
      ['Pod', 'default', 'DuplicatePodIP', 'Evict', 'Warning', 'cilium-migration-guard'],
      ['Node', 'default', 'DuplicatePodIP', 'Evict', 'Warning', 'cilium-migration-guard'],
    ]);
    expect(api.events[0]!.message).toContain('IP 10.0.0.7 also held by default/b on node-a (managed by Cilium)');
    expect(await metric('removals_total')).toEqual(['cmg_reaper_removals_total{action="evict",result="removed",reason="DuplicatePodIP"} 1']);
  });

  it('deletes when configured to', async () => {
    await make(configWith({ action: 'delete' })).handle(finding(), new AbortController().signal);
    expect(api.removals.map((r) => r.action)).toEqual(['delete']);
  });

  it.each([
    ['its CEP now holds the IP (the cache lagged)', (a: FakeApi) => a.ceps.set('default/a', cep('default', 'a', ['10.0.0.7'])), 'no-longer-victim'],
    ['it is gone', (a: FakeApi) => a.pods.delete('default/a'), 'gone'],
    ['a new pod has its name', (a: FakeApi) => a.pods.set('default/a', pod({ name: 'a', ip: '10.0.0.7', start: 5, uid: 'new-uid' })), 'replaced'],
    ['it is terminating', (a: FakeApi) => a.pods.set('default/a', pod({ name: 'a', ip: '10.0.0.7', start: 5, terminating: true })), 'no-longer-victim'],
    ['it Succeeded', (a: FakeApi) => a.pods.set('default/a', pod({ name: 'a', ip: '10.0.0.7', start: 5, phase: 'Succeeded' })), 'no-longer-victim'],
  ])('skips the pod when, on re-reading, %s', async (_title, change, why) => {
    const f = finding();
    change(api);
    expect(await make().handle(f, new AbortController().signal)).toBe('skipped');
    expect(api.removals).toEqual([]);
    expect(await metric('skipped_total')).toEqual([`cmg_reaper_skipped_total{why="${why}"} 1`]);
  });

  it('treats a failed precondition (409) as a skip', async () => {
    api.outcome = 'changed';
    expect(await make().handle(finding(), new AbortController().signal)).toBe('skipped');
    expect(api.events).toEqual([]);
  });

  it('backs off after a PodDisruptionBudget refused the eviction', async () => {
    api.outcome = 'blocked';
    const actuator = make();
    expect(await actuator.handle(finding(), new AbortController().signal)).toBe('blocked');
    expect(await actuator.handle(finding(), new AbortController().signal)).toBe('backing-off');
    expect(api.removals).toHaveLength(1);
    expect(api.events[0]!.action).toBe('EvictBlocked');
  });

  it('counts a failed call and backs off', async () => {
    api.outcome = new Error('boom');
    const actuator = make();
    expect(await actuator.handle(finding(), new AbortController().signal)).toBe('failed');
    expect(await metric('removals_total')).toEqual(['cmg_reaper_removals_total{action="evict",result="failed",reason="DuplicatePodIP"} 1']);
  });

  it('in dry-run, removes nothing, records the finding once', async () => {
    const actuator = make(defaultConfig, true);
    expect(await actuator.handle(finding(), new AbortController().signal)).toBe('dry-run');
    expect(await actuator.handle(finding(), new AbortController().signal)).toBe('announced-before');
    expect(api.removals).toEqual([]);
    expect(api.events.map((e) => e.action)).toEqual(['DryRun', 'DryRun']);
    expect(api.events[0]!.message).toMatch(/^dry-run, would evict: IP 10.0.0.7 is also held by default\/b/);
    expect(await metric('dry_run_findings_total')).toEqual(['cmg_reaper_dry_run_findings_total{reason="DuplicatePodIP"} 1']);
  });

  it('reports an owner-less victim once and removes nothing', async () => {
    view = world({ pods: [pod({ name: 'a', ip: '10.0.0.7', start: 5, owner: false }), B], ceps: [cepB] });
    const actuator = make();
    const f = finding();
    expect(f.verdict).toBe('report-only');
    expect(await actuator.handle(f, new AbortController().signal)).toBe('reported');
    expect(await actuator.handle(f, new AbortController().signal)).toBe('announced-before');
    expect(api.removals).toEqual([]);
    expect(api.events.map((e) => e.action)).toEqual(['Report', 'Report']);
  });

  it('does nothing when not the leader', async () => {
    leader = false;
    expect(await make().handle(finding(), new AbortController().signal)).toBe('not-leader');
    expect(api.removals).toEqual([]);
    expect(api.events).toEqual([]);
  });

  it('patches the same Event (count) when it already exists', async () => {
    const recorder = new EventRecorder(api, 'r', () => LATER, pino({ level: 'silent' }));
    const subject = { kind: 'Pod' as const, namespace: 'default', name: 'a', uid: 'u1' };
    const details = { type: 'Warning' as const, reason: 'DuplicatePodIP', action: 'Evict', message: 'm' };
    await recorder.record(subject, details);
    await recorder.record(subject, details);
    expect(api.events).toHaveLength(1);
    expect(api.patches).toEqual([{ namespace: 'default', name: api.events[0]!.metadata.name, patch: { count: 2, lastTimestamp: LATER.toISOString(), message: 'm' } }]);
  });
});

describe('Reaper (one pass) and change notifications', () => {
  it('does not evaluate before the caches sync, then acts on the findings', async () => {
    const view = world({ pods: [A, B], ceps: [cepB] });
    view.setSynced('pods', false);
    const api = new FakeApi();
    api.pods.set('default/a', A);
    const reaper = new Reaper({
      view,
      config: defaultConfig,
      api,
      leadership: { isLeader: () => true },
      metrics: new ReaperMetrics(new Metrics({ defaultMetrics: false })),
      log: pino({ level: 'silent' }),
      identity: 'r1',
      dryRun: false,
      clock: new FakeClock(LATER.getTime()),
    });
    expect(await reaper.runPass()).toBeUndefined();
    view.setSynced('pods', true);
    const detection = await reaper.runPass();
    expect(detection?.findings.map((f) => f.pod.name)).toEqual(['a']);
    expect(api.removals.map((r) => r.name)).toEqual(['a']);
  });
});
