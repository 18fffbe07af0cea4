// A small uPlot time series chart.

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface Line {
  label: string;
  color: string;
  values: Array<number | null>;
}

export function LineChart({ title, times, lines, format }: { title: string; times: number[]; lines: Line[]; format: (v: number) => string }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const host = el.current;
    if (!host) return;
    const style = getComputedStyle(document.documentElement);
    const fg = style.getPropertyValue('--muted').trim() || '#888';
    const grid = style.getPropertyValue('--border').trim() || '#ddd';
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    const plot = new uPlot(
      {
        title,
        width: host.clientWidth || 400,
        height: 200,
        scales: { x: { time: true } },
        axes: [axis, { ...axis, size: 60, values: (_u, vals) => vals.map(format) }],
        series: [{}, ...lines.map((l) => ({ label: l.label, stroke: l.color, width: 1.5, value: (_u: uPlot, v: number | null) => (v === null ? '—' : format(v)) }))],
      },
      [times.map((t) => t / 1000), ...lines.map((l) => l.values)],
      host,
    );
    const ro = new ResizeObserver(() => plot.setSize({ width: host.clientWidth, height: 200 }));
    ro.observe(host);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [times, lines]);
  return <div class="chart" ref={el} />;
}
