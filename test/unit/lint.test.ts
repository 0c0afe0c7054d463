import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHubbleMetrics, interfaceMatches } from '../../src/lint/checks.js';
import { covers, parseCidr } from '../../src/lint/cidr.js';
import { helmToConfig } from '../../src/lint/helm.js';
import { loadFiles, LintInputError } from '../../src/lint/load.js';
import { effectiveOptions, routingMode, selects, strictEgress } from '../../src/lint/options.js';
import { DEFAULT_LINT_OPTIONS, exitCodeFor, formatFindings, lint } from '../../src/lint/run.js';
import type { Finding, LintOptions } from '../../src/lint/types.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'lint');
const fixture = (check: string, file: string) => join(FIXTURES, check, file);

function lintFiles(files: string[], settings: Partial<LintOptions> = {}): Finding[] {
  return lint(loadFiles(files).input, { ...DEFAULT_LINT_OPTIONS, ...settings });
}
const of = (findings: Finding[], id: string) => findings.filter((f) => f.id === id);

// Every check: its trigger fixture yields a finding of that id and severity; its no-trigger fixture none.
describe.each([
  { id: 'native-routing-cidr', trigger: 'trigger.yaml', severity: 'error', says: ['10.245.7.0/24 (Node pool-b-1)', 'WireGuard', 'ipv4NativeRoutingCIDR'] },
  { id: 'native-routing-cidr', trigger: 'values-trigger.yaml', severity: 'error', says: ['10.0.0.0/8 (cluster-pool-ipv4-cidr)', 'Helm values'] },
  {
    id: 'strict-encryption',
    trigger: 'trigger.yaml',
    severity: 'error',
    says: ['encryption-strict-egress-cidr 10.0.0.0/16', 'encryption.strictMode.egress.cidr'],
    count: 2,
  },
  { id: 'strict-encryption', trigger: 'legacy-trigger.yaml', severity: 'error', says: ['encryption-strict-mode-cidr 10.1.0.0/16'] },
  {
    id: 'hubble-cardinality',
    trigger: 'trigger.yaml',
    severity: 'warning',
    says: ['dns uses query: series grow with the distinct DNS names queried', 'hubble.metrics.enabled'],
    count: 3,
  },
  {
    id: 'aks-fqdn-kube-proxy',
    trigger: 'trigger.yaml',
    severity: 'warning',
    says: ['myaks-dns-1a2b3c4d.hcp.westeurope.azmk8s.io', 'ingress-nginx/ingress-nginx-controller-7d9f8', 'kubeProxyReplacement=true'],
  },
  { id: 'eni-masquerade', trigger: 'trigger.yaml', severity: 'warning', says: ['no egress-masquerade-interfaces', 'egressMasqueradeInterfaces'] },
  { id: 'eni-masquerade', trigger: 'pattern-trigger.yaml', severity: 'warning', says: ['eth+ matches none of the interfaces ens5'] },
  { id: 'gke-netd-source-valid-mark', trigger: 'trigger.yaml', severity: 'warning', says: ['enable-policy-routing', 'cilium/cilium#48706'] },
  {
    id: 'migration-leftovers',
    trigger: 'trigger.yaml',
    severity: 'warning',
    says: [
      'cni.customConf=false',
      'policyEnforcementMode=default',
      'operator.unmanagedPodWatcher.restart=true',
      'bpf.hostLegacyRouting=false',
      'delete CiliumNodeConfig kube-system/cilium-default',
    ],
  },
  { id: 'pod-cidr-plan', trigger: 'trigger.yaml', severity: 'info', says: ['ipam kubernetes', 'reaper.target=duplicate-ip'] },
  { id: 'pod-cidr-plan', trigger: 'separate.yaml', severity: 'info', says: ['is separate', 'reaper.target=any-unmanaged'] },
])('lint check $id ($trigger)', ({ id, trigger, severity, says, count = 1 }) => {
  it('triggers, saying what breaks and the Helm value', () => {
    const found = of(lintFiles([fixture(id, trigger)]), id);
    expect(found).toHaveLength(count);
    // The first finding (errors sort first, then by subject) is the one the row describes.
    expect(found[0]!.severity).toBe(severity);
    for (const text of says) expect(`${found[0]!.message} ${found[0]!.subject}`).toContain(text);
  });
  it('does not trigger on ok.yaml', () => {
    expect(of(lintFiles([fixture(id, 'ok.yaml')]), id)).toEqual([]);
  });
});

describe('lint: the facts behind the checks', () => {
  it('reads legacy tunnel: disabled as native routing, and routing-mode over it', () => {
    expect(routingMode({ tunnel: 'disabled' })).toBe('native');
    expect(routingMode({ tunnel: 'vxlan' })).toBe('tunnel');
    expect(routingMode({ tunnel: 'disabled', 'routing-mode': 'tunnel' })).toBe('tunnel');
    expect(routingMode({ ipam: 'eni' })).toBe('native');
    expect(routingMode({})).toBe('tunnel');
  });

  it('flags native routing without a native-routing CIDR, except where the cloud IPAM derives it', () => {
    const input = (data: Record<string, string>) => ({
      ciliumConfig: { data, subject: 'cm' },
      nodeConfigs: [],
      nodes: [],
      ciliumNodes: new Map(),
      hostPortPods: [],
    });
    expect(lint(input({ tunnel: 'disabled' })).filter((f) => f.id === 'native-routing-cidr')[0]?.severity).toBe('error');
    expect(lint(input({ 'routing-mode': 'native', ipam: 'eni' })).filter((f) => f.id === 'native-routing-cidr')).toEqual([]);
    // Only eni and alibabacloud are exempt in the agent's checkIPv4NativeRoutingCIDR, not azure.
    expect(lint(input({ 'routing-mode': 'native', ipam: 'azure' })).find((f) => f.id === 'native-routing-cidr')?.message).toContain(
      'the agent refuses to start',
    );
    expect(lint(input({ 'routing-mode': 'native', 'enable-ipv4-masquerade': 'false' })).filter((f) => f.id === 'native-routing-cidr')).toEqual([]);
    expect(lint(input({ 'routing-mode': 'native', 'enable-ip-masq-agent': 'true' })).filter((f) => f.id === 'native-routing-cidr')).toEqual([]);
  });

  it('is a warning without encryption, and without encrypt-node only an error', () => {
    const base = { 'routing-mode': 'native', 'ipv4-native-routing-cidr': '10.0.0.0/16', ipam: 'cluster-pool', 'cluster-pool-ipv4-cidr': '10.8.0.0/16' };
    const sev = (extra: Record<string, string>) =>
      lint({ ciliumConfig: { data: { ...base, ...extra }, subject: 'cm' }, nodeConfigs: [], nodes: [], ciliumNodes: new Map(), hostPortPods: [] }).find(
        (f) => f.id === 'native-routing-cidr',
      )?.severity;
    expect(sev({})).toBe('warning');
    expect(sev({ 'enable-ipsec': 'true' })).toBe('error');
    expect(sev({ 'enable-wireguard': 'true', 'encrypt-node': 'true' })).toBe('warning');
  });

  it('judges each node on cilium-config with its CiliumNodeConfigs merged over, and names the nodes', () => {
    const input = {
      ciliumConfig: { data: { 'routing-mode': 'tunnel' }, subject: 'ConfigMap kube-system/cilium-config' },
      nodeConfigs: [
        {
          namespace: 'kube-system',
          name: 'native',
          nodeSelector: { matchLabels: { pool: 'b' } },
          defaults: { 'routing-mode': 'native', 'ipv4-native-routing-cidr': '10.1.0.0/16' },
        },
      ],
      nodes: [
        { name: 'a', labels: { pool: 'a' }, podCIDRs: ['10.2.0.0/24'] },
        { name: 'b', labels: { pool: 'b' }, podCIDRs: ['10.1.0.0/24'] },
      ],
      ciliumNodes: new Map(),
      hostPortPods: [],
    };
    expect(effectiveOptions(input, input.nodes[1])['routing-mode']).toBe('native');
    expect(effectiveOptions(input, input.nodes[0])['routing-mode']).toBe('tunnel');
    const found = lint(input).filter((f) => f.id === 'native-routing-cidr');
    expect(found).toHaveLength(1);
    expect(found[0]!.subject).toBe('node b');
    expect(found[0]!.message).toContain('10.2.0.0/24 (Node a)');
  });

  it('uses CiliumNode pod CIDRs too', () => {
    const findings = lint({
      ciliumConfig: { data: { 'routing-mode': 'native', 'ipv4-native-routing-cidr': '10.0.0.0/16', ipam: 'kubernetes' }, subject: 'cm' },
      nodeConfigs: [],
      nodes: [],
      ciliumNodes: new Map([['n1', ['10.9.0.0/24']]]),
      hostPortPods: [],
    });
    expect(findings.find((f) => f.id === 'native-routing-cidr')?.message).toContain('10.9.0.0/24 (CiliumNode n1)');
  });

  it('selects nodes like Kubernetes label selectors; a nil selector selects nothing', () => {
    expect(selects({}, { a: '1' })).toBe(true);
    expect(selects(undefined, { a: '1' })).toBe(false);
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1'] }] }, { a: '1' })).toBe(true);
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, { a: '1' })).toBe(false);
    expect(selects({ matchExpressions: [{ key: 'b', operator: 'DoesNotExist' }] }, { a: '1' })).toBe(true);
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'Bogus' }] }, { a: '1' })).toBe(false);
  });

  it('reads both spellings of strict egress encryption, the 1.19 one first', () => {
    expect(strictEgress({ 'enable-encryption-strict-mode': 'true', 'encryption-strict-mode-cidr': '10.0.0.0/8' })?.keys).toBe('encryption-strict-mode-cidr');
    expect(
      strictEgress({
        'enable-encryption-strict-mode-egress': 'true',
        'encryption-strict-egress-cidr': '10.1.0.0/16',
        'encryption-strict-mode-cidr': '10.0.0.0/8',
      })?.cidr,
    ).toBe('10.1.0.0/16');
    expect(strictEgress({ 'encryption-strict-egress-cidr': '10.0.0.0/8' })).toBeUndefined();
  });

  it('flags an empty strict CIDR (the agent exits) and non-Geneve DSR with node encryption', () => {
    const findings = lint({
      ciliumConfig: {
        data: {
          'enable-wireguard': 'true',
          'encrypt-node': 'true',
          'enable-encryption-strict-mode-egress': 'true',
          'encryption-strict-egress-cidr': '',
          'bpf-lb-mode': 'dsr',
        },
        subject: 'cm',
      },
      nodeConfigs: [],
      nodes: [],
      ciliumNodes: new Map(),
      hostPortPods: [],
    }).filter((f) => f.id === 'strict-encryption');
    expect(findings.map((f) => f.severity).sort()).toEqual(['error', 'warning']);
    expect(findings.find((f) => f.severity === 'warning')?.message).toContain('DSR with opt dispatch');
    const geneve = lint({
      ciliumConfig: { data: { 'enable-wireguard': 'true', 'encrypt-node': 'true', 'bpf-lb-mode': 'dsr', 'bpf-lb-dsr-dispatch': 'geneve' }, subject: 'cm' },
      nodeConfigs: [],
      nodes: [],
      ciliumNodes: new Map(),
      hostPortPods: [],
    });
    expect(geneve.filter((f) => f.id === 'strict-encryption')).toEqual([]);
  });

  it('parses hubble-metrics: per-pod contexts and _pod/_ip labels only', () => {
    const metrics = parseHubbleMetrics(
      'dns:query;ignoreAAAA;destinationContext=dns|ip flow:sourceContext=namespace httpV2:labelsContext=source_pod,source_namespace',
    );
    expect(metrics.map((m) => [m.name, m.growing, m.sides])).toEqual([
      ['dns', ['query', 'destinationContext=dns|ip'], 1],
      ['httpV2', ['labelsContext=source_pod'], 1],
    ]);
  });

  it('warns about peered VPC CIDRs that ip-masq-agent would masquerade', () => {
    const found = of(lintFiles([fixture('eni-masquerade', 'ok.yaml')], { peeredCIDRs: ['172.31.0.0/16', '192.168.0.0/16'] }), 'eni-masquerade');
    expect(found).toHaveLength(1);
    expect(found[0]!.message).toContain("peered VPC CIDR 192.168.0.0/16 is missing from ip-masq-agent's nonMasqueradeCIDRs");
    expect(found[0]!.message).not.toContain('172.31.0.0/16');
  });

  it('matches interface patterns as iptables does (a trailing + is a prefix)', () => {
    expect(interfaceMatches('ens+', 'ens5')).toBe(true);
    expect(interfaceMatches('eth+', 'ens5')).toBe(false);
    expect(interfaceMatches('eth0', 'eth0')).toBe(true);
    expect(interfaceMatches('eth0', 'eth01')).toBe(false);
  });

  it('says netd policy routing may be on when its ConfigMap is not given', () => {
    const { input } = loadFiles([fixture('gke-netd-source-valid-mark', 'trigger.yaml')]);
    const withoutConfig = { ...input, netdConfig: undefined };
    const found = lint(withoutConfig).filter((f) => f.id === 'gke-netd-source-valid-mark');
    expect(found[0]?.message).toContain('from ConfigMap netd-config, not given');
    expect(
      lint({ ...input, ciliumConfig: { data: { 'enable-l7-proxy': 'false' }, subject: 'cm' } }).filter((f) => f.id === 'gke-netd-source-valid-mark'),
    ).toEqual([]);
  });

  it('without pods in the input, says hostPort pods "if any" at info level', () => {
    const { input } = loadFiles([fixture('aks-fqdn-kube-proxy', 'trigger.yaml')]);
    const found = lint({ ...input, hostPortPods: [], podCount: undefined }).filter((f) => f.id === 'aks-fqdn-kube-proxy');
    expect(found.map((f) => f.severity)).toEqual(['info']);
    expect(lint({ ...input, hostPortPods: [], podCount: 4 }).filter((f) => f.id === 'aks-fqdn-kube-proxy')).toEqual([]);
  });

  it('covers CIDRs by containment, per family', () => {
    expect(covers(parseCidr('10.0.0.0/8')!, parseCidr('10.3.0.0/16')!)).toBe(true);
    expect(covers(parseCidr('10.3.0.0/16')!, parseCidr('10.0.0.0/8')!)).toBe(false);
    expect(covers(parseCidr('10.0.0.0/8')!, parseCidr('fd00::/64')!)).toBe(false);
    expect(parseCidr('10.0.0.0/33')).toBeUndefined();
    expect(parseCidr('10.0.0.0')).toBeUndefined();
  });
});

describe('lint: Helm values', () => {
  it('maps the Helm values the checks use onto cilium-config keys, with the chart defaults', () => {
    const { data, serviceHost } = helmToConfig({
      routingMode: 'native',
      ipv4NativeRoutingCIDR: '10.0.0.0/16',
      encryption: { enabled: true, type: 'wireguard', nodeEncryption: true, strictMode: { egress: { enabled: true, cidr: '10.0.0.0/8' } } },
      hubble: { metrics: { enabled: ['dns', 'drop:sourceContext=pod'] } },
      k8sServiceHost: 'x.hcp.westeurope.azmk8s.io',
      operator: { unmanagedPodWatcher: { restart: false } },
      cni: { customConf: true },
      policyEnforcementMode: 'never',
    });
    expect(data).toMatchObject({
      'routing-mode': 'native',
      'ipv4-native-routing-cidr': '10.0.0.0/16',
      'enable-ipv4-masquerade': 'true',
      'enable-wireguard': 'true',
      'encrypt-node': 'true',
      'enable-encryption-strict-mode-egress': 'true',
      'encryption-strict-egress-cidr': '10.0.0.0/8',
      'enable-hubble': 'true',
      'hubble-metrics': 'dns drop:sourceContext=pod',
      ipam: 'cluster-pool',
      'cluster-pool-ipv4-cidr': '10.0.0.0/8',
      'kube-proxy-replacement': 'false',
      'unmanaged-pod-watcher-interval': '0',
      'custom-cni-conf': 'true',
      'enable-policy': 'never',
    });
    expect(serviceHost).toBe('x.hcp.westeurope.azmk8s.io');
    expect(helmToConfig({ eni: { enabled: true } }).data).toMatchObject({ ipam: 'eni', 'routing-mode': 'native', 'enable-ipv4-masquerade': 'false' });
  });
});

describe('lint: reading files', () => {
  it('names the file and document of bad input', () => {
    const read = (texts: Record<string, string>) => (file: string) => {
      const text = texts[file];
      if (text === undefined) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
      return text;
    };
    expect(() => loadFiles(['a.yaml'], read({ 'a.yaml': 'a: [1' }))).toThrow(/^a\.yaml is not valid YAML/);
    expect(() => loadFiles(['b.yaml'], read({ 'b.yaml': '---\nkind: Node\napiVersion: v1\nmetadata: {name: x}\n---\n- 1\n' }))).toThrow(
      'b.yaml: document 1: expected a Kubernetes object',
    );
    expect(() => loadFiles(['c.yaml'], read({ 'c.yaml': 'apiVersion: v1\nkind: Node\nmetadata: {}\n' }))).toThrow('c.yaml: Node has no metadata.name');
    expect(() => loadFiles(['missing.yaml'], read({}))).toThrow('missing.yaml: cannot be read: ENOENT');
    expect(() =>
      loadFiles(
        ['d.yaml'],
        read({ 'd.yaml': 'routingMode: native\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cilium-config, namespace: kube-system}\n' }),
      ),
    ).toThrow(LintInputError);
  });

  it('reads only the cilium-config of the given namespace when one is given', () => {
    const text = ['kube-system', 'cilium']
      .map(
        (ns) => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cilium-config, namespace: ${ns}}\ndata: {ipam: ${ns === 'cilium' ? 'eni' : 'kubernetes'}}\n`,
      )
      .join('---\n');
    expect(() => loadFiles(['two.yaml'], () => text)).toThrow('two.yaml: document 1: a second cilium-config (cilium)');
    const { input } = loadFiles(['two.yaml'], () => text, 'cilium');
    expect(input.ciliumConfig).toEqual({ data: { ipam: 'eni' }, subject: 'ConfigMap cilium/cilium-config' });
  });

  it('skips other kinds and counts them', () => {
    const { skipped, input } = loadFiles(
      ['x.yaml'],
      () => 'apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n',
    );
    expect(skipped).toEqual({ 'Service v1': 1, 'ConfigMap v1': 1 });
    expect(input.ciliumConfig).toBeUndefined();
  });

  it('exits 1 only on error findings, and prints one block per finding', () => {
    const findings = lintFiles([fixture('native-routing-cidr', 'trigger.yaml')]);
    expect(exitCodeFor(findings)).toBe(1);
    expect(exitCodeFor(lintFiles([fixture('native-routing-cidr', 'ok.yaml')]))).toBe(0);
    const text = formatFindings(findings, 'f.yaml');
    expect(text).toContain('ERROR    native-routing-cidr  (ConfigMap kube-system/cilium-config (every node))');
    expect(text).toMatch(/1 error, 0 warnings, 1 info\n$/);
  });
});

describe('lint: second findings of the trigger fixtures', () => {
  it('strict-encryption also warns about XDP acceleration with node encryption', () => {
    const warning = of(lintFiles([fixture('strict-encryption', 'trigger.yaml')]), 'strict-encryption').find((f) => f.severity === 'warning');
    expect(warning?.message).toContain('XDP acceleration (bpf-lb-acceleration native; Helm loadBalancer.acceleration=disabled)');
  });
  it('hubble-cardinality names each metric whose labels grow with pods, with the estimate', () => {
    const found = of(lintFiles([fixture('hubble-cardinality', 'trigger.yaml')]), 'hubble-cardinality');
    const flow = found.find((f) => f.message.includes('metric flow'));
    expect(flow?.message).toContain('labelsContext=source_ip,destination_ip');
    expect(flow?.message).not.toContain('source_namespace');
    expect(found.find((f) => f.message.includes('metric drop'))?.message).toContain(
      'drop uses sourceContext=pod, destinationContext=pod: with 3 pods, up to ~9 series',
    );
  });
});

describe('lint: live read errors', () => {
  it("say which object, the status code and the API server's own message", async () => {
    const { ApiException } = await import('@kubernetes/client-node');
    const { LiveReadError } = await import('../../src/lint/live.js');
    const body = JSON.stringify({ kind: 'Status', message: 'pods is forbidden: User "ci" cannot list resource "pods"', code: 403 });
    const err = new LiveReadError('pods', new ApiException(403, 'Unknown API Status Code!', body, {}));
    expect(err.message).toBe('reading pods from the API server failed: HTTP 403: pods is forbidden: User "ci" cannot list resource "pods"');
    expect(new LiveReadError('nodes', new Error('connect ECONNREFUSED 127.0.0.1:1')).message).toBe(
      'reading nodes from the API server failed: connect ECONNREFUSED 127.0.0.1:1',
    );
  });
});

describe('lint: flags', () => {
  it('takes single-valued flags from CMG_* variables, a flag winning, and names the variable in errors', async () => {
    const { parseLintArgs } = await import('../../src/commands/lint.js');
    const parsed = parseLintArgs(['-f', 'a.yaml', '-f', 'b.yaml'], {
      CMG_OUTPUT: 'json',
      CMG_NODE_LABEL: 'io.cilium.migration/cilium-default=true',
      CMG_TIMEOUT: '',
    });
    expect(parsed).toMatchObject({ files: ['a.yaml', 'b.yaml'], output: 'json', timeoutMs: 30_000 });
    expect(parsed.settings.nodeLabel).toEqual({ key: 'io.cilium.migration/cilium-default', value: 'true' });
    expect(parseLintArgs(['-o', 'table'], { CMG_OUTPUT: 'json' }).output).toBe('table');
    expect(() => parseLintArgs([], { CMG_OUTPUT: 'yaml' })).toThrow('CMG_OUTPUT must be table or json, got "yaml"');
    expect(() => parseLintArgs(['-o', 'yaml'], {})).toThrow('-o must be table or json');
    expect(() => parseLintArgs(['--peered-cidr', '10.0.0.0'], {})).toThrow('--peered-cidr must be a CIDR, got "10.0.0.0"');
    expect(() => parseLintArgs(['stray.yaml'], {})).toThrow('unexpected argument "stray.yaml" (files go after -f)');
  });
});
