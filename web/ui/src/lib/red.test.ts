import { describe, expect, it } from 'vitest';
import { normalize, redPath, stepFor } from './red';

describe('red seam', () => {
  it('builds the query', () => {
    expect(redPath({ cluster: 'east', from: 1, to: 2, step: 10_000 })).toBe('/api/v1/metrics/red?cluster=east&from=1&to=2&step=10000');
  });
  it('picks a step of whole 10 s', () => {
    expect(stepFor(0, 3600_000)).toBe(30_000);
    expect(stepFor(0, 60_000)).toBe(10_000);
  });
  it('normalizes series and ignores junk', () => {
    expect(normalize({ series: [{ cluster: 'e', service: 's', points: [{ t: 1, rate: 2 }] }] })).toEqual([
      { cluster: 'e', service: 's', operation: undefined, points: [{ t: 1, rate: 2, errorRatio: 0, p50: 0, p95: 0, p99: 0 }] },
    ]);
    expect(normalize(null)).toEqual([]);
  });
});
