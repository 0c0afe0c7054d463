// The live cluster, read once (the lint's edge): list Nodes, CiliumNodes, CiliumNodeConfigs and
// Pods, and get cilium-config, the agent DaemonSet, netd and its ConfigMap, and ip-masq-agent's
// ConfigMap. What does not exist (404: no CRD, no netd) is simply absent. Each call is bounded.

import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { httpStatus, isNotFound, timeoutOptions, withDeadline } from '../cluster/kube-client.js';
import { addObject, finish, newCollector } from './load.js';
import type { LintInput } from './types.js';

type Obj = Record<string, unknown>;

/** A list or get the API server refused: the object, the status code and the server's own message. */
export class LiveReadError extends Error {
  constructor(what: string, err: unknown) {
    const status = httpStatus(err);
    let detail = (err as Error)?.message ?? String(err);
    if (status !== undefined) {
      const body = (err as { body?: unknown }).body;
      let message: string | undefined;
      try {
        message = (typeof body === 'string' ? (JSON.parse(body) as { message?: string }) : (body as { message?: string } | undefined))?.message;
      } catch {
        message = undefined;
      }
      detail = `HTTP ${status}${message ? `: ${message}` : ''}`;
    }
    super(`reading ${what} from the API server failed: ${detail}`, { cause: err });
    this.name = 'LiveReadError';
  }
}

/** 429 (priority and fairness, or storage still initializing) and 503 are retried after a pause. */
const RETRYABLE = new Set([429, 503]);
const MAX_ATTEMPTS = 5;

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
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await withDeadline(run(), ms, what);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        const status = httpStatus(err);
        if (status !== undefined && RETRYABLE.has(status) && attempt < MAX_ATTEMPTS) {
          await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt)); // 0.4 s … 3.2 s, bounded
          continue;
        }
        throw new LiveReadError(what, err);
      }
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
  for (const cnc of ((nodeConfigs as Obj | undefined)?.items as unknown[] | undefined) ?? [])
    add(cnc, 'cilium.io/v2', 'CiliumNodeConfig', 'live CiliumNodeConfig');
  return finish(c, pods !== undefined);
}
