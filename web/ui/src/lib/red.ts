// RED metrics (rate, errors, duration) from the gateway's
// `GET /api/v1/metrics/red?cluster=&service=&operation=&from=&to=&step=`
// (times in ms since the epoch). Its answer, per (cluster, service,
// operation) over the agents' 10 s windows (README "RED metrics and alerts"):
//   {"from","to","step","resolution_ms",
//    "series": [{"cluster","service","operation",
//                "points": [{"time_ms","calls","errors","rate" (per s),
//                            "error_ratio" (0..1),"p50_ms","p95_ms","p99_ms"}],
//                "total": {"calls","errors","error_ratio","p50_ms","p95_ms","p99_ms"},
//                "exemplars": [{"trace_id","duration_ms","error"}]}]}
// Quantiles are null for a step without calls. Everything here is pure.

export interface RedPoint {
  t: number;
  calls: number;
  errors: number;
  rate: number;
  errorRatio: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}
export interface RedTotal {
  calls: number;
  errors: number;
  errorRatio: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}
export interface Exemplar {
  traceId: string;
  durationMs: number;
  error: boolean;
}
export interface RedSeries {
  cluster: string;
  service: string;
  operation: string;
  points: RedPoint[];
  total: RedTotal;
  exemplars: Exemplar[];
}
export interface RedQuery {
  cluster?: string;
  service?: string;
  operation?: string;
  from: number;
  to: number;
  step: number;
}

export function redPath(q: RedQuery): string {
  const p = new URLSearchParams();
  for (const k of ['cluster', 'service', 'operation'] as const) if (q[k]) p.set(k, q[k]!);
  p.set('from', String(q.from));
  p.set('to', String(q.to));
  p.set('step', String(q.step));
  return `/api/v1/metrics/red?${p}`;
}

/** A step giving about `points` points over the range, rounded to 10 s
 * (the agents' window). */
export function stepFor(from: number, to: number, points = 120): number {
  return Math.max(10_000, Math.ceil((to - from) / points / 10_000) * 10_000);
}

type Obj = Record<string, unknown>;
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const orNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});
const list = (v: unknown): Obj[] => (Array.isArray(v) ? v.map(obj) : []);

export function normalize(body: unknown): RedSeries[] {
  return list(obj(body).series).map((s) => {
    const total = obj(s.total);
    return {
      cluster: String(s.cluster ?? ''),
      service: String(s.service ?? ''),
      operation: String(s.operation ?? ''),
      points: list(s.points)
        .map((p) => ({
          t: num(p.time_ms),
          calls: num(p.calls),
          errors: num(p.errors),
          rate: num(p.rate),
          errorRatio: num(p.error_ratio),
          p50: orNull(p.p50_ms),
          p95: orNull(p.p95_ms),
          p99: orNull(p.p99_ms),
        }))
        .sort((a, b) => a.t - b.t),
      total: {
        calls: num(total.calls),
        errors: num(total.errors),
        errorRatio: num(total.error_ratio),
        p50: orNull(total.p50_ms),
        p95: orNull(total.p95_ms),
        p99: orNull(total.p99_ms),
      },
      exemplars: list(s.exemplars)
        .filter((e) => typeof e.trace_id === 'string' && /^[0-9a-f]{1,32}$/i.test(e.trace_id))
        .map((e) => ({ traceId: String(e.trace_id), durationMs: num(e.duration_ms), error: e.error === true })),
    };
  });
}

export const seriesLabel = (s: Pick<RedSeries, 'cluster' | 'service' | 'operation'>) => `${s.service}@${s.cluster} ${s.operation}`.trim();

/** The busiest `max` series (by calls), then the count left out. */
export function busiest(series: RedSeries[], max: number): { shown: RedSeries[]; hidden: number } {
  const shown = [...series].sort((a, b) => b.total.calls - a.total.calls || seriesLabel(a).localeCompare(seriesLabel(b))).slice(0, max);
  return { shown, hidden: series.length - shown.length };
}

export interface ChartLine {
  label: string;
  values: Array<number | null>;
}
export interface RedCharts {
  times: number[];
  rate: ChartLine[];
  /** Percent. */
  errors: ChartLine[];
  /** p50, p95 and p99 per series, ms. */
  latency: ChartLine[];
}

/** The charts' data on a common time axis: every step of `range` (so the
 * axis spans the picked range even with one window) plus any point's
 * time; a step a series has no point for is null (a gap), not zero. */
export function chartData(series: RedSeries[], range?: { from: number; to: number; step: number }): RedCharts {
  const grid: number[] = [];
  if (range && range.step > 0) for (let t = range.from; t < range.to && grid.length <= 20_000; t += range.step) grid.push(t);
  const times = [...new Set([...grid, ...series.flatMap((s) => s.points.map((p) => p.t))])].sort((a, b) => a - b);
  const line = (s: RedSeries, label: string, pick: (p: RedPoint) => number | null): ChartLine => {
    const at = new Map(s.points.map((p) => [p.t, pick(p)]));
    return { label, values: times.map((t) => at.get(t) ?? null) };
  };
  return {
    times,
    rate: series.map((s) => line(s, seriesLabel(s), (p) => p.rate)),
    errors: series.map((s) => line(s, seriesLabel(s), (p) => (p.calls > 0 ? 100 * p.errorRatio : null))),
    latency: series.flatMap((s) => (['p50', 'p95', 'p99'] as const).map((q) => line(s, `${seriesLabel(s)} ${q}`, (p) => p[q]))),
  };
}
