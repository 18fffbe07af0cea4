// "Compare with…": two traces aligned on matching spans, in the manner of
// Jaeger's trace comparison: a span's identity is its service, operation
// and parent chain (the same identities again are numbered in start
// order), so the same call in two traces is one row. Rows come in
// waterfall order (depth first, siblings by start), each side with its
// offset from its own trace's start, so the view draws both waterfalls
// on one time scale.

import type { Span, Trace } from './trace';

export type RowKind = 'same' | 'added' | 'missing' | 'slower' | 'faster';

export interface CompareRow {
  /** `service op` of each span from the root down to this one. */
  path: string[];
  depth: number;
  /** Durations (µs); null where the span is absent. */
  a: number | null;
  b: number | null;
  /** Start offsets (µs) from each trace's start; null where absent. */
  aStart: number | null;
  bStart: number | null;
  kind: RowKind;
}

/** A difference smaller than this share of the longer duration is "same". */
export const SAME_WITHIN = 0.1;

function identities(t: Trace): Map<string, { span: Span; path: string[] }> {
  const out = new Map<string, { span: Span; path: string[] }>();
  const walk = (s: Span, parent: string[], seen: Map<string, number>) => {
    const label = `${s.service} ${s.operation}`;
    const n = seen.get(label) ?? 0;
    seen.set(label, n + 1);
    const path = [...parent, n ? `${label} #${n + 1}` : label];
    out.set(path.join(' › '), { span: s, path });
    const kids = new Map<string, number>();
    for (const c of s.children) walk(c, path, kids);
  };
  const roots = new Map<string, number>();
  for (const r of t.roots) walk(r, [], roots);
  return out;
}

/** `b` against `a`: added (only in b), missing (only in a), slower or faster. */
export function compareTraces(a: Trace, b: Trace): CompareRow[] {
  const ia = identities(a);
  const ib = identities(b);
  const offset = (key: string): number => {
    const x = ia.get(key);
    if (x) return x.span.start - a.start;
    const y = ib.get(key);
    return y ? y.span.start - b.start : 0;
  };
  // Depth first: a parent before its subtree, siblings by start (a's
  // where the span is in a), then by name.
  const order = (k: string) => {
    const path = (ia.get(k) ?? ib.get(k))?.path ?? [];
    return path.map((label, i) => ({ at: offset(path.slice(0, i + 1).join(' › ')), label }));
  };
  const keys = [...new Set([...ia.keys(), ...ib.keys()])];
  const orders = new Map(keys.map((k) => [k, order(k)]));
  keys.sort((x, y) => {
    const ox = orders.get(x) ?? [];
    const oy = orders.get(y) ?? [];
    for (let i = 0; i < Math.min(ox.length, oy.length); i++) {
      if (ox[i].at !== oy[i].at) return ox[i].at - oy[i].at;
      if (ox[i].label !== oy[i].label) return ox[i].label < oy[i].label ? -1 : 1;
    }
    return ox.length - oy.length;
  });
  return keys.map((k) => {
    const x = ia.get(k);
    const y = ib.get(k);
    const path = (x ?? y)?.path ?? [];
    const da = x ? x.span.duration : null;
    const db = y ? y.span.duration : null;
    let kind: RowKind = 'same';
    if (da === null) kind = 'added';
    else if (db === null) kind = 'missing';
    else if (Math.abs(db - da) > SAME_WITHIN * Math.max(da, db)) kind = db > da ? 'slower' : 'faster';
    return { path, depth: path.length - 1, a: da, b: db, aStart: x ? x.span.start - a.start : null, bStart: y ? y.span.start - b.start : null, kind };
  });
}

/** A bar's left and width in % of `scale` µs (at least a sliver wide). */
export function barBox(start: number, duration: number, scale: number): { left: number; width: number } {
  if (!(scale > 0)) return { left: 0, width: 0 };
  const left = Math.min(100, Math.max(0, (start / scale) * 100));
  const width = Math.min(100 - left, Math.max(0.3, (duration / scale) * 100));
  return { left, width };
}
