// The service graph (`/api/v1/graph` shape) and, for gateways without that
// API, the same graph derived from a sample of traces.

import { buildTrace, type JTrace } from './trace';

export interface GraphNode {
  id: string;
  service: string;
  cluster: string;
}
export interface GraphEdge {
  source: string;
  target: string;
  calls: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  gapMs?: number;
  crossCluster: boolean;
}
export interface ServiceGraph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export const nodeId = (service: string, cluster: string) => `${service}@${cluster}`;

/** Nearest-rank quantile of an ascending list. */
export function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/** Edges parent service@cluster → child service@cluster (only where the
 * service or the cluster changes), with the child's latency and errors. */
export function graphFromTraces(traces: JTrace[]): ServiceGraph {
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, { e: GraphEdge; lat: number[] }>();
  for (const j of traces) {
    const t = buildTrace(j);
    for (const s of t.spans) {
      const id = nodeId(s.service, s.cluster);
      nodes.set(id, { id, service: s.service, cluster: s.cluster });
      const p = s.parent;
      if (!p || (p.service === s.service && p.cluster === s.cluster)) continue;
      const source = nodeId(p.service, p.cluster);
      const key = `${source}\u0000${id}`;
      let entry = edges.get(key);
      if (!entry) {
        entry = {
          e: { source, target: id, calls: 0, errors: 0, p50Ms: 0, p99Ms: 0, crossCluster: p.cluster !== s.cluster },
          lat: [],
        };
        edges.set(key, entry);
      }
      entry.e.calls++;
      if (s.error) entry.e.errors++;
      entry.lat.push(s.duration / 1000);
    }
  }
  const out: GraphEdge[] = [];
  for (const { e, lat } of edges.values()) {
    lat.sort((a, b) => a - b);
    out.push({ ...e, p50Ms: quantile(lat, 0.5), p99Ms: quantile(lat, 0.99) });
  }
  return { nodes: [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)), edges: out };
}

/** Calls per second, or per minute when below one per second. */
export function formatRate(perSecond: number): string {
  if (perSecond >= 1) return `${perSecond.toFixed(perSecond >= 10 ? 0 : 1)}/s`;
  const perMinute = perSecond * 60;
  return `${perMinute >= 10 ? perMinute.toFixed(0) : Number(perMinute.toPrecision(2))}/min`;
}
