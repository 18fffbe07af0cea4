// The search form's state <-> the page URL (shareable, back button) and the
// Jaeger `/api/traces` query it becomes.

import { parseGoDuration } from './ticks';

export interface SearchQuery {
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

/** The URL parameters for `q` (defaults left out). */
export function toParams(q: SearchQuery): URLSearchParams {
  const p = new URLSearchParams();
  const put = (k: string, v: string) => v !== '' && p.set(k, v);
  put('service', q.service);
  put('operation', q.operation);
  put('tags', q.tags.trim());
  put('minDuration', q.minDuration.trim());
  put('maxDuration', q.maxDuration.trim());
  if (q.lookback !== DEFAULT_QUERY.lookback) p.set('lookback', q.lookback);
  if (q.lookback === 'custom') {
    if (q.start !== null) p.set('start', String(q.start));
    if (q.end !== null) p.set('end', String(q.end));
  }
  put('cluster', q.cluster);
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

/** The `/api/traces` parameters for `q` at `nowMs`, or what is wrong. */
export function toApiParams(q: SearchQuery, nowMs: number): Parsed<URLSearchParams> {
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
  let startMs: number;
  let endMs: number;
  if (q.lookback === 'custom') {
    if (q.start === null || q.end === null) return { ok: false, error: 'custom range: set start and end' };
    if (q.start >= q.end) return { ok: false, error: 'custom range: start must be before end' };
    startMs = q.start;
    endMs = q.end;
  } else {
    endMs = nowMs;
    startMs = nowMs - (LOOKBACKS[q.lookback] ?? LOOKBACKS['1h']);
  }
  const p = new URLSearchParams();
  p.set('service', q.service);
  if (q.operation) p.set('operation', q.operation);
  if (Object.keys(t).length) p.set('tags', JSON.stringify(t));
  if (q.minDuration.trim()) p.set('minDuration', q.minDuration.trim());
  if (q.maxDuration.trim()) p.set('maxDuration', q.maxDuration.trim());
  p.set('start', String(Math.floor(startMs * 1000)));
  p.set('end', String(Math.ceil(endMs * 1000)));
  p.set('limit', String(q.limit));
  return { ok: true, value: p };
}
