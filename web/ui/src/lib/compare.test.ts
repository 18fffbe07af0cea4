import { describe, expect, it } from 'vitest';
import { barBox, compareTraces } from './compare';
import { explainParams } from './explain';
import { DEFAULT_QUERY } from './searchQuery';
import { jtrace } from './fixture';
import { buildTrace } from './trace';

describe('compareTraces', () => {
  it('aligns spans on service, operation and parent chain', () => {
    const a = buildTrace(
      jtrace([
        { id: '1', start: 0, dur: 100, svc: 'web', op: 'GET' },
        { id: '2', parent: '1', start: 10, dur: 50, svc: 'db', op: 'query' },
        { id: '3', parent: '1', start: 70, dur: 5, svc: 'cache', op: 'get' },
      ]),
    );
    const b = buildTrace(
      jtrace([
        { id: '9', start: 0, dur: 400, svc: 'web', op: 'GET' },
        { id: '8', parent: '9', start: 10, dur: 350, svc: 'db', op: 'query' },
        { id: '7', parent: '9', start: 370, dur: 5, svc: 'auth', op: 'check' },
      ]),
    );
    const rows = compareTraces(a, b);
    const by = Object.fromEntries(rows.map((r) => [r.path.join(' › '), r.kind]));
    expect(by).toEqual({
      'web GET': 'slower',
      'web GET › db query': 'slower',
      'web GET › cache get': 'missing',
      'web GET › auth check': 'added',
    });
    // Waterfall order: the parent, then its children by start.
    expect(rows.map((r) => r.path.join(' › '))).toEqual(['web GET', 'web GET › db query', 'web GET › cache get', 'web GET › auth check']);
    const db = rows[1];
    expect([db.aStart, db.a, db.bStart, db.b]).toEqual([10, 50, 10, 350]);
    expect(rows[3].aStart).toBeNull();
    expect(rows[3].bStart).toBe(370);
  });
  it('puts both sides on one time scale', () => {
    expect(barBox(10, 50, 400)).toEqual({ left: 2.5, width: 12.5 });
    expect(barBox(0, 0, 400).width).toBeCloseTo(0.3);
    expect(barBox(390, 50, 400)).toEqual({ left: 97.5, width: 2.5 });
    expect(barBox(5, 5, 0)).toEqual({ left: 0, width: 0 });
  });
});

describe('explainParams', () => {
  it('narrows the search to the brush and keeps its window as the baseline', () => {
    const q = { ...DEFAULT_QUERY, service: 'frontend', operation: 'GET /checkout', lookback: '1h' };
    const r = explainParams(q, { startUs: 1_000_000_000, endUs: 2_000_000_000, minDurationUs: 250_000.4, maxDurationUs: 900_000.2 }, 3_000_000);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const p = r.value;
    expect(p.get('service')).toBe('frontend');
    expect(p.get('minDuration')).toBe('250000us');
    expect(p.get('maxDuration')).toBe('900001us');
    expect(p.get('start')).toBe('1000000000');
    expect(p.get('baselineEnd')).toBe('3000000000');
    expect(p.has('limit')).toBe(false);
    const t = explainParams({ ...q, mode: 'traceql', traceql: '{ status = error }' }, { startUs: 1, endUs: 2, minDurationUs: 5, maxDurationUs: 9 }, 3_000_000);
    expect(t.ok && t.value.get('q')).toBe('({ status = error }) && { duration >= 5us && duration <= 9us }');
    expect(t.ok && t.value.has('minDuration')).toBe(false);
  });
});
