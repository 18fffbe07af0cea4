// Dashboards: RED charts per cluster / service / operation from
// `/api/v1/metrics/red` (rate, error ratio, p50/p95/p99, example traces)
// and storage use per shard and cluster (`/api/v1/storage`). The
// selection lives in the URL (`/dashboards?cluster=&service=&operation=&range=`),
// which is where alert notifications link to.

import { useMemo } from 'preact/hooks';
import { get } from '../api';
import { ClusterBadge, formatBytes, Load } from '../components/common';
import { type Line, LineChart } from '../components/LineChart';
import { useFetch } from '../hooks';
import { clusterColor, serviceColor } from '../lib/colors';
import { busiest, chartData, type ChartLine, normalize, redPath, type RedSeries, seriesLabel, stepFor } from '../lib/red';
import { navigate, useLocation } from '../router';
import { knownClusters } from './clusterList';

interface Storage {
  shards: Array<{ shard: string; totalBytes: number; spans: number; clusters: Array<{ cluster: string; spans: number; bodyBytes: number; estimatedBytes: number }>; error?: string }>;
  totalBytes: number;
  spans: number;
}

const RANGES: Record<string, number> = { '15m': 15 * 60e3, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3, '7d': 7 * 24 * 3600e3 };
/** Series drawn at most; the table lists them all. */
const MAX_CHARTED = 8;

export function DashboardsView() {
  const { query } = useLocation();
  const range = RANGES[query.get('range') ?? ''] ? query.get('range')! : '1h';
  const cluster = query.get('cluster') ?? '';
  const service = query.get('service') ?? '';
  const operation = query.get('operation') ?? '';
  const set = (changes: Record<string, string>) => {
    const next = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) if (v) next.set(k, v);
      else next.delete(k);
    navigate(`/dashboards${next.size ? `?${next}` : ''}`, { replace: true });
  };
  const [clusters] = useFetch((s) => knownClusters(s), []);
  const [services] = useFetch((s) => get<{ data: string[] | null }>('/api/services', s), []);
  const [operations] = useFetch(
    (s) => (service ? get<{ data: string[] | null }>(`/api/services/${encodeURIComponent(service)}/operations`, s) : Promise.resolve({ data: [] })),
    [service],
  );
  // A value from the URL stays selectable even before (or without) the lists.
  const withCurrent = (xs: string[], cur: string) => (cur && !xs.includes(cur) ? [cur, ...xs] : xs);
  return (
    <div class="page">
      <div class="page-head">
        <h1>Dashboards</h1>
        <label>
          Time range
          <select value={range} onChange={(e) => set({ range: e.currentTarget.value })}>
            {Object.keys(RANGES).map((k) => (
              <option key={k} value={k}>
                last {k}
              </option>
            ))}
          </select>
        </label>
        <label>
          Cluster
          <select value={cluster} onChange={(e) => set({ cluster: e.currentTarget.value })}>
            <option value="">all</option>
            {withCurrent(clusters.state === 'ok' ? clusters.data : [], cluster).map((c) => (
              <option key={c}>{c}</option>
            ))}
          </select>
        </label>
        <label>
          Service
          <select value={service} onChange={(e) => set({ service: e.currentTarget.value, operation: '' })}>
            <option value="">all</option>
            {withCurrent(services.state === 'ok' ? (services.data.data ?? []) : [], service).map((c) => (
              <option key={c}>{c}</option>
            ))}
          </select>
        </label>
        <label>
          Operation
          <select value={operation} onChange={(e) => set({ operation: e.currentTarget.value })} disabled={!service}>
            <option value="">all</option>
            {withCurrent(operations.state === 'ok' ? (operations.data.data ?? []) : [], operation).map((o) => (
              <option key={o}>{o}</option>
            ))}
          </select>
        </label>
      </div>
      <h2>RED metrics</h2>
      <Red rangeMs={RANGES[range]} cluster={cluster} service={service} operation={operation} />
      <h2>Storage</h2>
      <StoragePanel />
    </div>
  );
}

function Red({ rangeMs, cluster, service, operation }: { rangeMs: number; cluster: string; service: string; operation: string }) {
  const [v, retry] = useFetch(
    (s) => {
      const to = Date.now();
      const from = to - rangeMs;
      const step = stepFor(from, to);
      return get<unknown>(redPath({ cluster, service, operation, from, to, step }), s).then((b) => ({ series: normalize(b), range: { from, to, step } }));
    },
    [rangeMs, cluster, service, operation],
  );
  return (
    <Load value={v} what="RED metrics" api="/api/v1/metrics/red" retry={retry}>
      {({ series, range }) =>
        series.length ? (
          <RedPanel series={series} range={range} />
        ) : (
          <div class="state empty" data-testid="red-empty">
            No RED windows for this selection and time range. Agents send one per 10 s window for the spans they receive (before sampling).
          </div>
        )
      }
    </Load>
  );
}

const colored = (lines: ChartLine[], colorOf: (label: string) => string): Line[] => lines.map((l) => ({ ...l, color: colorOf(l.label) }));
const ms = (v: number | null) => (v === null ? '—' : v < 10 ? `${v.toFixed(1)} ms` : `${v.toFixed(0)} ms`);

function RedPanel({ series, range }: { series: RedSeries[]; range: { from: number; to: number; step: number } }) {
  const { shown, hidden } = useMemo(() => busiest(series, MAX_CHARTED), [series]);
  const c = useMemo(() => chartData(shown, range), [shown, range]);
  // One hue per series; its quantiles share it (p50 and p95 drawn lighter).
  const latencyColor = (label: string) => {
    const base = serviceColor(label.replace(/ p(50|95|99)$/, ''));
    return label.endsWith('p99') ? base : `${base}${label.endsWith('p95') ? 'b3' : '66'}`;
  };
  return (
    <div data-testid="red">
      {hidden > 0 && (
        <div class="muted">
          Charts show the {shown.length} busiest of {series.length} series; pick a cluster, service or operation to narrow down.
        </div>
      )}
      <div class="charts">
        <div class="card" data-testid="red-rate">
          <LineChart title="Rate (calls/s)" times={c.times} lines={colored(c.rate, serviceColor)} format={(v) => v.toFixed(2)} />
        </div>
        <div class="card" data-testid="red-errors">
          <LineChart title="Errors (% of calls)" times={c.times} lines={colored(c.errors, serviceColor)} format={(v) => `${v.toFixed(1)}%`} />
        </div>
        <div class="card" data-testid="red-latency">
          <LineChart title="Duration p50 / p95 / p99 (ms)" times={c.times} lines={colored(c.latency, latencyColor)} format={(v) => `${v.toFixed(0)}ms`} />
        </div>
      </div>
      <div class="card">
        <table class="grid" data-testid="red-table">
          <thead>
            <tr>
              <th>Cluster</th>
              <th>Service</th>
              <th>Operation</th>
              <th>Calls</th>
              <th>Errors</th>
              <th>p50</th>
              <th>p95</th>
              <th>p99</th>
              <th>Example traces</th>
            </tr>
          </thead>
          <tbody>
            {series.map((s) => (
              <tr key={seriesLabel(s)} data-testid="red-series">
                <td>
                  <ClusterBadge cluster={s.cluster} />
                </td>
                <td>{s.service}</td>
                <td>{s.operation}</td>
                <td>{s.total.calls.toLocaleString()}</td>
                <td class={s.total.errors ? 'errors' : ''}>
                  {s.total.errors.toLocaleString()} ({(100 * s.total.errorRatio).toFixed(1)}%)
                </td>
                <td>{ms(s.total.p50)}</td>
                <td>{ms(s.total.p95)}</td>
                <td>{ms(s.total.p99)}</td>
                <td>
                  {s.exemplars.slice(0, 3).map((e) => (
                    <a key={e.traceId} href={`/trace/${e.traceId}`} class={e.error ? 'exemplar errors' : 'exemplar'} data-testid="exemplar" title={`${e.durationMs.toFixed(1)} ms${e.error ? ', error' : ''}`}>
                      {e.traceId.slice(0, 8)}
                    </a>
                  ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function StoragePanel() {
  const [v, retry] = useFetch((s) => get<Storage>('/api/v1/storage', s), []);
  return (
    <Load value={v} what="storage use" api="/api/v1/storage" retry={retry}>
      {(st) => {
        const byCluster = new Map<string, { spans: number; bytes: number }>();
        for (const sh of st.shards)
          for (const c of sh.clusters) {
            const e = byCluster.get(c.cluster) ?? { spans: 0, bytes: 0 };
            e.spans += c.spans;
            e.bytes += c.estimatedBytes;
            byCluster.set(c.cluster, e);
          }
        const maxBytes = Math.max(1, ...[...byCluster.values()].map((c) => c.bytes));
        return (
          <div class="storage" data-testid="storage">
            <div class="card">
              <h3>
                Total: {formatBytes(st.totalBytes)} · {st.spans.toLocaleString()} spans
                {st.spans > 0 && ` · ${(st.totalBytes / st.spans).toFixed(0)} B/span`}
              </h3>
              <h4>Per cluster</h4>
              {byCluster.size === 0 && <div class="muted">No spans stored yet.</div>}
              {[...byCluster.entries()].map(([c, e]) => (
                <div class="hbar" key={c}>
                  <ClusterBadge cluster={c} />
                  <div class="hbar-track">
                    <div style={{ width: `${(100 * e.bytes) / maxBytes}%`, background: clusterColor(c) }} />
                  </div>
                  <span>
                    {formatBytes(e.bytes)} · {e.spans.toLocaleString()} spans
                  </span>
                </div>
              ))}
            </div>
            <div class="card">
              <h4>Per shard</h4>
              <table class="grid">
                <thead>
                  <tr>
                    <th>Shard</th>
                    <th>Size</th>
                    <th>Spans</th>
                    <th>Clusters</th>
                  </tr>
                </thead>
                <tbody>
                  {st.shards.map((sh) => (
                    <tr key={sh.shard} class={sh.error ? 'error' : ''}>
                      <td>{sh.shard}</td>
                      <td>{formatBytes(sh.totalBytes)}</td>
                      <td>{sh.spans.toLocaleString()}</td>
                      <td>
                        {sh.error ? (
                          <span class="errors">{sh.error}</span>
                        ) : (
                          sh.clusters.map((c) => (
                            <span key={c.cluster} class="shard-cluster">
                              <ClusterBadge cluster={c.cluster} /> {c.spans.toLocaleString()} spans, {formatBytes(c.estimatedBytes)}
                            </span>
                          ))
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </div>
        );
      }}
    </Load>
  );
}
