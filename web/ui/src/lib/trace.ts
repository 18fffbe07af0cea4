// The Jaeger v1 trace JSON the gateway serves, and the span tree the views
// work on (pure: no DOM, no fetch).

export interface JTag {
  key: string;
  type?: string;
  value: unknown;
}
export interface JLog {
  timestamp: number;
  fields: JTag[];
}
export interface JRef {
  refType: 'CHILD_OF' | 'FOLLOWS_FROM' | string;
  traceID: string;
  spanID: string;
}
export interface JSpan {
  traceID: string;
  spanID: string;
  flags?: number;
  operationName: string;
  references?: JRef[] | null;
  startTime: number;
  duration: number;
  tags?: JTag[] | null;
  logs?: JLog[] | null;
  processID: string;
  warnings?: string[] | null;
}
export interface JProcess {
  serviceName: string;
  tags?: JTag[] | null;
}
export interface JTrace {
  traceID: string;
  spans: JSpan[];
  processes: Record<string, JProcess>;
  warnings?: string[] | null;
}

export interface Span {
  id: string;
  traceId: string;
  operation: string;
  service: string;
  cluster: string;
  /** µs since the epoch. */
  start: number;
  duration: number;
  end: number;
  parent: Span | null;
  /** Had a CHILD_OF reference to a span that is not in the trace. */
  missingParent: boolean;
  /** Sorted by start time. */
  children: Span[];
  depth: number;
  /** Position in depth-first order. */
  index: number;
  error: boolean;
  kind: string;
  /** Its cluster differs from its parent's. */
  crossesCluster: boolean;
  tags: JTag[];
  logs: JLog[];
  process: JProcess;
  references: JRef[];
  warnings: string[];
}

export interface Trace {
  id: string;
  /** Depth-first, children by start time. */
  spans: Span[];
  roots: Span[];
  byId: Map<string, Span>;
  start: number;
  end: number;
  duration: number;
  services: string[];
  clusters: string[];
  errorCount: number;
  warnings: string[];
  /** The trace-level warning naming a clock-skew correction, if any. */
  skewWarning: string | null;
}

/** Where the cluster of a process is read from, in order. */
export const CLUSTER_TAGS = ['meridian.cluster', 'k8s.cluster.name'];
export const UNKNOWN_CLUSTER = 'unknown';

export function tagValue(tags: JTag[] | null | undefined, key: string): unknown {
  return tags?.find((t) => t.key === key)?.value;
}

export function clusterOf(process: JProcess | undefined): string {
  for (const k of CLUSTER_TAGS) {
    const v = tagValue(process?.tags, k);
    if (typeof v === 'string' && v !== '') return v;
  }
  return UNKNOWN_CLUSTER;
}

export function isErrorSpan(tags: JTag[] | null | undefined): boolean {
  const e = tagValue(tags, 'error');
  if (e === true || e === 'true') return true;
  return tagValue(tags, 'otel.status_code') === 'ERROR';
}

/** The parent span id inside the same trace (CHILD_OF), if any. */
export function parentRef(traceId: string, refs: JRef[]): JRef | undefined {
  return refs.find((r) => r.refType === 'CHILD_OF' && r.traceID === traceId);
}

const byStart = (a: Span, b: Span) => a.start - b.start || a.id.localeCompare(b.id);

export function buildTrace(j: JTrace): Trace {
  const byId = new Map<string, Span>();
  const noProcess: JProcess = { serviceName: 'unknown', tags: [] };
  for (const s of j.spans) {
    if (byId.has(s.spanID)) continue; // duplicate ids: keep the first
    const process = j.processes[s.processID] ?? noProcess;
    const tags = s.tags ?? [];
    byId.set(s.spanID, {
      id: s.spanID,
      traceId: s.traceID,
      operation: s.operationName,
      service: process.serviceName,
      cluster: clusterOf(process),
      start: s.startTime,
      duration: s.duration,
      end: s.startTime + s.duration,
      parent: null,
      missingParent: false,
      children: [],
      depth: 0,
      index: 0,
      error: isErrorSpan(tags),
      kind: String(tagValue(tags, 'span.kind') ?? ''),
      crossesCluster: false,
      tags,
      logs: s.logs ?? [],
      process,
      references: s.references ?? [],
      warnings: s.warnings ?? [],
    });
  }
  const roots: Span[] = [];
  for (const span of byId.values()) {
    const ref = parentRef(span.traceId, span.references);
    const parent = ref ? byId.get(ref.spanID) : undefined;
    if (parent && parent !== span) {
      span.parent = parent;
      parent.children.push(span);
    } else {
      span.missingParent = ref !== undefined;
      roots.push(span);
    }
  }
  roots.sort(byStart);
  // Depth-first order without recursion (a trace may be a long chain); a
  // reference cycle leaves its spans unreachable: they become roots.
  const spans: Span[] = [];
  const seen = new Set<Span>();
  const walk = (root: Span) => {
    const stack: Span[] = [root];
    while (stack.length) {
      const s = stack.pop()!;
      if (seen.has(s)) continue;
      seen.add(s);
      s.index = spans.length;
      s.depth = s.parent && seen.has(s.parent) ? s.parent.depth + 1 : 0;
      s.crossesCluster = s.parent !== null && s.parent.cluster !== s.cluster;
      spans.push(s);
      s.children.sort(byStart);
      for (let i = s.children.length - 1; i >= 0; i--) stack.push(s.children[i]);
    }
  };
  roots.forEach(walk);
  for (const s of byId.values()) {
    if (!seen.has(s)) {
      if (s.parent) s.parent.children = s.parent.children.filter((c) => c !== s);
      s.parent = null;
      roots.push(s);
      walk(s);
    }
  }
  let start = Infinity;
  let end = -Infinity;
  let errorCount = 0;
  for (const s of spans) {
    start = Math.min(start, s.start);
    end = Math.max(end, s.end);
    if (s.error) errorCount++;
  }
  if (!spans.length) start = end = 0;
  const warnings = j.warnings ?? [];
  return {
    id: j.traceID,
    spans,
    roots,
    byId,
    start,
    end,
    duration: end - start,
    services: [...new Set(spans.map((s) => s.service))].sort(),
    clusters: [...new Set(spans.map((s) => s.cluster))].sort(),
    errorCount,
    warnings,
    skewWarning: warnings.find((w) => w.startsWith('clock skew:')) ?? null,
  };
}

/** One row of the search result list. */
export interface TraceSummary {
  traceId: string;
  rootService: string;
  rootOperation: string;
  /** No span without a parent: the root has not arrived (yet). */
  rootMissing: boolean;
  spanCount: number;
  errorCount: number;
  clusters: string[];
  services: string[];
  start: number;
  duration: number;
}

export function summarize(j: JTrace): TraceSummary {
  const t = buildTrace(j);
  const realRoot = t.roots.find((r) => !r.missingParent);
  const root = realRoot ?? t.roots[0];
  return {
    traceId: t.id,
    rootService: root?.service ?? '',
    rootOperation: root?.operation ?? '',
    rootMissing: !realRoot,
    spanCount: t.spans.length,
    errorCount: t.errorCount,
    clusters: t.clusters,
    services: t.services,
    start: t.start,
    duration: t.duration,
  };
}
