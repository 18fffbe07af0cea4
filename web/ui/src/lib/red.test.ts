import { describe, expect, it } from 'vitest';
import { busiest, chartData, normalize, redPath, stepFor } from './red';

// The shape `GET /api/v1/metrics/red` answers (gateway/src/red/api.rs).
const answer = {
  from: 0,
  to: 60_000,
  step: 10_000,
  resolution_ms: 10_000,
  series: [
    {
      cluster: 'eu',
      service: 'checkout',
      operation: 'pay',
      points: [
        { time_ms: 20_000, calls: 4, errors: 1, rate: 0.4, error_ratio: 0.25, p50_ms: 10, p95_ms: 40, p99_ms: 50 },
        { time_ms: 0, calls: 0, errors: 0, rate: 0, error_ratio: 0, p50_ms: null, p95_ms: null, p99_ms: null },
      ],
      total: { calls: 4, errors: 1, error_ratio: 0.25, p50_ms: 10, p95_ms: 40, p99_ms: 50 },
      exemplars: [{ trace_id: '0af7651916cd43dd8448eb211c80319c', duration_ms: 50, error: true }, { trace_id: 'not hex!' }],
    },
    { cluster: 'us', service: 'cart', operation: 'add', points: [{ time_ms: 10_000, calls: 9, errors: 0, rate: 0.9, error_ratio: 0, p50_ms: 1, p95_ms: 2, p99_ms: 3 }], total: { calls: 9 }, exemplars: [] },
  ],
};

describe('red seam', () => {
  it('builds the query', () => {
    expect(redPath({ cluster: 'east', from: 1, to: 2, step: 10_000 })).toBe('/api/v1/metrics/red?cluster=east&from=1&to=2&step=10000');
  });
  it('picks a step of whole 10 s', () => {
    expect(stepFor(0, 3600_000)).toBe(30_000);
    expect(stepFor(0, 60_000)).toBe(10_000);
  });
  it('reads the API answer: snake_case fields, null quantiles, sorted points, valid exemplars only', () => {
    const [s, t] = normalize(answer);
    expect(s.cluster).toBe('eu');
    expect(s.operation).toBe('pay');
    expect(s.points.map((p) => p.t)).toEqual([0, 20_000]);
    expect(s.points[0]).toEqual({ t: 0, calls: 0, errors: 0, rate: 0, errorRatio: 0, p50: null, p95: null, p99: null });
    expect(s.points[1]).toMatchObject({ calls: 4, errors: 1, rate: 0.4, errorRatio: 0.25, p99: 50 });
    expect(s.total).toEqual({ calls: 4, errors: 1, errorRatio: 0.25, p50: 10, p95: 40, p99: 50 });
    expect(s.exemplars).toEqual([{ traceId: '0af7651916cd43dd8448eb211c80319c', durationMs: 50, error: true }]);
    expect(t.total).toEqual({ calls: 9, errors: 0, errorRatio: 0, p50: null, p95: null, p99: null });
    expect(normalize(null)).toEqual([]);
    expect(normalize({ series: 'x' })).toEqual([]);
  });
  it('lays series on one time axis with gaps, errors in percent, three quantiles each', () => {
    const c = chartData(normalize(answer));
    expect(c.times).toEqual([0, 10_000, 20_000]);
    expect(c.rate.map((l) => l.label)).toEqual(['checkout@eu pay', 'cart@us add']);
    expect(c.rate[0].values).toEqual([0, null, 0.4]);
    // No calls: no error ratio to draw.
    expect(c.errors[0].values).toEqual([null, null, 25]);
    expect(c.latency.map((l) => l.label)).toEqual(['checkout@eu pay p50', 'checkout@eu pay p95', 'checkout@eu pay p99', 'cart@us add p50', 'cart@us add p95', 'cart@us add p99']);
    expect(c.latency[2].values).toEqual([null, null, 50]);
  });
  it('spans the whole picked range', () => {
    const c = chartData(normalize(answer), { from: 0, to: 60_000, step: 10_000 });
    expect(c.times).toEqual([0, 10_000, 20_000, 30_000, 40_000, 50_000]);
    expect(c.rate[0].values).toEqual([0, null, 0.4, null, null, null]);
  });
  it('keeps the busiest series', () => {
    const { shown, hidden } = busiest(normalize(answer), 1);
    expect(shown.map((s) => s.service)).toEqual(['cart']);
    expect(hidden).toBe(1);
  });
});
