// The critical path: the chain of work that determined the trace's end.
// Walking back from a span's end, the child that finished last (before the
// cursor) is on the path; before and between such children the span's own
// time is. Children running past their parent's end are cut at it.

import type { Span, Trace } from './trace';

export interface Segment {
  spanId: string;
  start: number;
  end: number;
}

/** Segments on the critical path, in time order. */
export function criticalPath(trace: Trace): Segment[] {
  const root = trace.roots.reduce<Span | null>((best, r) => (!best || r.end > best.end ? r : best), null);
  if (!root) return [];
  const out: Segment[] = [];
  // Explicit stack of (span, end cut): a deep chain must not overflow.
  const stack: Array<{ span: Span; until: number }> = [{ span: root, until: root.end }];
  while (stack.length) {
    const { span, until } = stack.pop()!;
    let cursor = Math.min(span.end, until);
    const children = [...span.children].sort((a, b) => b.end - a.end);
    for (const child of children) {
      if (child.start >= cursor || child.end <= span.start) continue;
      const childEnd = Math.min(child.end, cursor);
      if (childEnd < cursor) out.push({ spanId: span.id, start: childEnd, end: cursor });
      stack.push({ span: child, until: childEnd });
      // The child's own segments are pushed when it is popped; record its
      // time here only through that recursion.
      cursor = Math.max(span.start, child.start);
      if (cursor <= span.start) break;
    }
    if (cursor > span.start) out.push({ spanId: span.id, start: span.start, end: cursor });
  }
  return out.sort((a, b) => a.start - b.start || a.end - b.end);
}

/** Ids of the spans with any time on the critical path. */
export function criticalSpans(segments: Segment[]): Set<string> {
  return new Set(segments.map((s) => s.spanId));
}
