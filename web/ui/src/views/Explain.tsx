// "What's different?": the explanation of a brushed region of the search
// scatter (GET /api/v1/explain): ranked dimensions as paired bars
// (selection vs baseline), the latency attribution as per-cluster deltas
// (self time per service, and the gaps between clusters), and example
// traces for each dimension.

import { get } from '../api';
import { ClusterBadge, Load } from '../components/common';
import { useFetch } from '../hooks';
import { type ExplainAnswer, pct } from '../lib/explain';
import { formatDuration } from '../lib/ticks';

const SHOWN = 12;

export function ExplainPanel({ params, onClose }: { params: URLSearchParams; onClose: () => void }) {
  const qs = params.toString();
  const [answer, retry] = useFetch((s) => get<ExplainAnswer>(`/api/v1/explain?${qs}`, s), [qs]);
  return (
    <section class="card explain" aria-label="What's different?" data-testid="explain-panel">
      <div class="explain-head">
        <h2>What's different?</h2>
        <a class="explain-api" href={`/api/v1/explain?${qs}`} target="_blank" rel="noreferrer">
          JSON
        </a>
        <button type="button" onClick={onClose} aria-label="Close the explanation">
          ✕
        </button>
      </div>
      <Load value={answer} what="the explanation" api="/api/v1/explain" retry={retry}>
        {(a) => <Answer a={a} />}
      </Load>
    </section>
  );
}

function Answer({ a }: { a: ExplainAnswer }) {
  if (!a.selection.traces) return <div class="state empty">No trace in the brushed region.</div>;
  // A value every trace on both sides has says nothing.
  const dims = a.dimensions.filter((d) => Math.abs(d.selectionShare - d.baselineShare) > 1e-9).slice(0, SHOWN);
  const deltas = [
    ...a.latency.map((l) => ({ label: l.service, cluster: l.cluster, to: '', delta: l.deltaMs, kind: 'self' })),
    ...a.gaps.map((g) => ({ label: 'network', cluster: g.fromCluster, to: g.toCluster, delta: g.deltaMs, kind: 'gap' })),
  ]
    .filter((d) => Math.abs(d.delta) >= 0.05)
    .sort((x, y) => y.delta - x.delta)
    .slice(0, SHOWN);
  const biggest = Math.max(1e-9, ...deltas.map((d) => Math.abs(d.delta)));
  return (
    <>
      <p class="explain-sides" data-testid="explain-sides">
        {a.selection.traces} selected trace{a.selection.traces === 1 ? '' : 's'} (mean {formatDuration(a.selection.meanDurationMs * 1000)}) against {a.baseline.traces} baseline (mean{' '}
        {formatDuration(a.baseline.meanDurationMs * 1000)})
        {(a.selection.sampled || a.baseline.sampled) && `; sampled down to ${a.limit} per side`}
        {a.partial && '; partial: the deadline stopped the reads'}.
      </p>
      <h3>Dimensions</h3>
      <table class="explain-dims">
        <thead>
          <tr>
            <th>dimension</th>
            <th>selection vs baseline</th>
            <th title={`score ≥ ${a.significantScore}: very unlikely by chance`}>score</th>
            <th>examples</th>
          </tr>
        </thead>
        <tbody>
          {dims.map((d) => (
            <tr key={`${d.key}=${d.value}`} class={d.score >= a.significantScore ? 'significant' : ''} data-testid="explain-dimension">
              <td class="dim">
                <code>{d.key}</code> = <strong>{d.value}</strong>
              </td>
              <td class="bars">
                <div class="share sel" style={{ width: `${Math.max(0.5, d.selectionShare * 100)}%` }} title={`selection ${pct(d.selectionShare)}`}>
                  {pct(d.selectionShare)}
                </div>
                <div class="share base" style={{ width: `${Math.max(0.5, d.baselineShare * 100)}%` }} title={`baseline ${pct(d.baselineShare)}`}>
                  {pct(d.baselineShare)}
                </div>
              </td>
              <td class="score">{d.score.toFixed(1)}</td>
              <td class="examples">
                {d.exampleTraceIDs.map((id) => (
                  <a key={id} href={`/trace/${id}`} class="trace-id">
                    {id.slice(0, 8)}
                  </a>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Where the time goes</h3>
      <ul class="explain-deltas" data-testid="explain-latency">
        {deltas.map((d) => (
          <li key={`${d.kind}:${d.label}:${d.cluster}:${d.to}`} class={d.delta > 0 ? 'slower' : 'faster'}>
            <span class="what">
              {d.kind === 'gap' ? (
                <>
                  gap <ClusterBadge cluster={d.cluster} /> → <ClusterBadge cluster={d.to} />
                </>
              ) : (
                <>
                  {d.label} <ClusterBadge cluster={d.cluster} />
                </>
              )}
            </span>
            <span class="delta-bar">
              <span style={{ width: `${(100 * Math.abs(d.delta)) / biggest}%` }} />
            </span>
            <span class="delta">
              {d.delta > 0 ? '+' : '−'}
              {formatDuration(Math.abs(d.delta) * 1000)}
            </span>
          </li>
        ))}
      </ul>
      {a.skippedKeys.length > 0 && (
        <p class="hint">Skipped (too many distinct values): {a.skippedKeys.map((k) => k.key).join(', ')}.</p>
      )}
      {a.warnings.map((w) => (
        <div class="notice warn" key={w}>
          {w}
        </div>
      ))}
    </>
  );
}
