// The gateway's `/api/v1/agents` answer grouped per cluster for the
// Cluster overview, with each cluster's total ingest rate.

export interface AgentBuffer {
  usedBytes: number;
  capacityBytes: number;
  spans?: number;
  oldestAgeMs?: number;
}

export interface AgentRow {
  cluster: string;
  agentId: string;
  /** Node id of the gateway that reports it. */
  gateway: number;
  connected: boolean;
  lastSeenMs: number;
  spansPerSec: number;
  spansTotal: number;
  /** null: the agent does not report its buffer (older agent). */
  buffer: AgentBuffer | null;
  version?: string;
}

export interface AgentsApi {
  data: AgentRow[];
  /** Gateway members that did not answer. */
  errors?: Array<{ gateway: number; error: string }>;
}

export interface ClusterAgents {
  cluster: string;
  agents: AgentRow[];
  /** Sum of the agents' spans per second. */
  spansPerSec: number;
  connected: number;
}

/** Agents per cluster (clusters and agents sorted by name). */
export function groupAgents(rows: AgentRow[]): ClusterAgents[] {
  const by = new Map<string, AgentRow[]>();
  for (const r of rows) {
    const list = by.get(r.cluster) ?? [];
    list.push(r);
    by.set(r.cluster, list);
  }
  return [...by.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([cluster, agents]) => ({
      cluster,
      agents: agents.sort((a, b) => a.agentId.localeCompare(b.agentId)),
      spansPerSec: agents.reduce((s, a) => s + a.spansPerSec, 0),
      connected: agents.filter((a) => a.connected).length,
    }));
}

/** Fraction of the buffer in use, 0..1 (0 when the capacity is unknown). */
export function bufferFill(b: AgentBuffer | null): number {
  if (!b || b.capacityBytes <= 0) return 0;
  return Math.min(1, Math.max(0, b.usedBytes / b.capacityBytes));
}

/** "12.3/s", "0/s", "1.2k/s". */
export function formatRate(perSec: number): string {
  if (perSec <= 0) return '0/s';
  if (perSec >= 1000) return `${(perSec / 1000).toFixed(1)}k/s`;
  return `${perSec >= 10 ? perSec.toFixed(0) : perSec.toFixed(1)}/s`;
}

/** "3 s ago", "5 min ago", "2 h ago" relative to `now`. */
export function formatAgo(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}
