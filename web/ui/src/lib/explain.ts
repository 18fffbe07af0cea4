// "What's different?": the /api/v1/explain request for a region brushed
// on the search scatter, and the answer's shape (README.md, "Explain").

import { type SearchQuery, toApiParams } from './searchQuery';

/** A region of the scatter: start times (µs since the epoch) × durations (µs). */
export interface Brush {
  startUs: number;
  endUs: number;
  minDurationUs: number;
  maxDurationUs: number;
}

export interface ExplainDimension {
  key: string;
  value: string;
  selectionShare: number;
  baselineShare: number;
  score: number;
  exampleTraceIDs: string[];
}

export interface ExplainLatency {
  service: string;
  cluster: string;
  selectionSelfMs: number;
  baselineSelfMs: number;
  deltaMs: number;
}

export interface ExplainGap {
  fromCluster: string;
  toCluster: string;
  selectionMs: number;
  baselineMs: number;
  deltaMs: number;
}

export interface ExplainSide {
  traces: number;
  spans: number;
  adjustedTraces: number;
  meanDurationMs: number;
  candidates: number;
  sampled: boolean;
}

export interface ExplainAnswer {
  selection: ExplainSide;
  baseline: ExplainSide;
  dimensions: ExplainDimension[];
  latency: ExplainLatency[];
  gaps: ExplainGap[];
  skippedKeys: { key: string; distinctValues: number; reason: string }[];
  excludedKeys: string[];
  significantScore: number;
  limit: number;
  partial: boolean;
  warnings: string[];
}

/**
 * The explain parameters for `brush` over the search `q`: the selection
 * is the search's filters narrowed to the brushed durations and times,
 * the baseline the search's whole window (the gateway leaves the
 * selected traces out of it). In TraceQL mode the durations are a second
 * spanset beside the query (`(q) && { duration >= … }`), since `q` takes
 * no form filter beside it.
 */
export function explainParams(q: SearchQuery, brush: Brush, nowMs: number): { ok: true; value: URLSearchParams } | { ok: false; error: string } {
  const api = toApiParams(q, nowMs);
  if (!api.ok) return api;
  const p = new URLSearchParams(api.value);
  const windowStart = p.get('start');
  const windowEnd = p.get('end');
  p.delete('limit');
  const lo = Math.max(0, Math.floor(brush.minDurationUs));
  const hi = Math.max(lo, Math.ceil(brush.maxDurationUs));
  if (q.mode === 'traceql') {
    p.set('q', `(${q.traceql.trim()}) && { duration >= ${lo}us && duration <= ${hi}us }`);
  } else {
    p.set('minDuration', `${lo}us`);
    p.set('maxDuration', `${hi}us`);
  }
  p.set('start', String(Math.floor(brush.startUs)));
  p.set('end', String(Math.ceil(brush.endUs)));
  if (windowStart && windowEnd) {
    p.set('baselineStart', windowStart);
    p.set('baselineEnd', windowEnd);
  }
  return { ok: true, value: p };
}

/** A share as a percentage for the paired bars. */
export function pct(share: number): string {
  return `${(share * 100).toFixed(share > 0 && share < 0.01 ? 1 : 0)}%`;
}
