// "Compare with…": two traces side by side, aligned on matching spans
// (same service, operation and parent chain), with added, missing,
// slower and faster spans highlighted (lib/compare.ts): a waterfall per
// trace, both on the longer trace's time scale, so the extra time shows
// where it is.

import { get } from '../api';
import { Load } from '../components/common';
import { useFetch } from '../hooks';
import { barBox, compareTraces } from '../lib/compare';
import { formatDuration } from '../lib/ticks';
import { buildTrace, type JTrace } from '../lib/trace';

/** One side's span: its bar on the shared scale, and its duration. */
function Side({ start, duration, scale }: { start: number | null; duration: number | null; scale: number }) {
  if (start === null || duration === null) return <td class="cmp-side">—</td>;
  const { left, width } = barBox(start, duration, scale);
  return (
    <td class="cmp-side">
      <div class="cmp-track">
        <div class="cmp-bar" style={{ left: `${left}%`, width: `${width}%` }} />
      </div>
      <span class="cmp-dur">{formatDuration(duration)}</span>
    </td>
  );
}

const load = (id: string, s: AbortSignal) => get<{ data: JTrace[] }>(`/api/traces/${id}`, s).then((r) => r.data?.[0] ?? null);

export function CompareView({ a, b }: { a: string; b: string }) {
  const [both, retry] = useFetch((s) => Promise.all([load(a, s), load(b, s)]), [a, b]);
  return (
    <div class="page compare-page">
      <Load value={both} what="the two traces" retry={retry}>
        {([ja, jb]) => {
          if (!ja || !jb) return <div class="state empty">Trace {!ja ? a : b} was not found.</div>;
          const ta = buildTrace(ja);
          const tb = buildTrace(jb);
          const rows = compareTraces(ta, tb);
          const scale = Math.max(ta.duration, tb.duration);
          return (
            <div class="card">
              <h1>Compare traces</h1>
              <table class="compare" data-testid="compare">
                <thead>
                  <tr>
                    <th>span</th>
                    <th>
                      <a href={`/trace/${a}`} class="trace-id">
                        {a.slice(0, 12)}
                      </a>{' '}
                      ({formatDuration(ta.duration)})
                    </th>
                    <th>
                      <a href={`/trace/${b}`} class="trace-id">
                        {b.slice(0, 12)}
                      </a>{' '}
                      ({formatDuration(tb.duration)})
                    </th>
                    <th>difference</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((r) => (
                    <tr key={r.path.join('›')} class={`cmp-${r.kind}`} data-testid="compare-row" data-kind={r.kind}>
                      <td style={{ paddingLeft: `${0.5 + r.depth * 1.2}em` }}>{r.path[r.path.length - 1]}</td>
                      <Side start={r.aStart} duration={r.a} scale={scale} />
                      <Side start={r.bStart} duration={r.b} scale={scale} />
                      <td>
                        {r.kind}
                        {r.a !== null && r.b !== null && r.kind !== 'same' && ` (${r.b > r.a ? '+' : '−'}${formatDuration(Math.abs(r.b - r.a))})`}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          );
        }}
      </Load>
    </div>
  );
}
