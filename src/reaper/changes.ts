// "Something the reaper reads has changed": the informers feed the MemoryClusterView through its
// upsert/delete methods, so wrapping those methods on the one instance is the event source.
// startLiveView has no change hook yet; when it gets one (LiveViewOptions.onChange), this module
// reduces to subscribing to it. A snapshot never changes, so it needs no wrapping.

import { MemoryClusterView, type FullClusterView } from '../cluster/memory.js';

const FEEDS = [
  'upsertNode',
  'deleteNode',
  'upsertCiliumNode',
  'deleteCiliumNode',
  'upsertCiliumEndpoint',
  'deleteCiliumEndpoint',
  'upsertPod',
  'deletePod',
] as const satisfies ReadonlyArray<keyof MemoryClusterView>;

/** Calls `onChange` after every change fed into `view`; returns a function that undoes the wrapping. */
export function onViewChange(view: FullClusterView, onChange: () => void): () => void {
  if (!(view instanceof MemoryClusterView)) return () => {};
  const originals = FEEDS.map((feed) => [feed, view[feed]] as const);
  for (const [feed, original] of originals) {
    const wrapped = (...args: unknown[]): void => {
      (original as (...a: unknown[]) => void).apply(view, args);
      onChange();
    };
    Object.defineProperty(view, feed, { value: wrapped, configurable: true, writable: true });
  }
  return () => {
    for (const [feed] of originals) delete (view as unknown as Record<string, unknown>)[feed];
  };
}
