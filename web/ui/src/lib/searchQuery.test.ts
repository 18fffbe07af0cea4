import { describe, expect, it } from 'vitest';
import { DEFAULT_QUERY, fromParams, parseTags, toApiParams, toParams } from './searchQuery';

describe('search URL', () => {
  it('round-trips a query and leaves defaults out', () => {
    const q = { ...DEFAULT_QUERY, service: 'checkout', operation: 'POST /pay', tags: 'http.status_code=500 error=true', minDuration: '10ms', cluster: 'eu-west', limit: 50 };
    const p = toParams(q);
    expect(p.has('lookback')).toBe(false);
    expect(fromParams(new URLSearchParams(p.toString()))).toEqual(q);
    expect(toParams(DEFAULT_QUERY).toString()).toBe('');
  });
  it('keeps a custom range only with lookback=custom', () => {
    const q = { ...DEFAULT_QUERY, service: 's', lookback: 'custom', start: 1000, end: 2000 };
    expect(fromParams(toParams(q))).toEqual(q);
    expect(toParams({ ...q, lookback: '6h' }).has('start')).toBe(false);
  });
  it('repairs bad values', () => {
    const q = fromParams(new URLSearchParams('limit=-3&lookback=3y&start=x'));
    expect(q.limit).toBe(DEFAULT_QUERY.limit);
    expect(q.lookback).toBe('1h');
    expect(q.start).toBeNull();
    expect(fromParams(new URLSearchParams('limit=99999')).limit).toBe(1500);
  });
});

describe('parseTags', () => {
  it('reads k=v pairs with quotes', () => {
    expect(parseTags('a=1  b="x y" c=')).toEqual({ ok: true, value: { a: '1', b: 'x y', c: '' } });
    expect(parseTags('')).toEqual({ ok: true, value: {} });
    expect(parseTags('a=1 oops')).toEqual({ ok: false, error: 'tag "oops": expected key=value' });
  });
});

describe('toApiParams', () => {
  it('builds the Jaeger query in µs with the cluster as a tag', () => {
    const r = toApiParams({ ...DEFAULT_QUERY, service: 's', tags: 'error=true', cluster: 'east', maxDuration: '2s' }, 3_600_000);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(Object.fromEntries(r.value)).toEqual({
      service: 's',
      tags: JSON.stringify({ error: 'true', 'k8s.cluster.name': 'east' }),
      maxDuration: '2s',
      start: '0',
      end: '3600000000',
      limit: '20',
    });
  });
  it('says what is wrong', () => {
    expect(toApiParams(DEFAULT_QUERY, 0)).toEqual({ ok: false, error: 'choose a service' });
    expect(toApiParams({ ...DEFAULT_QUERY, service: 's', minDuration: 'soon' }, 0).ok).toBe(false);
    expect(toApiParams({ ...DEFAULT_QUERY, service: 's', lookback: 'custom', start: 5, end: 1 }, 0)).toEqual({ ok: false, error: 'custom range: start must be before end' });
  });
});
