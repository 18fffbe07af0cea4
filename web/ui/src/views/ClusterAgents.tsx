// Cluster overview, agents part: every agent of every cluster as the
// gateway cluster sees it (`/api/v1/agents`): its gateway, connection,
// last seen, ingest rate and buffer fill, with each cluster's total rate.

import { get } from '../api';
import { ClusterBadge, Empty, formatBytes, Load } from '../components/common';
import { useFetch } from '../hooks';
import { type AgentBuffer, type AgentsApi, bufferFill, formatAgo, formatRate, groupAgents } from '../lib/agents';

function BufferCell({ buffer }: { buffer: AgentBuffer | null }) {
  if (!buffer) return <span class="muted">not reported</span>;
  const fill = bufferFill(buffer);
  const title = `${formatBytes(buffer.usedBytes)} of ${formatBytes(buffer.capacityBytes)}${buffer.spans !== undefined ? `, ${buffer.spans} spans` : ''}`;
  return (
    <span data-testid="agent-buffer" title={title}>
      <span class={fill >= 0.8 ? 'fill high' : 'fill'} role="meter" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(fill * 100)}>
        <span style={{ width: `${(fill * 100).toFixed(1)}%` }} />
      </span>
      {formatBytes(buffer.usedBytes)} / {formatBytes(buffer.capacityBytes)}
    </span>
  );
}

export function ClusterAgents() {
  const [agents, retry] = useFetch((s) => get<AgentsApi>('/api/v1/agents', s), []);
  return (
    <Load value={agents} what="agents" api="/api/v1/agents" retry={retry}>
      {(a) => {
        const now = Date.now();
        const groups = groupAgents(a.data ?? []);
        return (
          <div data-testid="agents">
            {(a.errors ?? []).map((e) => (
              <div class="state error" role="alert" key={e.gateway}>
                Gateway {e.gateway} did not list its agents: {e.error}
              </div>
            ))}
            {groups.length === 0 && <Empty>No agent has talked to the gateways since they started.</Empty>}
            {groups.map((g) => (
              <div class="card" key={g.cluster} data-testid={`agents-${g.cluster}`}>
                <h3>
                  <ClusterBadge cluster={g.cluster} /> {g.agents.length} agent{g.agents.length === 1 ? '' : 's'}, {g.connected} connected,
                  ingest {formatRate(g.spansPerSec)}
                </h3>
                <table class="grid">
                  <thead>
                    <tr>
                      <th>Agent</th>
                      <th>Gateway</th>
                      <th>Connected</th>
                      <th>Last seen</th>
                      <th>Ingest</th>
                      <th>Spans</th>
                      <th>Buffer</th>
                    </tr>
                  </thead>
                  <tbody>
                    {g.agents.map((x) => (
                      <tr key={`${x.agentId}@${x.gateway}`} data-testid="agent-row">
                        <td>
                          <code>{x.agentId}</code> {x.version && <span class="muted">v{x.version}</span>}
                        </td>
                        <td>{x.gateway}</td>
                        <td>{x.connected ? <span class="badge">connected</span> : <span class="badge down">disconnected</span>}</td>
                        <td title={new Date(x.lastSeenMs).toLocaleString(undefined, { hour12: false })}>{x.connected ? 'now' : formatAgo(x.lastSeenMs, now)}</td>
                        <td>{formatRate(x.spansPerSec)}</td>
                        <td data-testid="agent-spans">{x.spansTotal.toLocaleString()}</td>
                        <td>
                          <BufferCell buffer={x.buffer} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ))}
          </div>
        );
      }}
    </Load>
  );
}
