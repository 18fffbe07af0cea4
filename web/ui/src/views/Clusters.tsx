// Cluster overview: the clusters (clock offset and last seen from the
// stitcher's `/api/v1/clusters`, else the registered ones), spans stored
// per cluster, their agents (`ClusterAgents`), and the gateway members with
// the Raft leader.

import { get, request } from '../api';
import { ClusterBadge, formatBytes, Load, NotAvailable } from '../components/common';
import { useFetch } from '../hooks';
import { ClusterAgents } from './ClusterAgents';

interface ClusterApi {
  cluster: string;
  /** null: no estimate yet (too few client/server pairs). */
  offsetMs: number | null;
  pairs: number;
  reference: boolean;
  /** The cluster offsets are measured against. */
  referenceCluster?: string;
  lastSeenMs: number;
}
interface Members {
  leader_id: number | null;
  members: Array<{ id: number; role: string; leader: boolean; raft_addr: string; federation_addr: string; http_addr: string }>;
}
interface Raft {
  node_id: number;
  leader_id: number | null;
  state: string;
  term: number;
  last_applied: number | null;
}

type Clusters = { source: 'stitcher'; list: ClusterApi[] } | { source: 'registry'; list: Array<{ cluster: string; identity: string }> };

async function loadClusters(signal: AbortSignal): Promise<Clusters> {
  try {
    const r = await get<{ data: ClusterApi[] }>('/api/v1/clusters', signal);
    return { source: 'stitcher', list: r.data ?? [] };
  } catch (e) {
    if (!(e as { notAvailable?: boolean }).notAvailable) throw e;
  }
  const reg = await request<Record<string, { identity: string }>>('/api/v1/admin/clusters?consistency=local', { signal });
  return { source: 'registry', list: Object.entries(reg).map(([cluster, c]) => ({ cluster, identity: c.identity })) };
}

export function ClustersView() {
  const [clusters, retryC] = useFetch(loadClusters, []);
  const [storage] = useFetch((s) => get<{ shards: Array<{ clusters: Array<{ cluster: string; spans: number; estimatedBytes: number }> }> }>('/api/v1/storage', s), []);
  // The admin API's parts: without an admin token they say so in place
  // (with a sign-in button) instead of taking the page away.
  const [members, retryM] = useFetch((s) => request<Members>('/api/v1/admin/members?consistency=local', { signal: s, signIn: false }), []);
  const [raft] = useFetch((s) => request<Raft>('/api/v1/admin/raft', { signal: s, signIn: false }), []);
  const stored = new Map<string, { spans: number; bytes: number }>();
  if (storage.state === 'ok')
    for (const sh of storage.data.shards)
      for (const c of sh.clusters) {
        const e = stored.get(c.cluster) ?? { spans: 0, bytes: 0 };
        e.spans += c.spans;
        e.bytes += c.estimatedBytes;
        stored.set(c.cluster, e);
      }
  const storedCell = (c: string) => {
    const e = stored.get(c);
    return e ? `${e.spans.toLocaleString()} spans, ${formatBytes(e.bytes)}` : '—';
  };
  return (
    <div class="page">
      <h1>Clusters</h1>
      <Load value={clusters} what="clusters" retry={retryC}>
        {(c) => (
          <div class="card" data-testid="clusters">
            {c.source === 'registry' && (
              <>
                <NotAvailable what="Clock offsets and last-seen times" api="/api/v1/clusters" />
                <div class="muted">Registered clusters (admin API) and what each has stored:</div>
              </>
            )}
            {c.source === 'stitcher' && c.list[0]?.referenceCluster && (
              <div class="muted" data-testid="reference-cluster">
                Clock offsets are relative to <ClusterBadge cluster={c.list[0].referenceCluster} />.
              </div>
            )}
            <table class="grid">
              <thead>
                <tr>
                  <th>Cluster</th>
                  {c.source === 'stitcher' ? (
                    <>
                      <th>Clock offset</th>
                      <th>Pairs</th>
                      <th>Last seen</th>
                    </>
                  ) : (
                    <th>Identity</th>
                  )}
                  <th>Stored</th>
                </tr>
              </thead>
              <tbody>
                {c.source === 'stitcher'
                  ? c.list.map((x) => (
                      <tr key={x.cluster}>
                        <td>
                          <ClusterBadge cluster={x.cluster} /> {x.reference && <span class="badge">reference</span>}
                        </td>
                        <td>{x.offsetMs === null ? 'no estimate yet' : `${x.offsetMs >= 0 ? '+' : ''}${x.offsetMs.toFixed(1)} ms`}</td>
                        <td>{x.pairs}</td>
                        <td>{x.lastSeenMs ? new Date(x.lastSeenMs).toLocaleString(undefined, { hour12: false }) : 'never'}</td>
                        <td>{storedCell(x.cluster)}</td>
                      </tr>
                    )).concat(
                      // Clusters with stored spans the stitcher has no record of yet.
                      [...stored.keys()]
                        .filter((name) => !c.list.some((x) => x.cluster === name))
                        .sort()
                        .map((name) => (
                          <tr key={name}>
                            <td>
                              <ClusterBadge cluster={name} />
                            </td>
                            <td>no estimate yet</td>
                            <td>0</td>
                            <td>never</td>
                            <td>{storedCell(name)}</td>
                          </tr>
                        )),
                    )
                  : [...new Set([...c.list.map((x) => x.cluster), ...stored.keys()])].sort().map((name) => (
                      <tr key={name}>
                        <td>
                          <ClusterBadge cluster={name} />
                        </td>
                        <td>{c.list.find((x) => x.cluster === name)?.identity ?? <span class="muted">not registered (plain OTLP)</span>}</td>
                        <td>{storedCell(name)}</td>
                      </tr>
                    ))}
              </tbody>
            </table>
          </div>
        )}
      </Load>
      <h2>Agents</h2>
      <ClusterAgents />
      <h2>Gateway members</h2>
      <Load value={members} what="gateway members" retry={retryM}>
        {(m) => (
          <div class="card" data-testid="members">
            <table class="grid">
              <thead>
                <tr>
                  <th>Node</th>
                  <th>Role</th>
                  <th>HTTP</th>
                  <th>Federation</th>
                  <th>Raft</th>
                </tr>
              </thead>
              <tbody>
                {m.members.map((x) => (
                  <tr key={x.id}>
                    <td>
                      {x.id} {x.leader && <span class="badge leader">leader</span>}
                    </td>
                    <td>{x.role}</td>
                    <td>{x.http_addr || '—'}</td>
                    <td>{x.federation_addr || '—'}</td>
                    <td>{x.raft_addr}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {raft.state === 'ok' && (
              <div class="muted">
                This node: {raft.data.node_id} ({raft.data.state}), term {raft.data.term}, applied index {raft.data.last_applied ?? '—'}; leader {raft.data.leader_id ?? 'none'}.
              </div>
            )}
          </div>
        )}
      </Load>
    </div>
  );
}
