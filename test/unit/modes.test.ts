import { describe, expect, it } from 'vitest';
import { MemoryClusterView } from '../../src/cluster/memory.js';
import { parseConfig, ConfigError } from '../../src/config.js';
import { withMode } from '../../src/modes/handler.js';
import { applyMode, MODE_LABEL, resolveMode, splitWarning, WARNING_MAX_CHARS, type Mode } from '../../src/modes/mode.js';
import { modeLabelsInFile, modeLabelsOf, staticNamespaceModes } from '../../src/modes/namespace-modes.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { daemonSetAffinityHandler } from '../../src/webhooks/daemonset-affinity.js';
import { podPlacementHandler } from '../../src/webhooks/pod-placement.js';
import { daemonSet } from '../support/fixtures.js';
import { daemonSetRequest, podRequest } from '../support/reviews.js';

const MIGRATED = 'node-cilium';

function viewWithUnreadyNode(config = parseConfig({})): MemoryClusterView {
  const view = new MemoryClusterView(config);
  view.upsertNode({ metadata: { name: MIGRATED, labels: { cni: 'cilium' } } });
  return view;
}

function placedPod(namespace = 'default'): any {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace, labels: { app: 'web' } },
    spec: { nodeName: MIGRATED, containers: [{ name: 'c', image: 'nginx' }] },
  };
}

function podHandler(modes: Record<string, Mode>, labels: Record<string, string> = {}) {
  const config = parseConfig({ modes });
  return withMode(podPlacementHandler(config, viewWithUnreadyNode(config)), 'pods', config, staticNamespaceModes(labels));
}

function dsHandler(modes: Record<string, Mode>, labels: Record<string, string> = {}) {
  const config = parseConfig({ modes });
  return withMode(daemonSetAffinityHandler(config, new MemoryClusterView(config)), 'daemonsets', config, staticNamespaceModes(labels));
}

describe('config', () => {
  it('defaults both webhooks to enforce and refuses an unknown mode, naming the field', () => {
    expect(parseConfig({}).modes).toEqual({ pods: 'enforce', daemonsets: 'enforce' });
    expect(() => parseConfig({ modes: { pods: 'dryrun' } })).toThrow(ConfigError);
    expect(() => parseConfig({ modes: { pods: 'dryrun' } })).toThrow(/modes\.pods/);
    expect(() => parseConfig({ modes: { nodes: 'warn' } })).toThrow(/modes/);
  });
});

describe('resolveMode', () => {
  const labels = staticNamespaceModes({ team: 'enforce', lax: 'audit', typo: 'Warn' });
  it('takes a valid namespace label over the configured mode', () => {
    expect(resolveMode('team', labels, 'warn')).toEqual({ mode: 'enforce', source: 'namespace' });
    expect(resolveMode('lax', labels, 'enforce')).toEqual({ mode: 'audit', source: 'namespace' });
  });
  it('uses the configured mode for unlabelled namespaces, cluster-scoped requests and invalid labels', () => {
    expect(resolveMode('other', labels, 'warn')).toEqual({ mode: 'warn', source: 'config' });
    expect(resolveMode(undefined, labels, 'audit')).toEqual({ mode: 'audit', source: 'config' });
    expect(resolveMode('typo', labels, 'enforce')).toEqual({ mode: 'enforce', source: 'config', invalidLabel: 'Warn' });
  });
  it('reads the labels of the Namespaces in a snapshot file (Lists and single documents), ignoring other kinds', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cmg-modes-')), 'snap.yaml');
    writeFileSync(
      file,
      [
        'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: payments, labels: {cilium-migration-guard.io/mode: enforce}}\n' +
          '- apiVersion: v1\n  kind: Pod\n  metadata: {name: p, namespace: payments, labels: {cilium-migration-guard.io/mode: audit}}',
        'apiVersion: v1\nkind: Namespace\nmetadata: {name: sandbox, labels: {cilium-migration-guard.io/mode: warn}}',
        'apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}',
      ].join('\n---\n'),
    );
    expect(modeLabelsInFile(file)).toEqual({ payments: 'enforce', sandbox: 'warn' });
  });

  it('reads the label from Namespace objects', () => {
    expect(modeLabelsOf([{ metadata: { name: 'a', labels: { [MODE_LABEL]: 'warn' } } }, { metadata: { name: 'b', labels: {} } }])).toEqual({ a: 'warn' });
  });
});

describe('splitWarning', () => {
  it('keeps every line within the limit, splits at spaces and loses no word', () => {
    const text = `${'word '.repeat(60)}${'x'.repeat(300)} tail`;
    const lines = splitWarning(text);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(WARNING_MAX_CHARS);
    expect(lines.join(' ').replace(/\s+/g, ' ')).not.toContain('  ');
    expect(lines.join('').replace(/\s+/g, '')).toBe(text.replace(/\s+/g, ''));
    expect(lines[0]!.endsWith('word')).toBe(true);
  });
});

describe('pod webhook under each mode', () => {
  it('enforce denies, as before, and records the mode', async () => {
    const d = await podHandler({ pods: 'enforce' }).handle(podRequest(placedPod()));
    expect(d.allowed).toBe(false);
    expect(d.mode).toBe('enforce');
    expect(d.wouldBe).toBeUndefined();
    expect(d.audit).toMatchObject({ decision: 'denied', mode: 'enforce' });
  });

  it('warn admits and returns the would-be denial as warnings of at most 120 characters', async () => {
    const enforced = await podHandler({ pods: 'enforce' }).handle(podRequest(placedPod()));
    const d = await podHandler({ pods: 'warn' }).handle(podRequest(placedPod()));
    expect(d.allowed).toBe(true);
    expect(d.message).toBeUndefined();
    expect(d.wouldBe).toBe('denied');
    expect(d.audit).toMatchObject({ decision: 'would-deny', mode: 'warn', node: MIGRATED });
    expect(d.warnings!.length).toBeGreaterThan(2);
    for (const w of d.warnings!) expect(w.length).toBeLessThanOrEqual(120);
    expect(d.warnings![0]).toMatch(/^cilium-migration-guard \(mode warn\) would deny: pod default\/web cannot be placed/);
    // Nothing of the denial is lost in the split.
    expect(d.warnings!.join(' ')).toContain(enforced.message!.split(' ').slice(-6).join(' '));
  });

  it('audit admits without a word to the client: only audit annotations and the decision fields', async () => {
    const d = await podHandler({ pods: 'audit' }).handle(podRequest(placedPod()));
    expect(d.allowed).toBe(true);
    expect(d.warnings).toBeUndefined();
    expect(d.wouldBe).toBe('denied');
    expect(d.audit).toMatchObject({ decision: 'would-deny', mode: 'audit' });
  });

  it('a namespace label overrides the configured mode both ways', async () => {
    const strict = await podHandler({ pods: 'warn' }, { payments: 'enforce' }).handle(podRequest(placedPod('payments')));
    expect(strict.allowed).toBe(false);
    expect(strict.mode).toBe('enforce');
    const lax = await podHandler({ pods: 'enforce' }, { sandbox: 'warn' }).handle(podRequest(placedPod('sandbox')));
    expect(lax.allowed).toBe(true);
    expect(lax.mode).toBe('warn');
    const other = await podHandler({ pods: 'enforce' }, { sandbox: 'warn' }).handle(podRequest(placedPod('default')));
    expect(other.allowed).toBe(false);
  });

  it('an invalid label value is ignored with a warning, the configured mode applies', async () => {
    const d = await podHandler({ pods: 'enforce' }, { default: 'off' }).handle(podRequest(placedPod()));
    expect(d.allowed).toBe(false);
    expect(d.warnings).toEqual([expect.stringContaining(`ignored namespace label ${MODE_LABEL}=off`)]);
  });
});

describe('DaemonSet webhook under each mode', () => {
  it('enforce patches aws-node and records the mode', async () => {
    const d = await dsHandler({ daemonsets: 'enforce' }).handle(daemonSetRequest(daemonSet('aws-node')));
    expect(d.patch?.length).toBeGreaterThan(0);
    expect(d.audit).toMatchObject({ action: 'injected', mode: 'enforce' });
  });
  it('warn drops the patch and says what it would add', async () => {
    const d = await dsHandler({ daemonsets: 'warn' }).handle(daemonSetRequest(daemonSet('aws-node')));
    expect(d.patch).toBeUndefined();
    expect(d.allowed).toBe(true);
    expect(d.wouldBe).toBe('patched');
    expect(d.audit).toMatchObject({ action: 'would-inject', mode: 'warn', role: 'legacy' });
    expect(d.warnings!.join(' ')).toMatch(/\(mode warn\) would add nodeAffinity cni NotIn \[cilium\] to kube-system\/aws-node .*not applied/);
    for (const w of d.warnings!) expect(w.length).toBeLessThanOrEqual(120);
  });
  it('audit drops the patch silently', async () => {
    const d = await dsHandler({ daemonsets: 'audit' }).handle(daemonSetRequest(daemonSet('aws-node')));
    expect(d.patch).toBeUndefined();
    expect(d.warnings).toBeUndefined();
    expect(d.audit).toMatchObject({ action: 'would-inject', mode: 'audit' });
  });
  it('a decision that neither denies nor patches is unchanged by the mode, but records it', async () => {
    const enforce = await dsHandler({ daemonsets: 'enforce' }).handle(daemonSetRequest(daemonSet('node-exporter')));
    const warn = await dsHandler({ daemonsets: 'warn' }).handle(daemonSetRequest(daemonSet('node-exporter')));
    expect(warn.reason).toBe(enforce.reason);
    expect(warn.wouldBe).toBeUndefined();
    expect(warn.mode).toBe('warn');
  });
});

describe('applyMode', () => {
  it('turns a conflict denial (onConflict: deny) into would-deny', () => {
    const d = applyMode(
      { allowed: false, reason: 'conflict', message: 'no', code: 403, audit: { action: 'conflict-denied' } },
      { mode: 'warn', source: 'config' },
    );
    expect(d).toMatchObject({ allowed: true, wouldBe: 'denied', audit: { action: 'would-deny', mode: 'warn' } });
    expect(d.code).toBeUndefined();
  });
});
