// The checks. Each is a pure function of one context (a node's effective Cilium options, or
// cilium-config alone when no Node is known) plus the read-only cluster facts, and returns
// findings whose message says what breaks and which Helm value fixes it. The facts behind each
// check, and where they were read, are in docs/lint.md (one entry per id).

import { parseCidr, parseCidrs, coveredBy, overlaps, type Cidr } from './cidr.js';
import { keptOffLabel, mayRunOn } from './placement.js';
import {
  bool,
  encryptionName,
  ipam,
  ipv4Masquerade,
  kubeProxyReplacement,
  l7Proxy,
  list,
  nodeConfigsFor,
  routingMode,
  str,
  strictEgress,
  nodeEncryption,
} from './options.js';
import type { CiliumOptions, LintDaemonSet, LintInput, LintNode, LintOptions, Severity } from './types.js';

/** What a check sees: the options in force (on `node`, or cluster-wide without one) and the cluster. */
export interface CheckContext {
  options: CiliumOptions;
  node?: LintNode;
  input: LintInput;
  settings: LintOptions;
}

/** A finding before the runner names its subject. `subject` overrides the node/config subject. */
export interface Raw {
  severity: Severity;
  message: string;
  subject?: string;
}

export interface Check {
  id: string;
  /** node: judged on each node's effective options; cluster: once, on cilium-config and all nodes. */
  scope: 'node' | 'cluster';
  run(ctx: CheckContext): Raw[];
}

// ---------------------------------------------------------------------------------------------
// Shared facts

/** Every pod range the cluster knows: Node spec.podCIDRs, CiliumNode spec.ipam.podCIDRs, and cluster-pool-ipv4-cidr. */
export function podRanges(ctx: CheckContext): { cidr: Cidr; from: string }[] {
  const out: { cidr: Cidr; from: string }[] = [];
  const seen = new Set<string>();
  const add = (text: string, from: string) => {
    const cidr = parseCidr(text);
    if (!cidr || seen.has(`${cidr.text}|${from}`)) return;
    seen.add(`${cidr.text}|${from}`);
    out.push({ cidr, from });
  };
  for (const node of ctx.input.nodes) for (const text of node.podCIDRs) add(text, `Node ${node.name}`);
  for (const [name, cidrs] of ctx.input.ciliumNodes) for (const text of cidrs) add(text, `CiliumNode ${name}`);
  if (ipam(ctx.options) === 'cluster-pool') for (const text of list(ctx.options, 'cluster-pool-ipv4-cidr')) add(text, 'cluster-pool-ipv4-cidr');
  return out;
}

function describeRanges(ranges: readonly { cidr: Cidr; from: string }[], max = 3): string {
  const shown = ranges.slice(0, max).map((r) => `${r.cidr.text} (${r.from})`);
  return ranges.length > max ? `${shown.join(', ')} and ${ranges.length - max} more` : shown.join(', ');
}

const isMigrated = (node: LintNode, settings: LintOptions): boolean => node.labels[settings.nodeLabel.key] === settings.nodeLabel.value;

// ---------------------------------------------------------------------------------------------
// 1. native-routing-cidr

/** IPAM modes the agent lets run without a native-routing CIDR (pkg/option/config.go checkIPv4NativeRoutingCIDR). */
const AUTO_NATIVE_CIDR = new Set(['eni', 'alibabacloud']);

export const nativeRoutingCidr: Check = {
  id: 'native-routing-cidr',
  scope: 'node',
  run(ctx) {
    const o = ctx.options;
    if (routingMode(o) !== 'native' || !ipv4Masquerade(o) || bool(o, 'enable-ipv4', true) === false) return [];
    // With ip-masq-agent, its nonMasqueradeCIDRs decide instead (the chart skips the requirement too).
    if (bool(o, 'enable-ip-masq-agent', false)) return [];
    const encryption = encryptionName(o);
    const unencrypted = encryption !== undefined && !nodeEncryption(o);
    const severity: Severity = unencrypted ? 'error' : 'warning';
    const consequence = unencrypted
      ? ` With ${encryption} on and encrypt-node off, that masqueraded pod traffic leaves the node as node traffic: unencrypted and outside pod-identity policy.`
      : ' Network policies that select the source pod do not match it.';
    const text = str(o, 'ipv4-native-routing-cidr');
    if (text === '') {
      if (AUTO_NATIVE_CIDR.has(ipam(o))) return [];
      return [
        {
          severity: 'error',
          message:
            'routing-mode is native with IPv4 masquerading, but ipv4-native-routing-cidr is not set: the agent refuses to start ' +
            '("native routing cidr must be configured"; the chart fails to render). Set Helm ipv4NativeRoutingCIDR to a range ' +
            'that covers every pod CIDR.',
        },
      ];
    }
    const native = parseCidr(text);
    if (!native)
      return [
        {
          severity: 'error',
          message: `ipv4-native-routing-cidr ${JSON.stringify(text)} is not a CIDR: the agent refuses to start. Fix Helm ipv4NativeRoutingCIDR.`,
        },
      ];
    const outside = podRanges(ctx).filter((r) => r.cidr.family === 4 && !coveredBy([native], r.cidr));
    if (outside.length === 0) return [];
    return [
      {
        severity,
        message:
          `pod CIDR ${describeRanges(outside)} lies outside ipv4-native-routing-cidr ${native.text} (routing-mode native, masquerading on): ` +
          `pod-to-pod traffic to it is masqueraded to the node IP.${consequence} Widen Helm ipv4NativeRoutingCIDR to cover every pod CIDR.`,
      },
    ];
  },
};

// ---------------------------------------------------------------------------------------------
// 2. strict-encryption

const XDP_OFF = new Set(['', 'disabled', 'none']);

export const strictEncryption: Check = {
  id: 'strict-encryption',
  scope: 'node',
  run(ctx) {
    const o = ctx.options;
    const out: Raw[] = [];
    const strict = strictEgress(o);
    if (strict) {
      if (strict.cidr === '') {
        out.push({
          severity: 'error',
          message: `strict egress encryption is on but ${strict.keys} is empty: the agent exits ("Cannot parse CIDR"). Set Helm encryption.strictMode.egress.cidr to the pod CIDR.`,
        });
      } else {
        const cidr = parseCidr(strict.cidr);
        if (!cidr) {
          out.push({
            severity: 'error',
            message: `${strict.keys} ${JSON.stringify(strict.cidr)} is not a CIDR: the agent exits. Fix Helm encryption.strictMode.egress.cidr.`,
          });
        } else {
          const outside = podRanges(ctx).filter((r) => r.cidr.family === 4 && !coveredBy([cidr], r.cidr));
          if (outside.length > 0) {
            out.push({
              severity: 'error',
              message:
                `pod CIDR ${describeRanges(outside)} lies outside ${strict.keys} ${cidr.text}: strict mode drops unencrypted traffic only ` +
                'from and to that CIDR, so those pods can still send unencrypted. Widen Helm encryption.strictMode.egress.cidr.',
            });
          }
        }
      }
    }
    const encryption = encryptionName(o);
    if (encryption && nodeEncryption(o)) {
      const xdp = str(o, 'bpf-lb-acceleration') || str(o, 'node-port-acceleration');
      const mode = str(o, 'bpf-lb-mode').toLowerCase() || str(o, 'node-port-mode').toLowerCase();
      const dispatch = str(o, 'bpf-lb-dsr-dispatch').toLowerCase() || 'opt';
      const reasons: string[] = [];
      if (!XDP_OFF.has(xdp.toLowerCase())) reasons.push(`XDP acceleration (bpf-lb-acceleration ${xdp}; Helm loadBalancer.acceleration=disabled)`);
      if ((mode === 'dsr' || mode === 'hybrid') && dispatch !== 'geneve') {
        reasons.push(`DSR with ${dispatch} dispatch (bpf-lb-mode ${mode}; Helm loadBalancer.dsrDispatch=geneve or loadBalancer.mode=snat)`);
      }
      if (reasons.length > 0) {
        out.push({
          severity: 'warning',
          message:
            `node encryption (${encryption}, encrypt-node) with ${reasons.join(' and ')}: north-south load-balancer traffic that a node ` +
            'forwards to a backend on another node leaves unencrypted. Change the Helm values named.',
        });
      }
    }
    return out;
  },
};

// ---------------------------------------------------------------------------------------------
// 3. hubble-cardinality

/** Context values whose label takes one value per pod, IP, identity or DNS name (Documentation/observability/metrics.rst). */
const PER_POD_CONTEXTS = new Set(['pod', 'pod-name', 'ip', 'identity', 'dns']);
const CONTEXT_OPTIONS = /^(source|destination)(Egress|Ingress)?Context$/;

interface HubbleMetric {
  name: string;
  growing: string[];
  /** How many of source/destination grow with pods (0–2), for the estimate. */
  sides: number;
}

export function parseHubbleMetrics(text: string): HubbleMetric[] {
  const out: HubbleMetric[] = [];
  for (const entry of text.split(/\s+/).filter(Boolean)) {
    const [name = '', optionText = ''] = entry.split(/:(.*)/s);
    const growing: string[] = [];
    let source = false;
    let destination = false;
    for (const option of optionText.split(';').filter(Boolean)) {
      const [key = '', value = ''] = option.split(/=(.*)/s);
      const values = value.split(/[|,]/).filter(Boolean);
      if (CONTEXT_OPTIONS.test(key)) {
        const bad = values.filter((v) => PER_POD_CONTEXTS.has(v));
        if (bad.length > 0) {
          growing.push(`${key}=${bad.join('|')}`);
          if (key.startsWith('source')) source = true;
          else destination = true;
        }
      } else if (name === 'dns' && key === 'query') {
        growing.push('query'); // a `query` label per distinct DNS name queried
      } else if (key === 'labelsContext') {
        const bad = values.filter((v) => /_(pod|ip)$/.test(v));
        if (bad.length > 0) {
          growing.push(`labelsContext=${bad.join(',')}`);
          if (bad.some((v) => v.startsWith('source'))) source = true;
          if (bad.some((v) => v.startsWith('destination'))) destination = true;
        }
      }
    }
    if (growing.length > 0) out.push({ name, growing, sides: Number(source) + Number(destination) });
  }
  return out;
}

export const hubbleCardinality: Check = {
  id: 'hubble-cardinality',
  scope: 'node',
  run(ctx) {
    const o = ctx.options;
    if (!bool(o, 'enable-hubble', false)) return [];
    const metrics = parseHubbleMetrics(str(o, 'hubble-metrics'));
    if (metrics.length === 0) return [];
    const pods = ctx.input.podCount;
    return metrics.map((m) => {
      const estimate =
        m.sides === 0
          ? 'series grow with the distinct DNS names queried'
          : pods === undefined
            ? 'series grow with the number of pods (and peers)'
            : `with ${pods} pods, up to ~${(m.sides >= 2 ? pods * pods : pods).toLocaleString('en-US')} series per other label combination`;
      return {
        severity: 'warning' as const,
        message:
          `Hubble metric ${m.name} uses ${m.growing.join(', ')}: ${estimate}, on every node's metrics endpoint. ` +
          'Use namespace, workload or app contexts in Helm hubble.metrics.enabled.',
      };
    });
  },
};

// ---------------------------------------------------------------------------------------------
// 4. aks-fqdn-kube-proxy

export const AKS_FQDN_ANNOTATION = 'kubernetes.azure.com/set-kube-service-host-fqdn';
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

export const aksFqdnKubeProxy: Check = {
  id: 'aks-fqdn-kube-proxy',
  scope: 'cluster',
  run(ctx) {
    const agent = ctx.input.agent;
    if (!agent || kubeProxyReplacement(ctx.options)) return [];
    const host = agent.env.KUBERNETES_SERVICE_HOST ?? '';
    const fqdn = host !== '' && !IPV4.test(host) && !host.includes(':');
    const annotated = Object.hasOwn(agent.podAnnotations, AKS_FQDN_ANNOTATION);
    if (!fqdn && !annotated) return [];
    const why = fqdn ? `KUBERNETES_SERVICE_HOST is the name ${host}` : `its pods carry ${AKS_FQDN_ANNOTATION}`;
    const hostPort = ctx.input.hostPortPods;
    const podsKnown = ctx.input.podCount !== undefined;
    if (podsKnown && hostPort.length === 0) return [];
    const pods = hostPort.length > 0 ? `${hostPort.length} hostPort pod(s) (e.g. ${hostPort[0]!.namespace}/${hostPort[0]!.name})` : 'hostPort pods (if any)';
    return [
      {
        severity: hostPort.length > 0 ? 'warning' : 'info',
        subject: `DaemonSet ${agent.namespace}/${agent.name}`,
        message:
          `the Cilium agent reaches the API server by name (${why}) while kube-proxy replacement is off: it can start before ` +
          `kube-proxy has written its rules and program its iptables chains in the wrong order for ${pods}. ` +
          'Set Helm kubeProxyReplacement=true (with k8sServiceHost/k8sServicePort), or start Cilium only after kube-proxy.',
      },
    ];
  },
};

// ---------------------------------------------------------------------------------------------
// 5. eni-masquerade

/** Interface names by node OS image, when the nodes do not say: [inference] AL2023/Bottlerocket use predictable names. */
export function guessInterfaces(nodes: readonly LintNode[]): string[] {
  const names = new Set<string>();
  for (const node of nodes) {
    const os = (node.osImage ?? '').toLowerCase();
    if (os.includes('amazon linux 2023') || os.includes('bottlerocket')) names.add('ens5');
    else if (os.includes('amazon linux 2')) names.add('eth0');
  }
  return [...names];
}

/** An iptables-style interface pattern: a trailing + matches any suffix. */
export const interfaceMatches = (pattern: string, name: string): boolean => (pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : name === pattern);

export const eniMasquerade: Check = {
  id: 'eni-masquerade',
  scope: 'node',
  run(ctx) {
    const o = ctx.options;
    if (ipam(o) !== 'eni' || !ipv4Masquerade(o)) return [];
    const out: Raw[] = [];
    const iptables = !bool(o, 'enable-bpf-masquerade', false);
    const patterns = list(o, 'egress-masquerade-interfaces');
    if (iptables && patterns.length === 0) {
      out.push({
        severity: 'warning',
        message:
          'ipam eni with iptables masquerading and no egress-masquerade-interfaces: the rules masquerade only traffic from the ' +
          "node's pod CIDR, which ENI mode does not have, so pod traffic leaving the VPC is not masqueraded. " +
          "Set Helm egressMasqueradeInterfaces (e.g. the nodes' interface names) or bpf.masquerade=true.",
      });
    }
    if (patterns.length > 0) {
      const known = ctx.settings.interfaces.length > 0 ? ctx.settings.interfaces : guessInterfaces(ctx.input.nodes);
      const source = ctx.settings.interfaces.length > 0 ? 'given' : "guessed from the nodes' OS image";
      if (known.length > 0 && !known.some((name) => patterns.some((p) => interfaceMatches(p, name)))) {
        out.push({
          severity: 'warning',
          message:
            `egress-masquerade-interfaces ${patterns.join(',')} matches none of the interfaces ${known.join(', ')} (${source}): ` +
            'pod traffic leaving the VPC is not masqueraded. Fix Helm egressMasqueradeInterfaces.',
        });
      }
    }
    const peered = parseCidrs(ctx.settings.peeredCIDRs).cidrs;
    if (peered.length > 0) {
      const agent = bool(o, 'enable-ip-masq-agent', false);
      const exempt = agent
        ? parseCidrs(ctx.input.ipMasqAgent?.nonMasqueradeCIDRs ?? []).cidrs
        : parseCidrs([str(o, 'ipv4-native-routing-cidr')].filter(Boolean)).cidrs;
      if (agent && !ctx.input.ipMasqAgent) return out; // nonMasqueradeCIDRs unknown: nothing to judge
      const missing = peered.filter((p) => !coveredBy(exempt, p));
      if (missing.length > 0) {
        const where = agent ? "ip-masq-agent's nonMasqueradeCIDRs" : 'ipv4-native-routing-cidr';
        const fix = agent ? 'Add them to Helm ipMasqAgent.config.nonMasqueradeCIDRs' : 'Enable Helm ipMasqAgent with them in config.nonMasqueradeCIDRs';
        out.push({
          severity: 'warning',
          message:
            `peered VPC CIDR ${missing.map((c) => c.text).join(', ')} is missing from ${where}: pod traffic to it is masqueraded to the ` +
            `node IP and replies can be dropped by reverse-path filtering. ${fix}.`,
        });
      }
    }
    return out;
  },
};

// ---------------------------------------------------------------------------------------------
// 6. gke-netd-source-valid-mark

/**
 * netd's setting: the flag's value (with `$(VAR)` resolved from the container env, or from the
 * netd-config key the env refers to, as GKE's manifest does), else netd-config's own key.
 * true / false, or 'unknown' when the value comes from a ConfigMap that was not given.
 */
export function netdSetting(netd: LintDaemonSet, config: Readonly<Record<string, string>> | undefined, flag: string): boolean | 'unknown' {
  const resolve = (value: string): string | undefined =>
    value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (_, name: string) => {
      if (netd.env[name] !== undefined) return netd.env[name];
      const ref = netd.envFromConfigMap?.[name];
      const fromConfig = ref && config ? config[ref.key] : undefined;
      return fromConfig ?? '\u0000';
    });
  for (const arg of netd.args) {
    if (arg !== `--${flag}` && !arg.startsWith(`--${flag}=`)) continue;
    if (arg === `--${flag}`) return true;
    const value = resolve(arg.slice(flag.length + 3)) ?? '';
    if (value.includes('\u0000')) return 'unknown';
    return value.trim().toLowerCase() !== 'false' && value.trim() !== '';
  }
  const key = flag.replace(/-/g, '_');
  const fromConfig = config?.[key] ?? config?.[flag];
  if (fromConfig !== undefined) return fromConfig.trim().toLowerCase() === 'true';
  return false;
}

/**
 * Replaces the DaemonSet-time netd warning the webhook gave before (docs/lint.md): judged on
 * netd's spec and the Nodes, so it also sees a netd that is already running, and falls silent once
 * netd is kept off the migrated nodes (its nodeSelector or required node affinity).
 */
export const gkeNetdSourceValidMark: Check = {
  id: 'gke-netd-source-valid-mark',
  scope: 'cluster',
  run(ctx) {
    const netd = ctx.input.netd;
    if (!netd) return [];
    const settings = ['enable-policy-routing', 'enable-source-valid-mark']
      .map((flag) => ({ flag, on: netdSetting(netd, ctx.input.netdConfig, flag) }))
      .filter((s) => s.on !== false);
    if (settings.length === 0) return [];
    if (!l7Proxy(ctx.options)) return [];
    const { key, value } = ctx.settings.nodeLabel;
    let where: string;
    if (ctx.input.nodes.length > 0) {
      const reached = ctx.input.nodes.filter((n) => isMigrated(n, ctx.settings) && mayRunOn(netd.placement, n)).map((n) => n.name);
      if (reached.length === 0) return [];
      const shown = reached.slice(0, 3).join(', ');
      where = `may run on ${reached.length} migrated node${reached.length === 1 ? '' : 's'} (${shown}${reached.length > 3 ? ', …' : ''})`;
    } else {
      // No Nodes given: a migrated node is known only by the label.
      if (keptOffLabel(netd.placement, key, value)) return [];
      where = `is not kept off ${key}=${value} nodes`;
    }
    const described = settings.map((s) => (s.on === 'unknown' ? `${s.flag} (from ConfigMap netd-config, not given)` : s.flag)).join(' and ');
    return [
      {
        severity: 'warning',
        subject: `DaemonSet ${netd.namespace}/${netd.name}`,
        message:
          `netd ${where} with ${described}, which sets src_valid_mark=1, while Cilium's L7 proxy is on: there Cilium's DNS ` +
          'proxy packets are dropped, breaking DNS for pods under FQDN policies (cilium/cilium#48706). Keep netd off migrated ' +
          `nodes (a \`rules\` entry giving kube-system/netd the legacy role adds ${key} NotIn [${value}]) or turn policy routing ` +
          'off (GKE: intranode visibility); else Helm l7Proxy=false.',
      },
    ];
  },
};

// ---------------------------------------------------------------------------------------------
// 7. migration-leftovers

export const MIGRATION_LABEL = 'io.cilium.migration/cilium-default';

export const migrationLeftovers: Check = {
  id: 'migration-leftovers',
  scope: 'cluster',
  run(ctx) {
    const nodes = ctx.input.nodes;
    if (nodes.length === 0) return [];
    const config = ctx.input.ciliumConfig?.data ?? {};
    const everyLabelled = nodes.every((n) => isMigrated(n, ctx.settings) || n.labels[MIGRATION_LABEL] === 'true');
    const everywhere = ctx.input.nodeConfigs.filter((c) => nodes.every((n) => nodeConfigsFor(n, [c]).length > 0));
    if (!everyLabelled && everywhere.length === 0) return [];
    const flips: string[] = [];
    if (bool(config, 'custom-cni-conf', false)) flips.push('cni.customConf=false');
    if (str(config, 'enable-policy').toLowerCase() === 'never') flips.push('policyEnforcementMode=default');
    const interval = str(config, 'unmanaged-pod-watcher-interval');
    if (interval === '0' || interval === '0s') flips.push('operator.unmanagedPodWatcher.restart=true');
    if (bool(config, 'enable-host-legacy-routing', false)) flips.push('bpf.hostLegacyRouting=false (optional, brief interruption per node)');
    if (flips.length === 0) return [];
    const cnc = everywhere.map((c) => `${c.namespace}/${c.name}`);
    return [
      {
        severity: 'warning',
        message:
          `every node is migrated, but migration-time values remain in cilium-config: set Helm ${flips.join(', ')}, roll the agents` +
          (cnc.length > 0 ? `, then delete CiliumNodeConfig ${cnc.join(', ')}` : '') +
          " (Cilium's migration guide, post-migration).",
      },
    ];
  },
};

// ---------------------------------------------------------------------------------------------
// 8. pod-cidr-plan

export const podCidrPlan: Check = {
  id: 'pod-cidr-plan',
  scope: 'cluster',
  run(ctx) {
    if (!ctx.input.ciliumConfig) return []; // no Cilium configuration given: nothing to plan from
    const mode = ipam(ctx.options);
    const nodeRanges = ctx.input.nodes.flatMap((n) => parseCidrs(n.podCIDRs).cidrs);
    const overlap =
      'node-by-node replacement: a pod started on a migrated node before Cilium runs gets an IP Cilium may hand out again (duplicate IPs). ' +
      "The reaper's reaper.target=duplicate-ip fits.";
    const separate =
      "old-CNI pods keep IPs outside Cilium's ranges, so no duplicate IPs, but early pods on migrated nodes stay outside Cilium " +
      "(no policy, no visibility) until restarted. The reaper's reaper.target=any-unmanaged fits.";
    if (mode === 'kubernetes') {
      return [{ severity: 'info', message: `ipam kubernetes: Cilium reuses each Node's spec.podCIDR, the range the old CNI used (as on GKE): ${overlap}` }];
    }
    if (mode === 'cluster-pool') {
      const pool = parseCidrs(list(ctx.options, 'cluster-pool-ipv4-cidr')).cidrs;
      if (pool.length === 0 || nodeRanges.length === 0) return []; // nothing to compare: say nothing rather than guess
      const shared = pool.filter((p) => nodeRanges.some((n) => overlaps(p, n)));
      if (shared.length > 0) {
        return [
          {
            severity: 'info',
            message: `ipam ${mode}: cluster-pool-ipv4-cidr ${shared.map((c) => c.text).join(', ')} overlaps the Nodes' spec.podCIDRs: ${overlap}`,
          },
        ];
      }
      return [
        {
          severity: 'info',
          message: `ipam ${mode}: cluster-pool-ipv4-cidr ${pool.map((c) => c.text).join(', ')} is separate from the Nodes' spec.podCIDRs (Cilium's migration guide): ${separate}`,
        },
      ];
    }
    if (mode === 'multi-pool') {
      return [
        { severity: 'info', message: "ipam multi-pool: cannot compare Cilium's pools with the Nodes' spec.podCIDRs; check by hand which reaper.target fits." },
      ];
    }
    return [
      {
        severity: 'info',
        message:
          `ipam ${mode}: pod IPs come from the cloud network, which hands each address out once, so duplicates are unlikely [inference]; ` +
          `early old-CNI pods stay outside Cilium until restarted. The reaper's reaper.target=any-unmanaged fits.`,
      },
    ];
  },
};

export const CHECKS: readonly Check[] = [
  nativeRoutingCidr,
  strictEncryption,
  hubbleCardinality,
  aksFqdnKubeProxy,
  eniMasquerade,
  gkeNetdSourceValidMark,
  migrationLeftovers,
  podCidrPlan,
];

export const CHECK_IDS: readonly string[] = CHECKS.map((c) => c.id);
