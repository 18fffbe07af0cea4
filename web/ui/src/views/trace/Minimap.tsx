// The whole trace in miniature (one line per span, drawn on a canvas) with
// the zoom window: drag to select a window, drag the window to pan,
// double-click or "Reset zoom" to see everything.

import { useEffect, useRef, useState } from 'preact/hooks';
import { serviceColor } from '../../lib/colors';
import type { Trace } from '../../lib/trace';
import { ticks } from '../../lib/ticks';
import type { ViewWindow } from '../../lib/waterfall';

const HEIGHT = 64;

export function Minimap({ trace, view, critical, onView }: { trace: Trace; view: ViewWindow; critical: ReadonlySet<string> | null; onView: (w: ViewWindow) => void }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const box = useRef<HTMLDivElement>(null);
  const [drag, setDrag] = useState<{ mode: 'select' | 'pan'; x0: number; x1: number; view0: ViewWindow } | null>(null);
  const dur = Math.max(1, trace.duration);
  useEffect(() => {
    const c = canvas.current;
    if (!c) return;
    const draw = () => {
      const w = c.clientWidth;
      const dpr = window.devicePixelRatio || 1;
      c.width = w * dpr;
      c.height = HEIGHT * dpr;
      const g = c.getContext('2d');
      if (!g) return;
      g.scale(dpr, dpr);
      g.clearRect(0, 0, w, HEIGHT);
      const n = trace.spans.length;
      const h = Math.max(1, HEIGHT / Math.max(1, n));
      trace.spans.forEach((s, i) => {
        g.fillStyle = s.error ? '#dc2626' : serviceColor(s.service);
        g.globalAlpha = critical && !critical.has(s.id) ? 0.45 : 1;
        const x = ((s.start - trace.start) / dur) * w;
        g.fillRect(x, (i / Math.max(1, n)) * HEIGHT, Math.max(1, (s.duration / dur) * w), h);
      });
    };
    draw();
    const ro = new ResizeObserver(draw);
    ro.observe(c);
    return () => ro.disconnect();
  }, [trace, critical]);

  const frac = (clientX: number) => {
    const r = box.current!.getBoundingClientRect();
    return Math.min(1, Math.max(0, (clientX - r.left) / r.width));
  };
  const zoomed = view.start > trace.start || view.end < trace.end;
  const wl = (view.start - trace.start) / dur;
  const ww = (view.end - view.start) / dur;
  const down = (e: PointerEvent) => {
    const x = frac(e.clientX);
    (e.currentTarget as HTMLElement).setPointerCapture(e.pointerId);
    setDrag({ mode: zoomed && x >= wl && x <= wl + ww ? 'pan' : 'select', x0: x, x1: x, view0: view });
  };
  const move = (e: PointerEvent) => {
    if (!drag) return;
    const x = frac(e.clientX);
    setDrag({ ...drag, x1: x });
    if (drag.mode === 'pan') {
      const shift = (x - drag.x0) * dur;
      onView({ start: drag.view0.start + shift, end: drag.view0.end + shift });
    }
  };
  const up = () => {
    if (drag?.mode === 'select') {
      const [a, b] = [Math.min(drag.x0, drag.x1), Math.max(drag.x0, drag.x1)];
      if (b - a > 0.005) onView({ start: trace.start + a * dur, end: trace.start + b * dur });
    }
    setDrag(null);
  };
  const sel = drag?.mode === 'select' ? [Math.min(drag.x0, drag.x1), Math.abs(drag.x1 - drag.x0)] : null;
  return (
    <div class="minimap">
      <div class="minimap-axis">
        {ticks(trace.start, trace.end, 6).map((t) => (
          <span style={{ left: `${t.at * 100}%` }} key={t.offset}>
            {t.label}
          </span>
        ))}
      </div>
      <div
        class="minimap-box"
        ref={box}
        onPointerDown={down}
        onPointerMove={move}
        onPointerUp={up}
        onDblClick={() => onView({ start: trace.start, end: trace.end })}
        data-testid="minimap"
        title="Drag to zoom, drag the window to pan, double-click to reset"
      >
        <canvas ref={canvas} style={{ height: HEIGHT }} />
        {zoomed && (
          <>
            <div class="mm-shade" style={{ left: 0, width: `${wl * 100}%` }} />
            <div class="mm-window" style={{ left: `${wl * 100}%`, width: `${ww * 100}%` }} />
            <div class="mm-shade" style={{ left: `${(wl + ww) * 100}%`, right: 0 }} />
          </>
        )}
        {sel && <div class="mm-select" style={{ left: `${sel[0] * 100}%`, width: `${sel[1] * 100}%` }} />}
      </div>
      {zoomed && (
        <button type="button" class="reset-zoom" onClick={() => onView({ start: trace.start, end: trace.end })}>
          Reset zoom
        </button>
      )}
    </div>
  );
}
