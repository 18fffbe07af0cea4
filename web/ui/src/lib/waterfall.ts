// Waterfall layout: which rows are visible under the collapsed set, where a
// bar sits in the current view window, and which rows a viewport shows.

import type { Span, Trace } from './trace';

/** A window of the trace's time, µs since the epoch. */
export interface ViewWindow {
  start: number;
  end: number;
}

/** Spans shown when the spans in `collapsed` hide their descendants. */
export function visibleRows(trace: Trace, collapsed: ReadonlySet<string>): Span[] {
  if (collapsed.size === 0) return trace.spans;
  const rows: Span[] = [];
  const spans = trace.spans;
  for (let i = 0; i < spans.length; ) {
    const s = spans[i];
    rows.push(s);
    i = collapsed.has(s.id) ? subtreeEnd(spans, i) : i + 1;
  }
  return rows;
}

/** Index after the last descendant of `spans[i]` (depth-first order). */
export function subtreeEnd(spans: Span[], i: number): number {
  const depth = spans[i].depth;
  let j = i + 1;
  while (j < spans.length && spans[j].depth > depth) j++;
  return j;
}

/** Number of descendants of a span (for the collapsed badge). */
export function descendantCount(trace: Trace, span: Span): number {
  return subtreeEnd(trace.spans, span.index) - span.index - 1;
}

export interface Bar {
  /** Fraction of the row width, may be < 0 or > 1 when outside the window. */
  left: number;
  width: number;
  /** Any part of the bar is inside the window. */
  visible: boolean;
}

/** Smallest bar, as a fraction of the width (so a 0 µs span shows). */
export const MIN_BAR = 0.002;

export function barFor(start: number, end: number, w: ViewWindow): Bar {
  const span = Math.max(1, w.end - w.start);
  const left = (start - w.start) / span;
  const width = Math.max(MIN_BAR, (end - start) / span);
  return { left, width, visible: end >= w.start && start <= w.end };
}

/** The part of a bar inside the window ([0, 1]), for drawing. */
export function clipBar(b: Bar): Bar {
  const left = Math.min(1, Math.max(0, b.left));
  const right = Math.max(left, Math.min(1, b.left + b.width));
  return { left, width: Math.max(MIN_BAR, right - left), visible: b.visible };
}

/** Rows `[first, last)` to render for a scroll position (virtualisation). */
export function rowWindow(
  scrollTop: number,
  viewportHeight: number,
  rowHeight: number,
  total: number,
  overscan = 10,
): { first: number; last: number } {
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(total, Math.ceil((scrollTop + viewportHeight) / rowHeight) + overscan);
  return { first, last: Math.max(first, last) };
}

/** Clamps a zoom window to the trace and to a minimum width. */
export function clampWindow(w: ViewWindow, trace: { start: number; end: number }): ViewWindow {
  const full = Math.max(1, trace.end - trace.start);
  const min = Math.max(1, full / 1000);
  let width = Math.min(full, Math.max(min, w.end - w.start));
  let start = Math.max(trace.start, Math.min(w.start, trace.end - width));
  if (!Number.isFinite(start)) start = trace.start;
  if (!Number.isFinite(width)) width = full;
  return { start, end: start + width };
}

/** Keyboard navigation over the visible rows. */
export type NavKey = 'ArrowUp' | 'ArrowDown' | 'ArrowLeft' | 'ArrowRight';

export interface NavResult {
  selected: string | null;
  collapse?: string;
  expand?: string;
}

export function navigate(rows: Span[], collapsed: ReadonlySet<string>, selected: string | null, key: NavKey): NavResult {
  if (!rows.length) return { selected: null };
  const i = selected === null ? -1 : rows.findIndex((r) => r.id === selected);
  if (i < 0) return { selected: rows[0].id };
  const s = rows[i];
  switch (key) {
    case 'ArrowUp':
      return { selected: rows[Math.max(0, i - 1)].id };
    case 'ArrowDown':
      return { selected: rows[Math.min(rows.length - 1, i + 1)].id };
    case 'ArrowLeft':
      if (s.children.length && !collapsed.has(s.id)) return { selected: s.id, collapse: s.id };
      return { selected: s.parent ? s.parent.id : s.id };
    case 'ArrowRight':
      if (s.children.length && collapsed.has(s.id)) return { selected: s.id, expand: s.id };
      return { selected: s.children.length ? s.children[0].id : s.id };
  }
}

/** Spans whose operation, service, cluster, id or tag values contain `q`. */
export function findSpans(trace: Trace, q: string): Set<string> {
  const needle = q.trim().toLowerCase();
  const hits = new Set<string>();
  if (!needle) return hits;
  for (const s of trace.spans) {
    const hay = [s.operation, s.service, s.cluster, s.id, ...s.tags.map((t) => `${t.key}=${String(t.value)}`)];
    if (hay.some((h) => h.toLowerCase().includes(needle))) hits.add(s.id);
  }
  return hits;
}

/** Ancestors of `id`, to expand so it becomes visible. */
export function ancestors(trace: Trace, id: string): string[] {
  const out: string[] = [];
  let s = trace.byId.get(id)?.parent ?? null;
  while (s) {
    out.push(s.id);
    s = s.parent;
  }
  return out;
}
