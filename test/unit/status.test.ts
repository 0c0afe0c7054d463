import { describe, expect, it } from 'vitest';
import { generateCa } from '../../src/certs/x509.js';
import type { Progress } from '../../src/progress/progress.js';
import type { DaemonSetReport } from '../../src/reconciler/report.js';
import { buildStatus, formatStatus, judgeCaBundle, type StatusInputs } from '../../src/status/status.js';
import { runStatus } from '../../src/commands/status.js';
import { UsageError } from '../../src/commands/common.js';

const NOW = new Date('2026-12-01T12:00:00Z');
const b64 = (pem: string) => Buffer.from(pem).toString('base64');

async function ca(days: number, startDaysAgo = 1): Promise<string> {
  const pair = await generateCa({ notBefore: new Date(NOW.getTime() - startDaysAgo * 86_400_000), notAfter: new Date(NOW.getTime() + days * 86_400_000) });
  return pair.cert;
}

function progress(overrides: Partial<Progress> = {}): Progress {
  return {
    at: NOW.toISOString(),
    nodes: { legacy: 3, 'migrated-ready': 2, 'migrated-not-ready': 0 },
    waiting: [],
    ready: [],
    unmanagedPods: 0,
    legacyAgentsOnMigrated: 0,
    ...overrides,
  };
}

const noDaemonSets: DaemonSetReport = { daemonSetsRead: 12, outOfLine: [], conflicts: [], agents: { legacyOnMigrated: [], ciliumMissing: [] } };

function inputs(overrides: Partial<StatusInputs> = {}): StatusInputs {
  return {
    source: 'snapshot test.yaml',
    progress: progress(),
    daemonSets: noDaemonSets,
    modes: { pods: 'enforce', daemonsets: 'warn' },
    namespaceModes: {},
    stuckAfterSeconds: 1800,
    ...overrides,
  };
}

describe('judgeCaBundle', () => {
  it('accepts a bundle with a valid CA and names when it expires; flags missing, garbage, expired and close to expiry', async () => {
    const good = await ca(365);
    expect(judgeCaBundle(b64(good), NOW)).toMatchObject({ verdict: 'ok' });
    expect(judgeCaBundle(undefined, NOW).verdict).toBe('missing');
    expect(judgeCaBundle(b64('hello'), NOW).verdict).toBe('not a PEM certificate bundle');
    expect(judgeCaBundle(b64(await ca(-1, 10)), NOW).verdict).toBe('expired or not yet valid');
    expect(judgeCaBundle(b64(await ca(3)), NOW).verdict).toBe('expires in 3 day(s)');
    // An expired CA next to a valid one (a rotation's overlap) is fine.
    expect(judgeCaBundle(b64(`${await ca(-1, 10)}\n${good}`), NOW).verdict).toBe('ok');
  });
});

describe('buildStatus', () => {
  it('a healthy migration needs no attention', async () => {
    const good = b64(await ca(365));
    const s = buildStatus(
      inputs({
        webhooks: {
          registered: [
            { configuration: 'c', kind: 'Validating', name: 'pods.x', failurePolicy: 'Ignore', caBundle: good, url: 'https://127.0.0.1:1/validate/pods' },
          ],
          reachable: { 'pods.x': 'ok' },
          missing: [],
        },
      }),
      NOW,
    );
    expect(s.attention).toEqual([]);
    expect(s.webhooks).toEqual([
      { name: 'pods.x', kind: 'Validating', failurePolicy: 'Ignore', caBundle: 'ok', caExpires: expect.any(String), reachable: 'ok' },
    ]);
    const text = formatStatus(s);
    expect(text).toContain('Nothing needs attention.');
    expect(text).toMatch(/Modes: pods enforce, daemonsets warn; no namespace overrides/);
    expect(text).toMatch(/pods\.x\s+Ignore\s+ok\s+ok/);
  });

  it('lists what needs attention: stuck nodes, unmanaged pods, legacy agents, DaemonSets, bad labels, webhook problems', () => {
    const s = buildStatus(
      inputs({
        progress: progress({
          nodes: { legacy: 1, 'migrated-ready': 0, 'migrated-not-ready': 2 },
          waiting: [
            { node: 'slow', seconds: 4000, since: 'x', gaps: ['no-agent-pod'] },
            { node: 'fresh', seconds: 60, since: 'y', gaps: ['agent-not-ready'] },
          ],
          unmanagedPods: 2,
          legacyAgentsOnMigrated: 1,
        }),
        daemonSets: {
          ...noDaemonSets,
          outOfLine: [{ namespace: 'kube-system', name: 'aws-node', role: 'legacy', rule: 'aws-node', requirement: 'cni NotIn [cilium]' }],
          conflicts: [{ namespace: 'kube-system', name: 'calico-node', role: 'legacy', rule: 'calico-node', requirement: 'r', detail: 'd' }],
        },
        namespaceModes: { team: 'enforce', typo: 'Warn' },
        webhooks: {
          registered: [{ configuration: 'c', kind: 'Mutating', name: 'daemonsets.x', failurePolicy: 'Fail', url: 'https://127.0.0.1:1/mutate' }],
          reachable: { 'daemonsets.x': 'unreachable: connect ECONNREFUSED 127.0.0.1:1' },
          missing: ['ValidatingWebhookConfiguration c'],
        },
      }),
      NOW,
    );
    expect(s.attention).toEqual([
      '1 migrated node(s) waiting for Cilium longer than 30m: slow',
      '2 pod(s) on migrated nodes hold IPs Cilium does not manage (see `report`)',
      '1 previous-CNI agent pod(s) run on migrated nodes',
      '1 DaemonSet(s) out of line: kube-system/aws-node',
      '1 DaemonSet(s) contradict their role: kube-system/calico-node',
      'namespace typo has cilium-migration-guard.io/mode=Warn, not a mode (ignored)',
      'ValidatingWebhookConfiguration c is not registered',
      'webhook daemonsets.x: caBundle missing',
      'webhook daemonsets.x: unreachable: connect ECONNREFUSED 127.0.0.1:1',
    ]);
    const text = formatStatus(s);
    expect(text).toMatch(/slow\s+66m\s+no-agent-pod/);
    expect(text).toContain('namespaces: team=enforce, typo=Warn');
    expect(text).toContain('Needs attention:\n  - 1 migrated node(s)');
  });
});

describe('reads that fail', () => {
  it('need attention, and the rest of the screen stands', () => {
    const s = buildStatus(inputs({ source: 'cluster https://x', problems: ['could not read DaemonSets: HTTP-Code: 403'] }), NOW);
    expect(s.attention).toEqual(['could not read DaemonSets: HTTP-Code: 403']);
    expect(s.webhooks).toBe('not checked');
    expect(formatStatus(s)).toContain('Webhooks: not checked\n');
  });
});

describe('runStatus on a snapshot', () => {
  it('reads the example snapshot: nodes per state, the waiting node, no webhook checks', async () => {
    const { status, text } = await runStatus(['--cluster-state', 'examples/cluster-state.yaml'], {});
    expect(status.nodes).toEqual({ legacy: 1, 'migrated-ready': 1, 'migrated-not-ready': 1 });
    expect(status.slowestWaiting.map((w) => w.node)).toEqual(['node-cilium-pending']);
    expect(status.webhooks).toBe('not checked (snapshot)');
    expect(status.attention[0]).toMatch(/^1 migrated node\(s\) waiting for Cilium longer than 30m: node-cilium-pending$/);
    expect(text).toContain('Webhooks: not checked (snapshot)');
  });

  it('refuses bad flags with a usage error naming them', async () => {
    await expect(runStatus(['--cluster-state', 'examples/cluster-state.yaml', '-o', 'yaml'], {})).rejects.toThrow(UsageError);
    await expect(runStatus(['--cluster-state', 'examples/cluster-state.yaml', '--stuck-after', 'soon'], {})).rejects.toThrow(
      /--stuck-after must be a positive number/,
    );
  });
});
