// Dashboards: RED charts per cluster / service / operation (from the
// metrics API, when the gateway has it) and storage use per shard and
// cluster (`/api/v1/storage`).

import { useMemo, useState } from 'preact/hooks';
import { get } from '../api';
import { ClusterBadge, formatBytes, Load } from '../components/common';
import { type Line, LineChart } from '../components/LineChart';
import { useFetch } from '../hooks';
import { clusterColor, serviceColor } from '../lib/colors';
import { normalize, redPath, type RedSeries, stepFor } from '../lib/red';
import { knownClusters } from './clusterList';

interface Storage {
  shards: Array<{ shard: string; totalBytes: number; spans: number; clusters: Array<{ cluster: string; spans: number; bodyBytes: number; estimatedBytes: number }>; error?: string }>;
  totalBytes: number;
  spans: number;
}

const RANGES: Record<string, number> = { '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3, '7d': 7 * 24 * 3600e3 };

export function DashboardsView() {
  const [range, setRange] = useState('1h');
  const [cluster, setCluster] = useState('');
  const [service, setService] = useState('');
  const [operation, setOperation] = useState('');
  const [clusters] = useFetch((s) => knownClusters(s), []);
  const [services] = useFetch((s) => get<{ data: string[] | null }>('/api/services', s), []);
  const [operations] = useFetch(
    (s) => (service ? get<{ data: string[] | null }>(`/api/services/${encodeURIComponent(service)}/operations`, s) : Promise.resolve({ data: [] })),
    [service],
  );
  return (
    <div class="page">
      <div class="page-head">
        <h1>Dashboards</h1>
        <label>
          Time range
          <select value={range} onChange={(e) => setRange(e.currentTarget.value)}>
            {Object.keys(RANGES).map((k) => (
              <option key={k} value={k}>
                last {k}
              </option>
            ))}
          </select>
        </label>
        <label>
          Cluster
          <select value={cluster} onChange={(e) => setCluster(e.currentTarget.value)}>
            <option value="">all</option>
            {clusters.state === 'ok' && clusters.data.map((c) => <option key={c}>{c}</option>)}
          </select>
        </label>
        <label>
          Service
          <select
            value={service}
            onChange={(e) => {
              setService(e.currentTarget.value);
              setOperation('');
            }}
          >
            <option value="">all</option>
            {services.state === 'ok' && (services.data.data ?? []).map((c) => <option key={c}>{c}</option>)}
          </select>
        </label>
        <label>
          Operation
          <select value={operation} onChange={(e) => setOperation(e.currentTarget.value)} disabled={!service}>
            <option value="">all</option>
            {operations.state === 'ok' && (operations.data.data ?? []).map((o) => <option key={o}>{o}</option>)}
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
      return get<unknown>(redPath({ cluster, service, operation, from, to, step: stepFor(from, to) }), s).then(normalize);
    },
    [rangeMs, cluster, service, operation],
  );
  if (v.state === 'error' && v.error.notAvailable) {
    return (
      <div class="state not-available" data-testid="red-not-available">
        <strong>RED metrics not available yet</strong> on this gateway: rate, errors and latency per cluster, service and operation come from{' '}
        <code>/api/v1/metrics/red</code>, which a newer Meridian serves.
      </div>
    );
  }
  return (
    <Load value={v} what="RED metrics" retry={retry}>
      {(series) => (series.length ? <RedCharts series={series} /> : <div class="state empty">No RED series for this selection.</div>)}
    </Load>
  );
}

function RedCharts({ series }: { series: RedSeries[] }) {
  const { times, rate, errors, p99 } = useMemo(() => {
    const ts = [...new Set(series.flatMap((s) => s.points.map((p) => p.t)))].sort((a, b) => a - b);
    const line = (pick: (p: RedSeries['points'][number]) => number): Line[] =>
      series.map((s) => {
        const at = new Map(s.points.map((p) => [p.t, pick(p)]));
        const label = `${s.service}@${s.cluster}${s.operation ? ` ${s.operation}` : ''}`;
        return { label, color: serviceColor(label), values: ts.map((t) => at.get(t) ?? null) };
      });
    return { times: ts, rate: line((p) => p.rate), errors: line((p) => 100 * p.errorRatio), p99: line((p) => p.p99) };
  }, [series]);
  return (
    <div class="charts">
      <div class="card">
        <LineChart title="Rate (requests/s)" times={times} lines={rate} format={(v) => v.toFixed(1)} />
      </div>
      <div class="card">
        <LineChart title="Errors (%)" times={times} lines={errors} format={(v) => `${v.toFixed(1)}%`} />
      </div>
      <div class="card">
        <LineChart title="Duration p99 (ms)" times={times} lines={p99} format={(v) => `${v.toFixed(0)}ms`} />
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
