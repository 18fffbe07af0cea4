// Cluster names for pickers: the stitcher's clusters when the gateway has
// `/api/v1/clusters`, else the registered ones, plus those that stored spans.

import { get, request } from '../api';

export async function knownClusters(signal: AbortSignal): Promise<string[]> {
  const names = new Set<string>();
  const tries: Array<Promise<void>> = [
    get<{ data: Array<{ cluster: string }> }>('/api/v1/clusters', signal).then((r) => r.data.forEach((c) => names.add(c.cluster))),
    // Admins only; anyone else does without (no sign-in asked for).
    request<Record<string, unknown>>('/api/v1/admin/clusters?consistency=local', { signal, signIn: false }).then((r) => Object.keys(r).forEach((c) => names.add(c))),
    get<{ shards: Array<{ clusters: Array<{ cluster: string }> }> }>('/api/v1/storage', signal).then((r) =>
      r.shards.forEach((s) => s.clusters.forEach((c) => names.add(c.cluster))),
    ),
  ];
  await Promise.allSettled(tries);
  return [...names].sort();
}
