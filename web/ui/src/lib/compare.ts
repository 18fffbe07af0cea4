// "Compare with…": two traces aligned on matching spans, in the manner of
// Jaeger's trace comparison: a span's identity is its service, operation
// and parent chain (the same identities again are numbered in start
// order), so the same call in two traces is one row.

import type { Span, Trace } from './trace';

export type RowKind = 'same' | 'added' | 'missing' | 'slower' | 'faster';

export interface CompareRow {
  /** `service op` of each span from the root down to this one. */
  path: string[];
  depth: number;
  /** Durations (µs); null where the span is absent. */
  a: number | null;
  b: number | null;
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
  const keys = [...new Set([...ia.keys(), ...ib.keys()])].sort();
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
    return { path, depth: path.length - 1, a: da, b: db, kind };
  });
}
