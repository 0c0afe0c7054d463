import { Writable } from 'node:stream';
import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { ApiException, type CoreV1Event } from '@kubernetes/client-node';
import type { MemoryClusterView } from '../../src/cluster/memory.js';
import type { CiliumEndpointInfo, PodInfo } from '../../src/cluster/view.js';
import { defaultConfig, type Config } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { Actuator } from '../../src/reaper/actuator.js';
import { RemovalThrottledError, type CallOptions, type Preconditions, type ReaperApi, type RemovalAction, type RemovalOutcome } from '../../src/reaper/api.js';
import { Reaper } from '../../src/reaper/reaper.js';
import { detect, type Assessment } from '../../src/reaper/detect.js';
import { EventRecorder } from '../../src/reaper/events.js';
import { ReaperMetrics } from '../../src/reaper/reaper-metrics.js';
import { RemovalRateLimiter } from '../../src/reaper/ratelimit.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { cep, configWith, LATER, pod, world } from '../support/reaper-world.js';

/** The API server as the actuator sees it: a pod and CEP store, and a log of writes. */
class FakeApi implements ReaperApi {
  pods = new Map<string, PodInfo>();
  ceps = new Map<string, CiliumEndpointInfo>();
  removals: Array<{ action: RemovalAction; namespace: string; name: string; preconditions: Preconditions }> = [];
  events: CoreV1Event[] = [];
  patches: Array<{ namespace: string; name: string; patch: Record<string, unknown> }> = [];
  outcome: RemovalOutcome | Error = 'removed';
  /** Options (signal, timeout) each call received, by call. */
  options: Array<{ call: string; options: CallOptions | undefined }> = [];
  /** Runs inside readCiliumEndpoint (the last GET of the re-read): lets a test change the world between re-read and remove. */
  duringReread: (() => void) | undefined;
  /** When set, reads never answer until their signal aborts. */
  hang = false;

  private wait(options: CallOptions | undefined): Promise<void> {
    if (!this.hang) return Promise.resolve();
    return new Promise((_, reject) => options?.signal?.addEventListener('abort', () => reject(options.signal!.reason)));
  }
  async readPod(namespace: string, name: string, options?: CallOptions) {
    this.options.push({ call: 'readPod', options });
    await this.wait(options);
    return this.pods.get(`${namespace}/${name}`);
  }
  async readCiliumEndpoint(namespace: string, name: string, options?: CallOptions) {
    this.options.push({ call: 'readCiliumEndpoint', options });
    this.duringReread?.();
    return this.ceps.get(`${namespace}/${name}`);
  }
  async remove(action: RemovalAction, namespace: string, name: string, preconditions: Preconditions, options?: CallOptions) {
    this.options.push({ call: 'remove', options });
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
    // Like the API server: an Event deleted by its TTL cannot be patched.
    if (!this.events.some((e) => e.metadata.name === name && e.metadata.namespace === namespace)) throw new ApiException(404, 'NotFound', '', {});
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
  let clock: FakeClock;
  let remainingMs: number;

  const make = (config: Config = defaultConfig, dryRun = false) => {
    clock = new FakeClock(LATER.getTime());
    const reaperMetrics = new ReaperMetrics(metrics);
    const log = pino({ level: 'silent' });
    return new Actuator({
      view,
      config,
      api,
      events: new EventRecorder(api, 'replica-1', () => new Date(clock.now()), log),
      limiter: new RemovalRateLimiter(config.reaper.rateLimit, clock),
      metrics: reaperMetrics,
      leadership: { isLeader: () => leader, remainingMs: () => (leader ? remainingMs : 0) },
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
    remainingMs = Infinity;
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
    expect(api.patches).toEqual([
      { namespace: 'default', name: api.events[0]!.metadata.name, patch: { count: 2, lastTimestamp: LATER.toISOString(), message: 'm' } },
    ]);
  });
  // --- audit item 1: a deposed leader never writes ------------------------------------------

  it('does not remove when leadership is lost between the re-read and the removal', async () => {
    api.duringReread = () => (leader = false);
    expect(await make().handle(finding(), new AbortController().signal)).toBe('not-leader');
    expect(api.removals).toEqual([]);
    expect(api.events).toEqual([]);
  });

  it('hands the pass signal to every API call; an abort during the re-read removes nothing', async () => {
    const pass = new AbortController();
    api.duringReread = () => pass.abort(new Error('leadership lost'));
    await expect(make().handle(finding(), pass.signal)).rejects.toThrow('leadership lost');
    expect(api.removals).toEqual([]);
    expect(api.options.map((o) => [o.call, o.options?.signal?.aborted])).toEqual([
      ['readPod', true],
      ['readCiliumEndpoint', true],
    ]);
  });

  it('bounds the removal request by the time left before this replica stops leading on its own', async () => {
    remainingMs = 3_000;
    expect(await make().handle(finding(), new AbortController().signal)).toBe('removed');
    const remove = api.options.find((o) => o.call === 'remove')!;
    expect(remove.options?.timeoutMs).toBe(3_000);
    expect(remove.options?.signal).toBeDefined();
    // Each re-read GET is short: both together stay well inside the renew deadline.
    expect(api.options.filter((o) => o.call !== 'remove').map((o) => o.options?.timeoutMs)).toEqual([2_000, 2_000]);
  });

  it('writes no Event once leadership is lost (after the removal)', async () => {
    const actuator = make();
    const original = api.remove.bind(api);
    api.remove = async (...args) => {
      const r = await original(...args);
      leader = false;
      return r;
    };
    expect(await actuator.handle(finding(), new AbortController().signal)).toBe('removed');
    expect(api.removals).toHaveLength(1);
    expect(api.events).toEqual([]);
  });

  // --- audit item 3: only removals use up the rate limit -------------------------------------

  describe('rate limit budget', () => {
    const C = pod({ name: 'c', ip: '10.0.0.8', start: 5 });
    const D = pod({ name: 'd', ip: '10.0.0.8', start: 60 });
    const cepD = cep('default', 'd', ['10.0.0.8']);
    const oneAtATime = configWith({ rateLimit: { perMinute: 10, perNodePerMinute: 1 } });
    const settle = <T>(p: Promise<T>) => Promise.race([p, flush().then(() => 'still waiting' as const)]);

    beforeEach(() => {
      view = world({ pods: [A, B, C, D], ceps: [cepB, cepD] });
      api.pods.set('default/c', C);
    });
    const findings = () => detect(view, oneAtATime, LATER).findings;

    it.each([
      ['skipped on re-reading', (a: FakeApi) => a.ceps.set('default/a', cep('default', 'a', ['10.0.0.7'])), 'skipped'],
      ['a failed precondition (409)', (a: FakeApi) => (a.outcome = 'changed'), 'skipped'],
      ['refused by a PodDisruptionBudget', (a: FakeApi) => (a.outcome = 'blocked'), 'blocked'],
    ])('a pod %s does not use up the node budget', async (_title, change, first) => {
      const actuator = make(oneAtATime);
      const [fa, fc] = findings();
      change(api);
      expect(await settle(actuator.handle(fa!, new AbortController().signal))).toBe(first);
      api.outcome = 'removed';
      expect(await settle(actuator.handle(fc!, new AbortController().signal))).toBe('removed');
      expect(api.removals.at(-1)?.name).toBe('c');
    });
  });

  // --- audit item 5: Events ------------------------------------------------------------------

  it('creates the Event again once the API server has deleted it (TTL): patch 404 → create', async () => {
    const recorder = new EventRecorder(api, 'r', () => LATER, pino({ level: 'silent' }));
    const subject = { kind: 'Pod' as const, namespace: 'default', name: 'a', uid: 'u1' };
    const details = { type: 'Warning' as const, reason: 'DuplicatePodIP', action: 'Evict', message: 'm' };
    await recorder.record(subject, details);
    api.events.length = 0; // the Event TTL (1 h) expired
    await recorder.record(subject, { ...details, message: 'again' });
    expect(api.events.map((e) => [e.message, e.count])).toEqual([['again', 1]]);
  });

  it('a new leader patches the Event an earlier one created: create 409 → patch', async () => {
    const earlier = new EventRecorder(api, 'r1', () => LATER, pino({ level: 'silent' }));
    const subject = { kind: 'Pod' as const, namespace: 'default', name: 'a', uid: 'u1' };
    const details = { type: 'Warning' as const, reason: 'DuplicatePodIP', action: 'Report', message: 'm' };
    await earlier.record(subject, details);
    await new EventRecorder(api, 'r2', () => LATER, pino({ level: 'silent' })).record(subject, details);
    expect(api.events).toHaveLength(1);
    expect(api.patches).toEqual([
      { namespace: 'default', name: api.events[0]!.metadata.name, patch: { count: 2, lastTimestamp: LATER.toISOString(), message: 'm' } },
    ]);
  });

  it('keeps the in-memory Event counts bounded in size and age', async () => {
    let now = LATER.getTime();
    const recorder = new EventRecorder(api, 'r', () => new Date(now), pino({ level: 'silent' }));
    const details = { type: 'Warning' as const, reason: 'DuplicatePodIP', action: 'Report', message: 'm' };
    for (let i = 0; i < 5_000; i++) await recorder.record({ kind: 'Pod', namespace: 'default', name: `p${i}`, uid: `u${i}` }, details);
    expect(recorder.tracked).toBeLessThanOrEqual(4_096);
    now += 2 * 3_600_000; // older than the Event TTL: forgotten
    await recorder.record({ kind: 'Pod', namespace: 'default', name: 'late', uid: 'late' }, details);
    expect(recorder.tracked).toBe(1);
  });

  it('gives every removal its own node Event, naming the pod', async () => {
    const C = pod({ name: 'c', ip: '10.0.0.8', start: 5 });
    const D = pod({ name: 'd', ip: '10.0.0.8', start: 60 });
    view = world({ pods: [A, B, C, D], ceps: [cepB, cep('default', 'd', ['10.0.0.8'])] });
    api.pods.set('default/c', C);
    const actuator = make();
    for (const f of detect(view, defaultConfig, LATER).findings) expect(await actuator.handle(f, new AbortController().signal)).toBe('removed');
    const nodeEvents = api.events.filter((e) => e.involvedObject.kind === 'Node');
    expect(nodeEvents.map((e) => e.message!.slice(0, 'pod default/a'.length))).toEqual(['pod default/a', 'pod default/c']);
    expect(new Set(nodeEvents.map((e) => e.metadata.name)).size).toBe(2);
    expect(nodeEvents.map((e) => e.related?.name)).toEqual(['a', 'c']);
  });

  // --- audit item 7: throttling is not a PDB; failures back off exponentially -----------------

  it('an API throttle (429 without a DisruptionBudget cause) honours Retry-After and is not called a PDB refusal', async () => {
    api.outcome = new RemovalThrottledError(7_000);
    const actuator = make();
    expect(await actuator.handle(finding(), new AbortController().signal)).toBe('throttled');
    expect(api.events).toEqual([]);
    expect(await metric('removals_total')).toEqual(['cmg_reaper_removals_total{action="evict",result="throttled",reason="DuplicatePodIP"} 1']);
    await clock.advance(6_999);
    expect(await actuator.handle(finding(), new AbortController().signal)).toBe('backing-off');
    await clock.advance(1);
    api.outcome = 'removed';
    expect(await actuator.handle(finding(), new AbortController().signal)).toBe('removed');
  });

  it('backs off exponentially (capped) after repeated failures, e.g. an eviction 500 for several PDBs', async () => {
    api.outcome = new ApiException(500, 'This pod has more than one PodDisruptionBudget', '', {});
    const actuator = make();
    const retries: number[] = [];
    let last = clock.now();
    for (let step = 0; step < 400 && retries.length < 7; step++) {
      const outcome = await actuator.handle(finding(), new AbortController().signal);
      if (outcome === 'failed') {
        retries.push(clock.now() - last);
        last = clock.now();
      } else expect(outcome).toBe('backing-off');
      await clock.advance(10_000);
    }
    expect(retries.slice(1)).toEqual([30_000, 60_000, 120_000, 240_000, 300_000, 300_000]);
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

describe('Reaper passes: busy nodes, missing CRDs, liveness', () => {
  const victims = (node: string, names: string[], base: number) =>
    names.flatMap((name, i) => {
      const ip = `10.0.${base}.${i + 1}`;
      return [pod({ name, node, ip, start: 5 }), pod({ name: `${name}-cilium`, node, ip, start: 60 })];
    });
  const cepsFor = (pods: PodInfo[]) => pods.filter((p) => p.metadata.name.endsWith('-cilium')).map((p) => cep('default', p.metadata.name, [p.status!.podIP!]));

  function setup(options: { config?: Config; crdMissing?: () => string[]; disconnected?: () => Record<string, string> } = {}) {
    const pods = [...victims('node-a', ['a1', 'a2'], 1), ...victims('node-b', ['b1'], 2)];
    const view = world({ nodes: [{ name: 'node-a' }, { name: 'node-b' }], pods, ceps: cepsFor(pods) });
    const api = new FakeApi();
    for (const p of pods) api.pods.set(`default/${p.metadata.name}`, p);
    const clock = new FakeClock(LATER.getTime());
    const metrics = new Metrics({ defaultMetrics: false });
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const reaper = new Reaper({
      view,
      config: options.config ?? configWith({ rateLimit: { perMinute: 10, perNodePerMinute: 1 }, resyncSeconds: 300 }),
      api,
      leadership: { isLeader: () => true },
      metrics: new ReaperMetrics(metrics),
      log: pino({ level: 'info' }, sink),
      identity: 'r1',
      dryRun: false,
      clock,
      ...(options.crdMissing ? { crdMissing: options.crdMissing } : {}),
      ...(options.disconnected ? { disconnected: options.disconnected } : {}),
    });
    return { view, api, clock, metrics, reaper, lines };
  }
  // The fake clock never moves by itself: a pass that sleeps on the rate limit stays pending.
  const settle = <T>(p: Promise<T>) => Promise.race([p, new Promise<'still waiting'>((r) => setTimeout(() => r('still waiting'), 200))]);

  it('a node whose budget is used up does not hold up other nodes; it gets a pass when its window frees', async () => {
    const { api, clock, reaper, metrics } = setup();
    expect(await settle(reaper.runPass())).not.toBe('still waiting');
    expect(api.removals.map((r) => r.name)).toEqual(['a1', 'b1']);
    expect(reaper.nextPassAt).toBe(clock.now() + 60_000);
    expect((await metrics.text()).split('\n').filter((l) => l.startsWith('cmg_reaper_rate_limited_total'))).toEqual([
      'cmg_reaper_rate_limited_total{scope="node"} 1',
    ]);
    // a1 and b1 are gone now (the fake API does not remove them from the view): take them out.
    api.pods.delete('default/a1');
    api.pods.delete('default/b1');
    await clock.advance(30_000);
    await reaper.runPass();
    expect(api.removals.map((r) => r.name)).toEqual(['a1', 'b1']);
    await clock.advance(30_000);
    await reaper.runPass();
    expect(api.removals.map((r) => r.name)).toEqual(['a1', 'b1', 'a2']);
  });

  it('does not act while the CiliumEndpoint CRD is missing, and says so periodically', async () => {
    let missing = ['ciliumendpoints.cilium.io'];
    const { api, clock, reaper, lines } = setup({ crdMissing: () => missing });
    expect(await reaper.runPass()).toBeUndefined();
    await reaper.runPass();
    expect(api.removals).toEqual([]);
    const warnings = () => lines.filter((l) => l.level === 40 && String(l.msg).includes('ciliumendpoints.cilium.io'));
    expect(warnings()).toHaveLength(1);
    expect(reaper.health().detail).toMatchObject({ crdMissing: ['ciliumendpoints.cilium.io'] });
    await clock.advance(60_000);
    await reaper.runPass();
    expect(warnings()).toHaveLength(2);
    missing = [];
    await reaper.runPass();
    expect(api.removals.map((r) => r.name)).toEqual(['a1', 'b1']);
  });

  it('does not evaluate or remove while a cache is disconnected; says so once, and again when it resumes', async () => {
    let disconnected: Record<string, string> = { pods: '2025-06-03T11:00:00.000Z' };
    const { api, reaper, lines } = setup({ disconnected: () => disconnected });
    expect(await reaper.runPass()).toBeUndefined();
    expect(await reaper.runPass()).toBeUndefined();
    expect(api.removals).toEqual([]);
    expect(api.options).toEqual([]); // not even a re-read
    expect(lines.filter((l) => l.level === 40 && String(l.msg).includes('a cache lost its watch'))).toHaveLength(1);
    expect(reaper.nextPassAt).toBeDefined(); // it looks again by itself: a reconnection fires no event
    disconnected = {};
    expect(await reaper.runPass()).toBeDefined();
    expect(api.removals.map((r) => r.name)).toEqual(['a1', 'b1']);
    expect(lines.some((l) => String(l.msg).includes('every cache is watching again'))).toBe(true);
  });

  it('stops a pass before its next removal when a cache disconnects during it', async () => {
    let disconnected: Record<string, string> = {};
    const { api, reaper } = setup({ disconnected: () => disconnected });
    const remove = api.remove.bind(api);
    api.remove = async (...args: Parameters<typeof api.remove>) => {
      const out = await remove(...args);
      disconnected = { nodes: '2025-06-03T11:00:00.000Z' }; // the watch breaks right after the first removal
      return out;
    };
    await reaper.runPass();
    expect(api.removals.map((r) => r.name)).toEqual(['a1']);
  });

  it('is unhealthy when no pass has completed for 2 x resync + 60 s (a stuck loop)', async () => {
    const { api, clock, reaper } = setup();
    expect(reaper.health().healthy).toBe(true);
    await reaper.runPass();
    await clock.advance(600_000 + 60_000);
    expect(reaper.health().healthy).toBe(true);
    api.hang = true; // the next pass never finishes
    void reaper.runPass().catch(() => {});
    await clock.advance(1);
    expect(reaper.health()).toMatchObject({ healthy: false });
  });
});
