// Helm values → the cilium-config keys the checks read, the way the chart renders them
// (install/kubernetes/cilium/templates/cilium-configmap.yaml; defaults from values.yaml). Only the
// keys the checks use are mapped; docs/lint.md lists the mapping. Pure.

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The value at a dotted path, or undefined. */
export function at(values: Obj, path: string): unknown {
  let cur: unknown = values;
  for (const part of path.split('.')) {
    if (!isObj(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

const text = (v: unknown): string => (Array.isArray(v) ? v.map(String).join(' ') : String(v));

/** Helm value path → cilium-config key, for values rendered as-is (with `| quote`). */
export const HELM_TO_CONFIG: readonly (readonly [string, string])[] = [
  ['ipv4NativeRoutingCIDR', 'ipv4-native-routing-cidr'],
  ['ipv4.enabled', 'enable-ipv4'],
  ['ipMasqAgent.enabled', 'enable-ip-masq-agent'],
  ['encryption.nodeEncryption', 'encrypt-node'],
  ['loadBalancer.acceleration', 'bpf-lb-acceleration'],
  ['loadBalancer.mode', 'bpf-lb-mode'],
  ['loadBalancer.dsrDispatch', 'bpf-lb-dsr-dispatch'],
  ['bpf.masquerade', 'enable-bpf-masquerade'],
  ['egressMasqueradeInterfaces', 'egress-masquerade-interfaces'],
  ['l7Proxy', 'enable-l7-proxy'],
  ['cni.customConf', 'custom-cni-conf'],
  ['bpf.hostLegacyRouting', 'enable-host-legacy-routing'],
  ['tunnel', 'tunnel'],
];

export interface HelmRendering {
  data: Record<string, string>;
  /** The agent's KUBERNETES_SERVICE_HOST (Helm k8sServiceHost, set as env on the agent DaemonSet). */
  serviceHost?: string;
}

/** The cilium-config keys the checks read, from Helm values (defaults as in the chart's values.yaml). */
export function helmToConfig(values: Obj): HelmRendering {
  const data: Record<string, string> = {};
  const eni = at(values, 'eni.enabled') === true;
  const gke = at(values, 'gke.enabled') === true;
  for (const [path, key] of HELM_TO_CONFIG) {
    const value = at(values, path);
    if (value !== undefined && value !== null) data[key] = text(value);
  }
  const routing = at(values, 'routingMode');
  data['routing-mode'] = typeof routing === 'string' && routing !== '' ? routing : eni || gke ? 'native' : 'tunnel';
  // The 1.18 chart defaults masquerading off in ENI mode; on everywhere else.
  const masq = at(values, 'enableIPv4Masquerade');
  data['enable-ipv4-masquerade'] = masq === undefined || masq === null ? String(!eni) : text(masq);
  const mode = at(values, 'ipam.mode');
  data.ipam = eni ? 'eni' : typeof mode === 'string' && mode !== '' ? mode : 'cluster-pool';
  if (data.ipam === 'cluster-pool') data['cluster-pool-ipv4-cidr'] = text(at(values, 'ipam.operator.clusterPoolIPv4PodCIDRList') ?? ['10.0.0.0/8']);
  if (at(values, 'encryption.enabled') === true) {
    const type = at(values, 'encryption.type') ?? 'ipsec';
    if (type === 'ipsec') data['enable-ipsec'] = 'true';
    if (type === 'wireguard') data['enable-wireguard'] = 'true';
  }
  for (const prefix of ['encryption.strictMode', 'encryption.strictMode.egress']) {
    if (at(values, `${prefix}.enabled`) === true) {
      data['enable-encryption-strict-mode-egress'] = 'true';
      data['encryption-strict-egress-cidr'] = text(at(values, `${prefix}.cidr`) ?? '');
    }
  }
  const hubble = at(values, 'hubble.enabled');
  data['enable-hubble'] = String(hubble === undefined ? true : hubble === true);
  const metrics = at(values, 'hubble.metrics.enabled');
  if (Array.isArray(metrics) && metrics.length > 0) data['hubble-metrics'] = metrics.map(String).join(' ');
  const kpr = at(values, 'kubeProxyReplacement');
  data['kube-proxy-replacement'] = kpr === undefined || kpr === null ? 'false' : text(kpr);
  const policy = at(values, 'policyEnforcementMode');
  if (typeof policy === 'string') data['enable-policy'] = policy.toLowerCase();
  const restart = at(values, 'operator.unmanagedPodWatcher.restart');
  const interval = at(values, 'operator.unmanagedPodWatcher.intervalSeconds') ?? 15;
  data['unmanaged-pod-watcher-interval'] = restart === false ? '0' : `${Number(interval)}s`;
  const host = at(values, 'k8sServiceHost');
  return { data, ...(typeof host === 'string' && host !== '' ? { serviceHost: host } : {}) };
}
