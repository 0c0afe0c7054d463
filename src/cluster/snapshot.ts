// A cluster view from a file: exactly what `kubectl get nodes,ciliumnodes,pods -A -o yaml` prints
// (a `kind: List` with `items`), or multi-document YAML of single objects and/or Lists.
// CiliumEndpoints are accepted too (`kubectl get ciliumendpoints -A -o yaml`).
// Typed API lists (`kind: PodList`, items without apiVersion/kind) are understood as well.
//
// Objects are identified by apiVersion + kind; anything else is skipped and counted, so a dump
// of a whole namespace loads. A document that is not YAML, or an item that cannot be identified
// or has no name, fails the whole load with an error naming the file and the document/item
// index: a snapshot that half-loads would silently answer "no such node".

import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { Config } from '../config.js';
import { MemoryClusterView } from './memory.js';
import { trimCiliumConfig, trimCiliumEndpoint, trimCiliumNode, trimNode, trimPod } from './trim.js';

export type SnapshotKind = 'Node' | 'Pod' | 'CiliumNode' | 'CiliumEndpoint' | 'CiliumConfig';

export interface SnapshotResult {
  view: MemoryClusterView;
  /** Objects loaded, per kind (every kind present, zero when none). */
  counts: Record<SnapshotKind, number>;
  /** Objects skipped, by kind: "Service" for core v1, "Kind.version.group" otherwise. */
  skipped: Record<string, number>;
}

export class SnapshotError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SnapshotError';
  }
}

const KNOWN: Record<string, SnapshotKind> = {
  'v1/Node': 'Node',
  'v1/Pod': 'Pod',
  'cilium.io/v2/CiliumNode': 'CiliumNode',
  'cilium.io/v2/CiliumEndpoint': 'CiliumEndpoint',
  // Only Cilium's own ConfigMap (cilium-config in Cilium's namespace) is read; other ConfigMaps are skipped.
  'v1/ConfigMap': 'CiliumConfig',
};

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** kubectl's resource.version.group spelling, plain kind for the core group. */
function skipKey(apiVersion: string, kind: string): string {
  const slash = apiVersion.indexOf('/');
  if (slash < 0) return apiVersion === 'v1' ? kind : `${kind}.${apiVersion}`;
  return `${kind}.${apiVersion.slice(slash + 1)}.${apiVersion.slice(0, slash)}`;
}

function isList(doc: Obj): boolean {
  return typeof doc.kind === 'string' && doc.kind.endsWith('List') && Array.isArray(doc.items);
}

export function parseSnapshot(text: string, config: Pick<Config, 'cilium'> & Partial<Pick<Config, 'nodeLabel'>>, source = 'snapshot'): SnapshotResult {
  const view = new MemoryClusterView(config, { synced: true });
  const counts: Record<SnapshotKind, number> = { Node: 0, Pod: 0, CiliumNode: 0, CiliumEndpoint: 0, CiliumConfig: 0 };
  const skipped: Record<string, number> = {};

  const docs = parseAllDocuments(text);
  // parseAllDocuments returns an EmptyStream (no documents) for empty input: an empty snapshot.
  const list = Array.isArray(docs) ? docs : [];
  list.forEach((doc, docIndex) => {
    const where = `${source}: document ${docIndex}`;
    if (doc.errors.length > 0) {
      throw new SnapshotError(`${where} is not valid YAML: ${doc.errors[0]!.message}`, { cause: doc.errors[0] });
    }
    let data: unknown;
    try {
      data = doc.toJS();
    } catch (err) {
      throw new SnapshotError(`${where} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    if (data === null || data === undefined) return; // an empty document (e.g. a trailing ---)
    if (!isObj(data)) throw new SnapshotError(`${where}: expected a Kubernetes object or List, got ${Array.isArray(data) ? 'an array' : typeof data}`);

    if (isList(data)) {
      // Typed lists (PodList, ...) leave apiVersion/kind off their items: infer them from the list.
      const listKind = data.kind as string;
      const inferred =
        listKind !== 'List' && typeof data.apiVersion === 'string' ? { apiVersion: data.apiVersion, kind: listKind.slice(0, -'List'.length) } : undefined;
      (data.items as unknown[]).forEach((item, itemIndex) => {
        const obj = inferred && isObj(item) ? { ...inferred, ...item } : item;
        add(obj, `${where}, item ${itemIndex}`);
      });
    } else {
      add(data, where);
    }
  });
  return { view, counts, skipped };

  function add(item: unknown, where: string): void {
    if (!isObj(item)) throw new SnapshotError(`${where}: expected an object, got ${item === null ? 'null' : typeof item}`);
    const { apiVersion, kind } = item;
    if (typeof apiVersion !== 'string' || typeof kind !== 'string' || !apiVersion || !kind) {
      throw new SnapshotError(`${where}: apiVersion and kind are required to identify the object`);
    }
    const known = KNOWN[`${apiVersion}/${kind}`];
    const meta = isObj(item.metadata) ? item.metadata : {};
    const otherConfigMap = known === 'CiliumConfig' && !(meta.name === 'cilium-config' && meta.namespace === config.cilium.namespace);
    if (!known || otherConfigMap) {
      const k = skipKey(apiVersion, kind);
      skipped[k] = (skipped[k] ?? 0) + 1;
      return;
    }
    try {
      switch (known) {
        case 'Node':
          view.upsertNode(trimNode(item, { labelKeys: config.nodeLabel ? [config.nodeLabel.key] : [] }));
          break;
        case 'Pod':
          view.upsertPod(trimPod(item));
          break;
        case 'CiliumNode':
          view.upsertCiliumNode(trimCiliumNode(item));
          break;
        case 'CiliumEndpoint':
          view.upsertCiliumEndpoint(trimCiliumEndpoint(item));
          break;
        case 'CiliumConfig':
          view.setCiliumConfig(trimCiliumConfig(item));
          break;
      }
    } catch (err) {
      throw new SnapshotError(`${where}: ${(err as Error).message}`, { cause: err });
    }
    counts[known] += 1;
  }
}

export function loadSnapshot(path: string, config: Pick<Config, 'cilium'> & Partial<Pick<Config, 'nodeLabel'>>): SnapshotResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SnapshotError(`cannot read snapshot file ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseSnapshot(text, config, path);
}
