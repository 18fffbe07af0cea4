import { describe, expect, it } from 'vitest';
import { jtrace } from './fixture';
import { formatRate, graphFromTraces, quantile } from './graph';

describe('graphFromTraces', () => {
  it('makes service@cluster edges, flags crossings, counts errors', () => {
    const g = graphFromTraces([
      jtrace([
        { id: 'r', start: 0, dur: 100, svc: 'web', cluster: 'east' },
        { id: 'i', parent: 'r', start: 1, dur: 2, svc: 'web', cluster: 'east' },
        { id: 'p', parent: 'r', start: 10, dur: 20_000, svc: 'pay', cluster: 'west', error: true },
        { id: 'd', parent: 'p', start: 12, dur: 5, svc: 'db', cluster: 'west' },
      ]),
    ]);
    expect(g.nodes.map((n) => n.id)).toEqual(['db@west', 'pay@west', 'web@east']);
    expect(g.edges).toEqual([
      { source: 'web@east', target: 'pay@west', calls: 1, errors: 1, p50Ms: 20, p99Ms: 20, crossCluster: true },
      { source: 'pay@west', target: 'db@west', calls: 1, errors: 0, p50Ms: 0.005, p99Ms: 0.005, crossCluster: false },
    ]);
  });
  it('takes nearest-rank quantiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantile(xs, 0.5)).toBe(50);
    expect(quantile(xs, 0.99)).toBe(99);
    expect(quantile([], 0.5)).toBe(0);
  });
});

describe('formatRate', () => {
  it('uses per minute below one per second', () => {
    expect(formatRate(25)).toBe('25/s');
    expect(formatRate(2.345)).toBe('2.3/s');
    expect(formatRate(0.25)).toBe('15/min');
    expect(formatRate(1 / 60)).toBe('1/min');
    expect(formatRate(0.0001)).toBe('0.006/min');
  });
});
