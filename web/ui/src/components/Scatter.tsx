// Search results as points: x = start time, y = duration; errors in red.
// Clicking a point opens its trace; dragging a box (time × duration)
// brushes a region (`onBrush`), for "What's different?".

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { Brush } from '../lib/explain';
import type { TraceSummary } from '../lib/trace';
import { formatDuration } from '../lib/ticks';

export function Scatter({ traces, onOpen, onBrush }: { traces: TraceSummary[]; onOpen: (id: string) => void; onBrush?: (b: Brush | null) => void }) {
  const el = useRef<HTMLDivElement>(null);
  const open = useRef(onOpen);
  open.current = onOpen;
  const brush = useRef(onBrush);
  brush.current = onBrush;
  useEffect(() => {
    const host = el.current;
    if (!host) return;
    const sorted = [...traces].sort((a, b) => a.start - b.start);
    const xs = sorted.map((t) => t.start / 1e6);
    const ok = sorted.map((t) => (t.errorCount ? null : t.duration / 1000));
    const bad = sorted.map((t) => (t.errorCount ? t.duration / 1000 : null));
    const style = getComputedStyle(document.documentElement);
    const fg = style.getPropertyValue('--muted').trim() || '#888';
    const grid = style.getPropertyValue('--border').trim() || '#ddd';
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    const points = (color: string) => ({ show: true, size: 8, fill: color, stroke: color });
    const opts: uPlot.Options = {
      width: host.clientWidth || 800,
      height: 180,
      legend: { show: false },
      cursor: { drag: { x: true, y: true, setScale: false }, points: { size: 10 } },
      hooks: {
        setSelect: [
          (u) => {
            const { left, top, width, height } = u.select;
            if (width < 3 && height < 3) return;
            // x is seconds, y is milliseconds.
            const x0 = u.posToVal(left, 'x');
            const x1 = u.posToVal(left + width, 'x');
            const yHi = u.posToVal(top, 'y');
            const yLo = u.posToVal(top + height, 'y');
            dragged = true;
            brush.current?.({ startUs: x0 * 1e6, endUs: x1 * 1e6, minDurationUs: Math.max(0, yLo * 1000), maxDurationUs: yHi * 1000 });
          },
        ],
      },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] } },
      axes: [axis, { ...axis, size: 70, values: (_u, vals) => vals.map((v) => formatDuration(v * 1000)) }],
      series: [
        {},
        { label: 'trace', stroke: '#3b82f6', paths: () => null, points: points('#3b82f6') },
        { label: 'with errors', stroke: '#dc2626', paths: () => null, points: points('#dc2626') },
      ],
    };
    let dragged = false;
    const plot = new uPlot(opts, [xs, ok, bad], host);
    const click = () => {
      // The mouse-up of a brush is not a click on a point.
      if (dragged) {
        dragged = false;
        return;
      }
      const i = plot.cursor.idx;
      if (i !== null && i !== undefined && sorted[i]) open.current(sorted[i].traceId);
    };
    plot.over.addEventListener('click', click);
    const ro = new ResizeObserver(() => plot.setSize({ width: host.clientWidth, height: 180 }));
    ro.observe(host);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [traces]);
  return <div class="scatter" ref={el} data-testid="scatter" />;
}
