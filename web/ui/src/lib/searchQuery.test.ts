import { describe, expect, it } from 'vitest';
import { DEFAULT_QUERY, formToTraceQL, fromParams, parseTags, type SearchQuery, toApiParams, toParams, traceqlString } from './searchQuery';

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

describe('TraceQL', () => {
  const tq = (traceql: string, more: Partial<SearchQuery> = {}): SearchQuery => ({ ...DEFAULT_QUERY, mode: 'traceql', traceql, ...more });

  it('keeps the box in the URL, without the form fields', () => {
    const q = tq('{ status = error }', { service: 'checkout', tags: 'a=1', cluster: 'east', limit: 50, lookback: '6h' });
    const p = toParams(q);
    expect(Object.fromEntries(p)).toEqual({ q: '{ status = error }', lookback: '6h', limit: '50' });
    expect(fromParams(p)).toEqual({ ...q, service: '', tags: '', cluster: '' });
    // An empty box is still the TraceQL mode.
    expect(fromParams(toParams(tq(''))).mode).toBe('traceql');
    expect(fromParams(new URLSearchParams('service=a')).mode).toBe('form');
  });

  it('sends q with the page time range and limit, and nothing of the form', () => {
    const r = toApiParams(tq('  { resource.service.name = "checkout" && status = error }\n', { service: 'cart', operation: 'x', tags: 'error=true', minDuration: '1s', limit: 7 }), 3_600_000);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(Object.fromEntries(r.value)).toEqual({
      q: '{ resource.service.name = "checkout" && status = error }',
      start: '0',
      end: '3600000000',
      limit: '7',
    });
    expect(r.value.toString()).toBe('q=%7B+resource.service.name+%3D+%22checkout%22+%26%26+status+%3D+error+%7D&start=0&end=3600000000&limit=7');
  });

  it('uses a custom range as the form does', () => {
    const r = toApiParams(tq('{}', { lookback: 'custom', start: 1000, end: 2000.5 }), 0);
    expect(r.ok && Object.fromEntries(r.value)).toEqual({ q: '{}', start: '1000000', end: '2000500', limit: '20' });
    expect(toApiParams(tq('{}', { lookback: 'custom', start: 5, end: 1 }), 0)).toEqual({ ok: false, error: 'custom range: start must be before end' });
  });

  it('needs a query, and leaves judging it to the gateway', () => {
    expect(toApiParams(tq('   '), 0)).toEqual({ ok: false, error: 'type a TraceQL query' });
    // Unsupported syntax is sent: the gateway's 400 says why.
    expect(toApiParams(tq('{ } | count() > 1'), 0).ok).toBe(true);
  });

  it('starts from the form filters', () => {
    expect(formToTraceQL(DEFAULT_QUERY)).toBe('');
    expect(
      formToTraceQL({ ...DEFAULT_QUERY, service: 'checkout', operation: 'POST /pay', tags: 'error=true http.status_code=500 user="a b" cached=false', cluster: 'eu-west', minDuration: '100ms', maxDuration: '2 s' }),
    ).toBe('{ resource.service.name = "checkout" && name = "POST /pay" && status = error && .http.status_code = 500 && .user = "a b" && .cached = false && cluster = "eu-west" && duration >= 100ms && duration <= 2s }');
    expect(formToTraceQL({ ...DEFAULT_QUERY, tags: 'odd-key=1' })).toBe('{ ."odd-key" = 1 }');
    expect(formToTraceQL({ ...DEFAULT_QUERY, tags: 'broken' })).toBeNull();
    expect(formToTraceQL({ ...DEFAULT_QUERY, minDuration: 'soon' })).toBeNull();
  });

  it('escapes string literals', () => {
    expect(traceqlString('say "hi"\\now\n')).toBe('"say \\"hi\\"\\\\now\\n"');
  });
});
