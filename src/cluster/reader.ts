// What the webhook edge reads when its cache has no answer: the interface, and the reader of
// snapshot mode. Pure: the live reader (live-reader.ts) is the one that talks to the API server.

import type { NodeInfo, PodInfo } from './view.js';

/** What the webhook edge reads when its cache has no answer. */
export interface ClusterReader {
  pod(namespace: string, name: string): Promise<PodInfo | undefined>;
  node(name: string): Promise<NodeInfo | undefined>;
}

/** Snapshot mode: there is no cluster to ask; the snapshot is the whole truth. */
export const noReader: ClusterReader = Object.freeze({
  pod: async () => undefined,
  node: async () => undefined,
});
