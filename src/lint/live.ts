// The live cluster, read once (the lint's edge): list Nodes, CiliumNodes, CiliumNodeConfigs and
// Pods, and get cilium-config, the agent DaemonSet, netd and its ConfigMap, and ip-masq-agent's
// ConfigMap. What does not exist (404: no CRD, no netd) is simply absent. Each call is bounded.

import { httpStatus, isNotFound, withDeadline } from '../cluster/kube-client.js';
import type { KubeAccess } from '../cluster/kube-config.js';
import { listAllPages, request, seg } from '../cluster/raw-api.js';
import { addObject, finish, LintInputError, newCollector, type Collector } from './load.js';
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
  /**
   * Leave pods out (no podCount, no hostPortPods): for a caller that holds every pod already
   * (report, through lint/from-view.ts) and adds them itself.
   */
  withoutPods?: boolean;
}

/** Reads the objects the checks need; the same LintInput the files give (without pods, with `withoutPods`). */
export async function readLiveInput(kc: KubeAccess, options: LiveOptions): Promise<LintInput> {
  const ms = options.timeoutMs;
  const ns = options.ciliumNamespace;
  const call = async <T>(what: string, run: () => Promise<T>): Promise<T | undefined> => {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await withDeadline(run(), ms, what);
      } catch (err) {
        if (err instanceof LintInputError) throw err;
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
  const read = (path: string) => () => request<Obj>(kc, { path, timeoutMs: ms });
  const configMap = (namespace: string, name: string) => read(`/api/v1/namespaces/${seg(namespace)}/configmaps/${seg(name)}`);
  const daemonSet = (namespace: string, name: string) => read(`/apis/apps/v1/namespaces/${seg(namespace)}/daemonsets/${seg(name)}`);
  // Nodes and pods: raw JSON, page by page, each page folded into a collector of its own at once
  // (the checks keep a count and the host-port pods), never every pod as a typed object at once:
  // at 20,000 pods that was most of `report`'s peak memory (docs/benchmarks.md, "Scale").
  const paged = (path: string, kind: string, where: string) => async (): Promise<Collector> => {
    const scratch = newCollector();
    await listAllPages(kc, path, {}, { pageSize: 500, pageTimeoutMs: ms }, (items) => {
      for (const item of items) addObject(scratch, { ...item, apiVersion: 'v1', kind }, where, ns);
    });
    return scratch;
  };
  const [nodes, pods, ciliumConfig, netdConfig, masq, agent, netd, ciliumNodes, nodeConfigs] = await Promise.all([
    call('nodes', paged('/api/v1/nodes', 'Node', 'live Node')),
    options.withoutPods ? Promise.resolve(undefined) : call('pods', paged('/api/v1/pods', 'Pod', 'live Pod')),
    call(`configmap ${ns}/cilium-config`, configMap(ns, 'cilium-config')),
    call('configmap kube-system/netd-config', configMap('kube-system', 'netd-config')),
    call(`configmap ${ns}/ip-masq-agent`, configMap(ns, 'ip-masq-agent')),
    call(`daemonset ${ns}/cilium`, daemonSet(ns, 'cilium')),
    call('daemonset kube-system/netd', daemonSet('kube-system', 'netd')),
    call('ciliumnodes', read('/apis/cilium.io/v2/ciliumnodes')),
    // CiliumNodeConfig: v2 where served, else v2alpha1 (the per-node-config docs' example is v2alpha1).
    call('ciliumnodeconfigs', async () => {
      try {
        return await read('/apis/cilium.io/v2/ciliumnodeconfigs')();
      } catch (err) {
        if (!isNotFound(err)) throw err;
        return await read('/apis/cilium.io/v2alpha1/ciliumnodeconfigs')();
      }
    }),
  ]);
  const c = newCollector();
  const add = (raw: unknown, apiVersion: string, kind: string, where: string) => {
    if (raw) addObject(c, { ...(raw as Obj), apiVersion, kind }, where, ns);
  };
  c.nodes.push(...(nodes?.nodes ?? []));
  c.pods += pods?.pods ?? 0;
  c.hostPortPods.push(...(pods?.hostPortPods ?? []));
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
