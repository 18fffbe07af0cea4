// The search form's state <-> the page URL (shareable, back button) and the
// Jaeger `/api/traces` query it becomes: the form's filters, or TraceQL in
// `q=` (the gateway parses it and answers 400 with the reason when it
// refuses it), both over the same time range and limit.

import { parseGoDuration } from './ticks';

/** The filters of the form, or a TraceQL query. */
export type SearchMode = 'form' | 'traceql';

export interface SearchQuery {
  mode: SearchMode;
  /** With `traceql`: the query text, sent as `q=`. */
  traceql: string;
  service: string;
  operation: string;
  /** `k=v` pairs separated by spaces or newlines; values may be quoted. */
  tags: string;
  minDuration: string;
  maxDuration: string;
  /** A lookback (`15m`, `1h`, `6h`, `24h`, `7d`) or `custom`. */
  lookback: string;
  /** With `custom`: ms since the epoch. */
  start: number | null;
  end: number | null;
  cluster: string;
  limit: number;
}

export const LOOKBACKS: Record<string, number> = {
  '15m': 15 * 60e3,
  '1h': 3600e3,
  '6h': 6 * 3600e3,
  '24h': 24 * 3600e3,
  '7d': 7 * 24 * 3600e3,
};

export const DEFAULT_QUERY: SearchQuery = {
  mode: 'form',
  traceql: '',
  service: '',
  operation: '',
  tags: '',
  minDuration: '',
  maxDuration: '',
  lookback: '1h',
  start: null,
  end: null,
  cluster: '',
  limit: 20,
};

export const MAX_LIMIT = 1500;

export const TRACEQL_PLACEHOLDER = '{ resource.service.name = "checkout" && status = error }';

/** The URL parameters for `q` (defaults left out). */
export function toParams(q: SearchQuery): URLSearchParams {
  const p = new URLSearchParams();
  const put = (k: string, v: string) => v !== '' && p.set(k, v);
  if (q.mode === 'traceql') {
    // Present even when empty: it is what says the box is open.
    p.set('q', q.traceql.trim());
  } else {
    put('service', q.service);
    put('operation', q.operation);
    put('tags', q.tags.trim());
    put('minDuration', q.minDuration.trim());
    put('maxDuration', q.maxDuration.trim());
  }
  if (q.lookback !== DEFAULT_QUERY.lookback) p.set('lookback', q.lookback);
  if (q.lookback === 'custom') {
    if (q.start !== null) p.set('start', String(q.start));
    if (q.end !== null) p.set('end', String(q.end));
  }
  if (q.mode !== 'traceql') put('cluster', q.cluster);
  if (q.limit !== DEFAULT_QUERY.limit) p.set('limit', String(q.limit));
  return p;
}

/** The query in URL parameters; anything unreadable takes its default. */
export function fromParams(p: URLSearchParams): SearchQuery {
  const num = (k: string) => {
    const v = p.get(k);
    const n = v === null || v === '' ? NaN : Number(v);
    return Number.isFinite(n) ? n : null;
  };
  const lookback = p.get('lookback') ?? DEFAULT_QUERY.lookback;
  const limit = num('limit');
  return {
    mode: p.has('q') ? 'traceql' : 'form',
    traceql: p.get('q') ?? '',
    service: p.get('service') ?? '',
    operation: p.get('operation') ?? '',
    tags: p.get('tags') ?? '',
    minDuration: p.get('minDuration') ?? '',
    maxDuration: p.get('maxDuration') ?? '',
    lookback: lookback === 'custom' || lookback in LOOKBACKS ? lookback : DEFAULT_QUERY.lookback,
    start: num('start'),
    end: num('end'),
    cluster: p.get('cluster') ?? '',
    limit: limit !== null && limit >= 1 ? Math.min(MAX_LIMIT, Math.floor(limit)) : DEFAULT_QUERY.limit,
  };
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** `k=v k2="v 2"` → `{k: "v", k2: "v 2"}`. */
export function parseTags(s: string): Parsed<Record<string, string>> {
  const out: Record<string, string> = {};
  const re = /\s*([^\s=]+)=("((?:[^"\\]|\\.)*)"|\S*)/y;
  let i = 0;
  const text = s.trimEnd();
  while (i < text.length) {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) {
      const bad = text.slice(i).trim().split(/\s+/)[0];
      return { ok: false, error: `tag "${bad}": expected key=value` };
    }
    out[m[1]] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2];
    i = re.lastIndex;
  }
  return { ok: true, value: out };
}

/** The time range of `q` at `nowMs` in ms since the epoch, or what is wrong. */
export function timeRange(q: SearchQuery, nowMs: number): Parsed<{ startMs: number; endMs: number }> {
  if (q.lookback === 'custom') {
    if (q.start === null || q.end === null) return { ok: false, error: 'custom range: set start and end' };
    if (q.start >= q.end) return { ok: false, error: 'custom range: start must be before end' };
    return { ok: true, value: { startMs: q.start, endMs: q.end } };
  }
  return { ok: true, value: { startMs: nowMs - (LOOKBACKS[q.lookback] ?? LOOKBACKS['1h']), endMs: nowMs } };
}

/** `start`, `end` (µs, covering the range) and `limit`, as Jaeger takes them. */
function putRange(p: URLSearchParams, range: { startMs: number; endMs: number }, limit: number) {
  p.set('start', String(Math.floor(range.startMs * 1000)));
  p.set('end', String(Math.ceil(range.endMs * 1000)));
  p.set('limit', String(limit));
}

/** The `/api/traces` parameters for `q` at `nowMs`, or what is wrong. */
export function toApiParams(q: SearchQuery, nowMs: number): Parsed<URLSearchParams> {
  if (q.mode === 'traceql') {
    const text = q.traceql.trim();
    if (!text) return { ok: false, error: 'type a TraceQL query' };
    const range = timeRange(q, nowMs);
    if (!range.ok) return range;
    const p = new URLSearchParams();
    p.set('q', text);
    putRange(p, range.value, q.limit);
    return { ok: true, value: p };
  }
  if (!q.service) return { ok: false, error: 'choose a service' };
  const tags = parseTags(q.tags);
  if (!tags.ok) return tags;
  const t = { ...tags.value };
  if (q.cluster) t['k8s.cluster.name'] = q.cluster;
  for (const [k, v] of [
    ['minDuration', q.minDuration],
    ['maxDuration', q.maxDuration],
  ]) {
    if (v.trim() && parseGoDuration(v) === null) {
      return { ok: false, error: `${k} "${v}": use a duration such as 250us, 120ms, 1.5s` };
    }
  }
  const range = timeRange(q, nowMs);
  if (!range.ok) return range;
  const p = new URLSearchParams();
  p.set('service', q.service);
  if (q.operation) p.set('operation', q.operation);
  if (Object.keys(t).length) p.set('tags', JSON.stringify(t));
  if (q.minDuration.trim()) p.set('minDuration', q.minDuration.trim());
  if (q.maxDuration.trim()) p.set('maxDuration', q.maxDuration.trim());
  putRange(p, range.value, q.limit);
  return { ok: true, value: p };
}

/** A TraceQL string literal. */
export function traceqlString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
}

/** A tag's value as TraceQL: numbers and booleans bare, the rest quoted. */
function traceqlValue(v: string): string {
  if (/^-?\d+(\.\d+)?$/.test(v) || v === 'true' || v === 'false') return v;
  return traceqlString(v);
}

/** The form's filters as one TraceQL spanset filter, the starting point
 * when the user switches to the TraceQL box. Tags are unscoped (`.k`: the
 * span's attribute or its resource's), `error=true` is `status = error`
 * and the cluster is Meridian's `cluster` intrinsic. Empty without
 * filters; `null` when the tags or durations do not parse. An unusual
 * tag name is quoted (`."a b"`). */
export function formToTraceQL(q: SearchQuery): string | null {
  const terms: string[] = [];
  if (q.service) terms.push(`resource.service.name = ${traceqlString(q.service)}`);
  if (q.operation) terms.push(`name = ${traceqlString(q.operation)}`);
  const tags = parseTags(q.tags);
  if (!tags.ok) return null;
  for (const [k, v] of Object.entries(tags.value)) {
    if (k === 'error' && v === 'true') terms.push('status = error');
    else terms.push(`.${/^[A-Za-z_][\w.]*$/.test(k) ? k : traceqlString(k)} = ${traceqlValue(v)}`);
  }
  if (q.cluster) terms.push(`cluster = ${traceqlString(q.cluster)}`);
  for (const [op, v] of [
    ['>=', q.minDuration],
    ['<=', q.maxDuration],
  ]) {
    if (!v.trim()) continue;
    if (parseGoDuration(v) === null) return null;
    terms.push(`duration ${op} ${v.replace(/\s+/g, '')}`);
  }
  return terms.length ? `{ ${terms.join(' && ')} }` : '';
}
