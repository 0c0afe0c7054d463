// The live cluster, read once (the lint's edge): list Nodes, CiliumNodes, CiliumNodeConfigs and
// Pods, and get cilium-config, the agent DaemonSet, netd and its ConfigMap, and ip-masq-agent's
// ConfigMap. What does not exist (404: no CRD, no netd) is simply absent. Each call is bounded.

import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { isNotFound, timeoutOptions, withDeadline } from '../cluster/lookup.js';
import { addObject, finish, newCollector } from './load.js';
import type { LintInput } from './types.js';

type Obj = Record<string, unknown>;

export interface LiveOptions {
  ciliumNamespace: string;
  timeoutMs: number;
}

/** Reads the objects the checks need; the same LintInput the files give. */
export async function readLiveInput(kc: KubeConfig, options: LiveOptions): Promise<LintInput> {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const ms = options.timeoutMs;
  const ns = options.ciliumNamespace;
  const call = async <T>(what: string, run: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await withDeadline(run(), ms, what);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
  const o = () => timeoutOptions(ms);
  const [nodes, pods, ciliumConfig, netdConfig, masq, agent, netd, ciliumNodes, nodeConfigs] = await Promise.all([
    call('nodes', () => core.listNode({}, o())),
    call('pods', () => core.listPodForAllNamespaces({}, o())),
    call(`configmap ${ns}/cilium-config`, () => core.readNamespacedConfigMap({ namespace: ns, name: 'cilium-config' }, o())),
    call('configmap kube-system/netd-config', () => core.readNamespacedConfigMap({ namespace: 'kube-system', name: 'netd-config' }, o())),
    call(`configmap ${ns}/ip-masq-agent`, () => core.readNamespacedConfigMap({ namespace: ns, name: 'ip-masq-agent' }, o())),
    call(`daemonset ${ns}/cilium`, () => apps.readNamespacedDaemonSet({ namespace: ns, name: 'cilium' }, o())),
    call('daemonset kube-system/netd', () => apps.readNamespacedDaemonSet({ namespace: 'kube-system', name: 'netd' }, o())),
    call('ciliumnodes', () => custom.listClusterCustomObject({ group: 'cilium.io', version: 'v2', plural: 'ciliumnodes' }, o())),
    // CiliumNodeConfig: v2 where served, else v2alpha1 (the per-node-config docs' example is v2alpha1).
    call('ciliumnodeconfigs', async () => {
      try {
        return await custom.listCustomObjectForAllNamespaces({ group: 'cilium.io', version: 'v2', resourcePlural: 'ciliumnodeconfigs' }, o());
      } catch (err) {
        if (!isNotFound(err)) throw err;
        return await custom.listCustomObjectForAllNamespaces({ group: 'cilium.io', version: 'v2alpha1', resourcePlural: 'ciliumnodeconfigs' }, o());
      }
    }),
  ]);
  const c = newCollector();
  const add = (raw: unknown, apiVersion: string, kind: string, where: string) => {
    if (raw) addObject(c, { ...(raw as Obj), apiVersion, kind }, where, ns);
  };
  for (const n of nodes?.items ?? []) add(n, 'v1', 'Node', 'live Node');
  for (const p of pods?.items ?? []) add(p, 'v1', 'Pod', 'live Pod');
  add(ciliumConfig, 'v1', 'ConfigMap', `live ConfigMap ${ns}/cilium-config`);
  add(netdConfig, 'v1', 'ConfigMap', 'live ConfigMap kube-system/netd-config');
  add(masq, 'v1', 'ConfigMap', `live ConfigMap ${ns}/ip-masq-agent`);
  add(agent, 'apps/v1', 'DaemonSet', `live DaemonSet ${ns}/cilium`);
  add(netd, 'apps/v1', 'DaemonSet', 'live DaemonSet kube-system/netd');
  for (const cn of ((ciliumNodes as Obj | undefined)?.items as unknown[] | undefined) ?? []) add(cn, 'cilium.io/v2', 'CiliumNode', 'live CiliumNode');
  for (const cnc of ((nodeConfigs as Obj | undefined)?.items as unknown[] | undefined) ?? []) add(cnc, 'cilium.io/v2', 'CiliumNodeConfig', 'live CiliumNodeConfig');
  return finish(c, pods !== undefined);
}
