// The span rows: a tree (name column) beside bars on the time axis.
// Rows have a fixed height and only those in view (plus overscan) are in
// the DOM, so a 10,000-span trace scrolls as fast as a small one.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { clusterColor, serviceColor } from '../../lib/colors';
import type { Segment } from '../../lib/critical';
import { formatDuration, ticks } from '../../lib/ticks';
import type { Span, Trace } from '../../lib/trace';
import { barFor, clipBar, descendantCount, navigate, type NavKey, rowWindow, type ViewWindow, visibleRows } from '../../lib/waterfall';

export const ROW_HEIGHT = 26;

interface Props {
  trace: Trace;
  view: ViewWindow;
  collapsed: ReadonlySet<string>;
  onToggle: (id: string) => void;
  selected: string | null;
  onSelect: (id: string) => void;
  onKeySelect: (id: string) => void;
  onCollapse: (id: string, collapsed: boolean) => void;
  onEnter: (id: string) => void;
  onEscape: () => void;
  segments: Segment[];
  critical: ReadonlySet<string> | null;
  hits: ReadonlySet<string> | null;
  scrollTo: { id: string; n: number } | null;
}

export function Waterfall(p: Props) {
  const { trace, view } = p;
  const rows = useMemo(() => visibleRows(trace, p.collapsed), [trace, p.collapsed]);
  const bySpan = useMemo(() => {
    const m = new Map<string, Segment[]>();
    for (const s of p.segments) m.set(s.spanId, [...(m.get(s.spanId) ?? []), s]);
    return m;
  }, [p.segments]);
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const ensureVisible = (id: string) => {
    const el = scroller.current;
    const i = rows.findIndex((r) => r.id === id);
    if (!el || i < 0) return;
    const top = i * ROW_HEIGHT;
    if (top < el.scrollTop) el.scrollTop = top;
    else if (top + ROW_HEIGHT > el.scrollTop + el.clientHeight) el.scrollTop = top + ROW_HEIGHT - el.clientHeight;
  };
  useEffect(() => {
    if (p.scrollTo) ensureVisible(p.scrollTo.id);
  }, [p.scrollTo, rows]);

  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'Enter') {
      if (p.selected) p.onEnter(p.selected);
    } else if (e.key === 'Escape') {
      p.onEscape();
    } else if (['ArrowUp', 'ArrowDown', 'ArrowLeft', 'ArrowRight'].includes(e.key)) {
      const r = navigate(rows, p.collapsed, p.selected, e.key as NavKey);
      if (r.collapse) p.onCollapse(r.collapse, true);
      if (r.expand) p.onCollapse(r.expand, false);
      if (r.selected) {
        p.onKeySelect(r.selected);
        ensureVisible(r.selected);
      }
    } else {
      return;
    }
    e.preventDefault();
  };

  const { first, last } = rowWindow(scrollTop, height, ROW_HEIGHT, rows.length);
  const axis = ticks(view.start, view.end, 8, trace.start);
  return (
    <div class="waterfall" tabIndex={0} onKeyDown={onKey} role="tree" aria-label="Spans (arrow keys move, Enter opens)">
      <div class="wf-head">
        <div class="wf-namecol">Service · operation</div>
        <div class="wf-timecol">
          {axis.map((t) => (
            <span class="tick" style={{ left: `${t.at * 100}%` }} key={t.offset}>
              {t.label}
            </span>
          ))}
        </div>
      </div>
      <div class="wf-viewport">
        <div class="wf-grid" aria-hidden="true">
          {axis.map((t) => (
            <span style={{ left: `${t.at * 100}%` }} key={t.offset} />
          ))}
        </div>
        <div class="wf-scroll" ref={scroller} onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)} data-testid="waterfall-scroll">
          <div class="wf-canvas" style={{ height: rows.length * ROW_HEIGHT }}>
            {rows.slice(first, last).map((s, k) => (
              <Row
                key={s.id}
                span={s}
                top={(first + k) * ROW_HEIGHT}
                trace={trace}
                view={view}
                collapsed={p.collapsed.has(s.id)}
                selected={p.selected === s.id}
                onToggle={p.onToggle}
                onSelect={p.onSelect}
                segments={bySpan.get(s.id)}
                onCritical={p.critical?.has(s.id) ?? false}
                dim={p.hits !== null && !p.hits.has(s.id)}
                hit={p.hits?.has(s.id) ?? false}
              />
            ))}
          </div>
        </div>
      </div>
    </div>
  );
}

interface RowProps {
  span: Span;
  top: number;
  trace: Trace;
  view: ViewWindow;
  collapsed: boolean;
  selected: boolean;
  onToggle: (id: string) => void;
  onSelect: (id: string) => void;
  segments: Segment[] | undefined;
  onCritical: boolean;
  dim: boolean;
  hit: boolean;
}

function Row(r: RowProps) {
  const s = r.span;
  const bar = clipBar(barFor(s.start, s.end, r.view));
  const pct = (x: number) => `${x * 100}%`;
  const cls = ['wf-row', r.selected && 'selected', s.error && 'error', r.dim && 'dim', r.hit && 'hit', r.onCritical && 'critical'].filter(Boolean).join(' ');
  const hasChildren = s.children.length > 0;
  // The duration goes right of the bar, else left of it, else inside it.
  const end = bar.left + bar.width;
  const label =
    end <= 0.85
      ? { cls: '', style: { left: pct(end) } }
      : bar.left >= 0.12
        ? { cls: '', style: { right: pct(1 - bar.left) } }
        : { cls: 'inside', style: { right: pct(Math.max(0, 1 - end)) } };
  return (
    <div
      class={cls}
      style={{ top: r.top, height: ROW_HEIGHT }}
      role="treeitem"
      aria-level={s.depth + 1}
      aria-expanded={hasChildren ? !r.collapsed : undefined}
      aria-selected={r.selected}
      data-span-id={s.id}
      data-testid="span-row"
      onClick={() => r.onSelect(s.id)}
    >
      <div class="wf-name" style={{ '--c': clusterColor(s.cluster) }}>
        <span class="cluster-band" title={`cluster ${s.cluster}`} />
        <span class="indent" style={{ width: s.depth * 14 }} />
        {hasChildren ? (
          <button
            type="button"
            class="twisty"
            aria-label={r.collapsed ? 'Expand' : 'Collapse'}
            data-testid="toggle"
            onClick={(e) => {
              e.stopPropagation();
              r.onToggle(s.id);
            }}
          >
            {r.collapsed ? '▸' : '▾'}
          </button>
        ) : (
          <span class="twisty" />
        )}
        <span class="svc-dot" style={{ background: serviceColor(s.service) }} />
        <span class="svc">{s.service}</span>
        <span class="op">{s.operation}</span>
        {s.crossesCluster && (
          <span class="cross" title={`crosses from cluster ${s.parent?.cluster} to ${s.cluster}`} data-testid="cross-marker">
            ⇄ {s.cluster}
          </span>
        )}
        {s.error && (
          <span class="err-icon" title="error">
            !
          </span>
        )}
        {r.collapsed && <span class="badge">+{descendantCount(r.trace, s)}</span>}
      </div>
      <div class="wf-time">
        {s.crossesCluster && <span class="cross-line" style={{ left: pct(bar.left) }} />}
        {bar.visible && (
          <>
            <span class="bar" style={{ left: pct(bar.left), width: pct(bar.width), background: serviceColor(s.service) }} />
            {r.segments?.map((g) => {
              const b = clipBar(barFor(g.start, g.end, r.view));
              return <span class="crit" key={g.start} style={{ left: pct(b.left), width: pct(b.width) }} />;
            })}
            <span class={`bar-label ${label.cls}`} style={label.style}>
              {formatDuration(s.duration)}
            </span>
          </>
        )}
      </div>
    </div>
  );
}
