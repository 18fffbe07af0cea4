// Services per cluster (service@cluster nodes inside cluster boxes) and the
// calls between them, laid out by dagre. Cross-cluster edges are drawn
// thick and dashed. A node or an edge opens the search for it.

import dagre from '@dagrejs/dagre';
import { useMemo } from 'preact/hooks';
import { ApiError, get } from '../api';
import { Load, NotAvailable } from '../components/common';
import { useFetch } from '../hooks';
import { clusterColor, serviceColor } from '../lib/colors';
import { formatRate, type GraphEdge, graphFromTraces, type ServiceGraph } from '../lib/graph';
import type { JTrace } from '../lib/trace';
import { navigate } from '../router';

const LOOKBACKS: Record<string, number> = { '15m': 15 * 60e3, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3 };
/** Without `/api/v1/graph`, the map is derived from this many recent traces per service. */
const SAMPLE_PER_SERVICE = 100;
const MAX_SERVICES = 30;

interface Loaded {
  graph: ServiceGraph;
  /** Derived from sampled traces (the gateway has no graph API). */
  derived: boolean;
}

async function loadGraph(lookbackMs: number, signal: AbortSignal): Promise<Loaded> {
  const end = Date.now();
  try {
    const graph = await get<ServiceGraph>(`/api/v1/graph?endTs=${end}&lookback=${lookbackMs}`, signal);
    return { graph, derived: false };
  } catch (e) {
    if (!(e instanceof ApiError && e.notAvailable)) throw e;
  }
  const services = (await get<{ data: string[] | null }>('/api/services', signal)).data ?? [];
  const traces = new Map<string, JTrace>();
  await Promise.all(
    services.slice(0, MAX_SERVICES).map(async (svc) => {
      const p = new URLSearchParams({ service: svc, start: String((end - lookbackMs) * 1000), end: String(end * 1000), limit: String(SAMPLE_PER_SERVICE) });
      const r = await get<{ data: JTrace[] | null }>(`/api/traces?${p}`, signal);
      for (const t of r.data ?? []) traces.set(t.traceID, t);
    }),
  );
  return { graph: graphFromTraces([...traces.values()]), derived: true };
}

export function ServiceMapView({ query }: { query: URLSearchParams }) {
  const lookback = query.get('lookback') && query.get('lookback')! in LOOKBACKS ? query.get('lookback')! : '1h';
  const [v, retry] = useFetch((s) => loadGraph(LOOKBACKS[lookback], s), [lookback]);
  return (
    <div class="page">
      <div class="page-head">
        <h1>Service map</h1>
        <label>
          Time range
          <select value={lookback} onChange={(e) => navigate(`/map?lookback=${e.currentTarget.value}`)}>
            {Object.keys(LOOKBACKS).map((k) => (
              <option key={k} value={k}>
                last {k}
              </option>
            ))}
          </select>
        </label>
        <span class="legend">
          <span class="edge-sample" /> in-cluster call <span class="edge-sample cross" /> cross-cluster call
        </span>
      </div>
      <Load value={v} what="service map" retry={retry}>
        {({ graph, derived }) => (
          <>
            {derived && (
              <>
                <NotAvailable what="The aggregated service graph" api="/api/v1/graph" />
                <div class="notice info">Showing a map derived from up to {SAMPLE_PER_SERVICE} recent traces per service instead; counts are from that sample.</div>
              </>
            )}
            {graph.nodes.length ? <GraphSvg graph={graph} seconds={LOOKBACKS[lookback] / 1000} derived={derived} /> : <div class="state empty">No calls between services in this time range.</div>}
          </>
        )}
      </Load>
    </div>
  );
}

interface Layout {
  width: number;
  height: number;
  clusters: Array<{ name: string; x: number; y: number; w: number; h: number }>;
  nodes: Array<{ id: string; service: string; cluster: string; x: number; y: number; w: number; h: number }>;
  edges: Array<{ e: GraphEdge; points: Array<{ x: number; y: number }>; label: { x: number; y: number } }>;
}

const NODE_W = 170;
const NODE_H = 44;

function layout(graph: ServiceGraph): Layout {
  const g = new dagre.graphlib.Graph({ compound: true, multigraph: true });
  g.setGraph({ rankdir: 'LR', nodesep: 30, ranksep: 110, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  const clusters = [...new Set(graph.nodes.map((n) => n.cluster))];
  for (const c of clusters) g.setNode(`cluster:${c}`, { label: c, paddingTop: 28 });
  for (const n of graph.nodes) {
    g.setNode(n.id, { width: NODE_W, height: NODE_H });
    g.setParent(n.id, `cluster:${n.cluster}`);
  }
  graph.edges.forEach((e, i) => {
    if (g.hasNode(e.source) && g.hasNode(e.target)) g.setEdge(e.source, e.target, { width: 200, height: 22, labelpos: 'c' }, `e${i}`);
  });
  dagre.layout(g);
  const gg = g.graph();
  const edges: Layout['edges'] = [];
  graph.edges.forEach((e, i) => {
    const d = g.edge({ v: e.source, w: e.target, name: `e${i}` });
    if (d?.points) edges.push({ e, points: d.points, label: { x: d.x ?? d.points[0].x, y: d.y ?? d.points[0].y } });
  });
  const boxes = clusters.map((c) => {
    const n = g.node(`cluster:${c}`);
    return { name: c, x: n.x - n.width / 2, y: n.y - n.height / 2, w: n.width, h: n.height };
  });
  return {
    // dagre's graph size can leave out the cluster boxes' padding.
    width: Math.max(gg.width ?? 0, ...boxes.map((b) => b.x + b.w + 20)),
    height: Math.max(gg.height ?? 0, ...boxes.map((b) => b.y + b.h + 20)),
    clusters: boxes,
    nodes: graph.nodes.map((n) => {
      const d = g.node(n.id);
      return { id: n.id, service: n.service, cluster: n.cluster, x: d.x - NODE_W / 2, y: d.y - NODE_H / 2, w: NODE_W, h: NODE_H };
    }),
    edges,
  };
}

function GraphSvg({ graph, seconds, derived }: { graph: ServiceGraph; seconds: number; derived: boolean }) {
  const l = useMemo(() => layout(graph), [graph]);
  const path = (pts: Array<{ x: number; y: number }>) => pts.map((p, i) => `${i ? 'L' : 'M'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
  const search = (service: string, cluster: string) => navigate(`/search?${new URLSearchParams({ service, cluster })}`);
  return (
    <div class="card map-wrap">
      <svg
        class="service-map"
        viewBox={`0 0 ${l.width} ${l.height + 10}`}
        style={{ width: '100%', maxWidth: l.width, height: 'auto' }}
        data-testid="service-map"
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" class="arrowhead" />
          </marker>
        </defs>
        {l.clusters.map((c) => (
          <g key={c.name} class="map-cluster" data-testid="map-cluster">
            <rect x={c.x} y={c.y} width={c.w} height={c.h} rx={10} style={{ stroke: clusterColor(c.name) }} />
            <text x={c.x + 10} y={c.y + 18} style={{ fill: clusterColor(c.name) }}>
              cluster {c.name}
            </text>
          </g>
        ))}
        {l.edges.map(({ e, points, label }) => {
          const rate = e.calls / seconds;
          const errRatio = e.calls ? e.errors / e.calls : 0;
          const title = `${e.source} → ${e.target}: ${e.calls} calls${derived ? ' (sampled)' : ''}, ${(100 * errRatio).toFixed(1)}% errors, p50 ${e.p50Ms.toFixed(1)} ms, p99 ${e.p99Ms.toFixed(1)} ms`;
          const [svc, cluster] = e.target.split('@');
          return (
            <g key={e.source + e.target} class={`map-edge ${e.crossCluster ? 'cross' : ''} ${errRatio > 0 ? 'has-errors' : ''}`} data-testid="map-edge" onClick={() => search(svc, cluster)}>
              <title>{title}</title>
              <path d={path(points)} markerEnd="url(#arrow)" />
              <text x={label.x} y={label.y - 6} text-anchor="middle">
                {formatRate(rate)} · {(100 * errRatio).toFixed(errRatio ? 1 : 0)}% err · p99 {e.p99Ms.toFixed(e.p99Ms < 10 ? 1 : 0)}ms
              </text>
            </g>
          );
        })}
        {l.nodes.map((n) => (
          <g key={n.id} class="map-node" data-testid="map-node" onClick={() => search(n.service, n.cluster)} tabIndex={0} onKeyDown={(e) => e.key === 'Enter' && search(n.service, n.cluster)}>
            <title>{`${n.id}: search its traces`}</title>
            <rect x={n.x} y={n.y} width={n.w} height={n.h} rx={6} />
            <rect x={n.x} y={n.y} width={6} height={n.h} rx={3} style={{ fill: serviceColor(n.service) }} />
            <text x={n.x + 14} y={n.y + 19} class="svc">
              {n.service}
            </text>
            <text x={n.x + 14} y={n.y + 35} class="at">
              @{n.cluster}
            </text>
          </g>
        ))}
      </svg>
    </div>
  );
}

