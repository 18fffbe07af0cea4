import { useEffect, useMemo, useState } from 'preact/hooks';
import { ClusterBadge, formatTime } from '../../components/common';
import { criticalPath, criticalSpans } from '../../lib/critical';
import { formatDuration } from '../../lib/ticks';
import type { JTrace, Trace } from '../../lib/trace';
import { ancestors, clampWindow, findSpans, type ViewWindow } from '../../lib/waterfall';
import { navigate } from '../../router';
import { Completeness, Links } from './Panels';
import { Minimap } from './Minimap';
import { SpanDetail } from './SpanDetail';
import { Waterfall } from './Waterfall';

export function TracePage({ trace, json, raw }: { trace: Trace; json: JTrace; raw: boolean }) {
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const [selected, setSelected] = useState<string | null>(null);
  const [detail, setDetail] = useState<string | null>(null);
  const [view, setView] = useState<ViewWindow>({ start: trace.start, end: trace.end });
  const [find, setFind] = useState('');
  const [hitIndex, setHitIndex] = useState(0);
  const [showCritical, setShowCritical] = useState(true);
  const [scrollTo, setScrollTo] = useState<{ id: string; n: number } | null>(null);

  useEffect(() => setView({ start: trace.start, end: trace.end }), [trace]);
  const segments = useMemo(() => criticalPath(trace), [trace]);
  const critical = useMemo(() => criticalSpans(segments), [segments]);
  const hits = useMemo(() => findSpans(trace, find), [trace, find]);
  const hitList = useMemo(() => trace.spans.filter((s) => hits.has(s.id)).map((s) => s.id), [hits, trace]);

  const reveal = (id: string) => {
    const up = ancestors(trace, id);
    if (up.some((a) => collapsed.has(a))) {
      const next = new Set(collapsed);
      up.forEach((a) => next.delete(a));
      setCollapsed(next);
    }
    setSelected(id);
    setScrollTo((s) => ({ id, n: (s?.n ?? 0) + 1 }));
  };
  const gotoHit = (delta: number) => {
    if (!hitList.length) return;
    const i = (((hitIndex + delta) % hitList.length) + hitList.length) % hitList.length;
    setHitIndex(i);
    reveal(hitList[i]);
  };
  const toggle = (id: string) => {
    const next = new Set(collapsed);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setCollapsed(next);
  };
  const collapseAll = () => setCollapsed(new Set(trace.spans.filter((s) => s.children.length).map((s) => s.id)));
  const download = () => {
    const blob = new Blob([JSON.stringify({ data: [json] }, null, 2)], { type: 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `trace-${trace.id}${raw ? '-raw' : ''}.json`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };
  const setRaw = (r: boolean) => navigate(`/trace/${trace.id}${r ? '?raw=true' : ''}`);
  const root = trace.roots[0];
  const detailSpan = detail ? trace.byId.get(detail) ?? null : null;
  const crossings = trace.spans.filter((s) => s.crossesCluster).length;

  return (
    <>
      <div class="trace-header card">
        <h1>
          <span class="svc">{root?.service}</span>: {root?.operation}
          <span class="trace-id">{trace.id}</span>
        </h1>
        <div class="trace-facts">
          <span>Started {formatTime(trace.start)}</span>
          <span>Duration {formatDuration(trace.duration)}</span>
          <span data-testid="span-count">{trace.spans.length} spans</span>
          <span>
            {trace.services.length} service{trace.services.length === 1 ? '' : 's'}
          </span>
          {trace.errorCount > 0 && <span class="errors">{trace.errorCount} error{trace.errorCount === 1 ? '' : 's'}</span>}
          <span>
            {trace.clusters.length} cluster{trace.clusters.length === 1 ? '' : 's'}:{' '}
            {trace.clusters.map((c) => (
              <ClusterBadge key={c} cluster={c} />
            ))}
          </span>
          {crossings > 0 && <span title="spans whose parent ran in another cluster">⇄ {crossings} cluster crossings</span>}
        </div>
        <div class="toolbar">
          <div class="segmented" role="group" aria-label="Timestamps">
            <button type="button" class={!raw ? 'on' : ''} aria-pressed={!raw} onClick={() => setRaw(false)}>
              Corrected
            </button>
            <button type="button" class={raw ? 'on' : ''} aria-pressed={raw} onClick={() => setRaw(true)}>
              Raw
            </button>
          </div>
          <form
            class="find"
            onSubmit={(e) => {
              e.preventDefault();
              gotoHit(1);
            }}
          >
            <input
              placeholder="Find in trace…"
              aria-label="Find in trace"
              value={find}
              onInput={(e) => {
                setFind(e.currentTarget.value);
                setHitIndex(-1);
              }}
            />
            {find && (
              <span class="hits" data-testid="find-hits">
                {hitList.length ? `${hitIndex + 1 > 0 ? hitIndex + 1 : 0} of ${hitList.length}` : 'no match'}
              </span>
            )}
            <button type="button" onClick={() => gotoHit(-1)} disabled={!hitList.length} aria-label="Previous match">
              ↑
            </button>
            <button type="button" onClick={() => gotoHit(1)} disabled={!hitList.length} aria-label="Next match">
              ↓
            </button>
          </form>
          <button type="button" onClick={() => setCollapsed(new Set())}>
            Expand all
          </button>
          <button type="button" onClick={collapseAll}>
            Collapse all
          </button>
          <label class="check">
            <input type="checkbox" checked={showCritical} onChange={(e) => setShowCritical(e.currentTarget.checked)} /> Critical path
          </label>
          <button type="button" onClick={download}>
            Download JSON
          </button>
          <button
            type="button"
            onClick={() => {
              const other = window.prompt('Compare with trace id:')?.trim().toLowerCase();
              if (other && /^[0-9a-f]+$/.test(other)) navigate(`/compare/${trace.id}/${other}`);
            }}
          >
            Compare with…
          </button>
        </div>
        <SkewNotice trace={trace} raw={raw} onRaw={setRaw} />
        {trace.warnings.filter((w) => w !== trace.skewWarning).map((w) => (
          <div class="notice warn" key={w}>
            {w}
          </div>
        ))}
      </div>
      <div class="panels">
        <Completeness traceId={trace.id} />
        <Links trace={trace} />
      </div>
      <div class={`trace-body ${detailSpan ? 'with-detail' : ''}`}>
        <div class="trace-main card">
          <Minimap trace={trace} view={view} critical={showCritical ? critical : null} onView={(w) => setView(clampWindow(w, trace))} />
          <Waterfall
            trace={trace}
            view={view}
            collapsed={collapsed}
            onToggle={toggle}
            selected={selected}
            onSelect={(id) => {
              setSelected(id);
              setDetail(id);
            }}
            onKeySelect={setSelected}
            onCollapse={(id, c) => {
              const next = new Set(collapsed);
              if (c) next.add(id);
              else next.delete(id);
              setCollapsed(next);
            }}
            onEnter={(id) => setDetail((d) => (d === id ? null : id))}
            onEscape={() => setDetail(null)}
            segments={showCritical ? segments : []}
            critical={showCritical ? critical : null}
            hits={find ? hits : null}
            scrollTo={scrollTo}
          />
        </div>
        {detailSpan && <SpanDetail trace={trace} span={detailSpan} onClose={() => setDetail(null)} onSelect={reveal} />}
      </div>
    </>
  );
}

function SkewNotice({ trace, raw, onRaw }: { trace: Trace; raw: boolean; onRaw: (r: boolean) => void }) {
  if (raw) {
    return (
      <div class="notice info" data-testid="skew-notice">
        Showing <strong>raw</strong> timestamps as each cluster reported them (no clock-skew correction).{' '}
        <button type="button" class="link" onClick={() => onRaw(false)}>
          Show corrected times
        </button>
      </div>
    );
  }
  if (!trace.skewWarning) return null;
  return (
    <div class="notice info" data-testid="skew-notice">
      <strong>Clock skew corrected.</strong> {trace.skewWarning.replace(/^clock skew:\s*/, '')}{' '}
      <button type="button" class="link" onClick={() => onRaw(true)}>
        Show raw times
      </button>
    </div>
  );
}
