// The seam for RED metrics (rate, errors, duration), served by the metrics
// issue's `GET /api/v1/metrics/red?cluster=&service=&operation=&from=&to=&step=`
// (ms). Until a gateway serves it, `fetchRed` reports "not available" and
// the dashboard says so.
//
// Expected answer (the contract this UI codes against; adjust `normalize`
// when the API lands if it differs):
//   {"series": [{"cluster", "service", "operation"?,
//                "points": [{"t": ms, "rate": per s, "errorRatio": 0..1,
//                            "p50": ms, "p95": ms, "p99": ms}]}]}

export interface RedPoint {
  t: number;
  rate: number;
  errorRatio: number;
  p50: number;
  p95: number;
  p99: number;
}
export interface RedSeries {
  cluster: string;
  service: string;
  operation?: string;
  points: RedPoint[];
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

/** A step giving about `points` points over the range, rounded to 10 s. */
export function stepFor(from: number, to: number, points = 120): number {
  return Math.max(10_000, Math.ceil((to - from) / points / 10_000) * 10_000);
}

export function normalize(body: unknown): RedSeries[] {
  const series = (body as { series?: unknown })?.series;
  if (!Array.isArray(series)) return [];
  return series.map((s) => ({
    cluster: String(s.cluster ?? ''),
    service: String(s.service ?? ''),
    operation: s.operation === undefined ? undefined : String(s.operation),
    points: (Array.isArray(s.points) ? s.points : []).map((p: Record<string, unknown>) => ({
      t: Number(p.t),
      rate: Number(p.rate ?? 0),
      errorRatio: Number(p.errorRatio ?? 0),
      p50: Number(p.p50 ?? 0),
      p95: Number(p.p95 ?? 0),
      p99: Number(p.p99 ?? 0),
    })),
  }));
}
