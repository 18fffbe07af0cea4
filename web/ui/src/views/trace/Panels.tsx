// Trace-level panels from Meridian's own API: completeness and provenance
// (`/api/v1/traces/{id}/summary`) and links (`/api/v1/traces/{id}/links`).

import { get } from '../../api';
import { ClusterBadge, Load } from '../../components/common';
import { useFetch } from '../../hooks';
import type { Trace } from '../../lib/trace';

export interface TraceSummaryApi {
  traceID: string;
  clusters: string[];
  dropped: Array<{ cluster: string; reason: string; spans: number }>;
  missingParents: string[];
  lateSpans: number;
  skew: Array<{ cluster: string; offsetMs: number }>;
  policy: string | null;
  root: { service: string; operation: string } | null;
  spanCount: number;
  errorCount: number;
  startUs: number;
  endUs: number;
}

export interface LinksApi {
  outgoing: Array<{ traceID: string; spanID: string; fromSpanID: string }>;
  incoming: Array<{ traceID: string; spanID: string; toSpanID: string }>;
}

export function Completeness({ traceId }: { traceId: string }) {
  const [v, retry] = useFetch((s) => get<TraceSummaryApi>(`/api/v1/traces/${traceId}/summary`, s), [traceId]);
  return (
    <details class="card panel" data-testid="completeness" open>
      <summary>Completeness</summary>
      <Load value={v} what="Completeness" api="/api/v1/traces/{id}/summary" retry={retry}>
        {(s) => {
          const complete = !s.dropped.length && !s.missingParents.length && s.root !== null;
          return (
            <div>
              <div class={`notice ${complete ? 'ok' : 'warn'}`}>{complete ? 'Complete: every cluster reported, no missing parents.' : 'Incomplete: see below.'}</div>
              <dl class="facts">
                <dt>Reported by</dt>
                <dd>
                  {s.clusters.map((c) => (
                    <ClusterBadge key={c} cluster={c} />
                  ))}
                </dd>
                <dt>Dropped</dt>
                <dd>{s.dropped.length ? s.dropped.map((d) => `${d.cluster}: ${d.spans} spans (${d.reason})`).join(', ') : 'none'}</dd>
                <dt>Missing parents</dt>
                <dd>{s.missingParents.length ? s.missingParents.join(', ') : 'none'}</dd>
                <dt>Late spans</dt>
                <dd>{s.lateSpans}</dd>
                <dt>Skew applied</dt>
                <dd>{s.skew.length ? s.skew.map((k) => `${k.cluster} ${k.offsetMs >= 0 ? '+' : ''}${k.offsetMs} ms`).join(', ') : 'none'}</dd>
                <dt>Kept by policy</dt>
                <dd>{s.policy ?? '—'}</dd>
              </dl>
            </div>
          );
        }}
      </Load>
    </details>
  );
}

export function useLinks(traceId: string) {
  return useFetch((s) => get<LinksApi>(`/api/v1/traces/${traceId}/links`, s), [traceId])[0];
}

export function Links({ trace }: { trace: Trace }) {
  const v = useLinks(trace.id);
  // Links to other traces are in the trace itself (FOLLOWS_FROM).
  const local = trace.spans.flatMap((s) => s.references.filter((r) => r.traceID !== trace.id).map((r) => ({ traceID: r.traceID, spanID: r.spanID, fromSpanID: s.id })));
  return (
    <details class="card panel" data-testid="links" open={local.length > 0}>
      <summary>Linked traces</summary>
      {v.state === 'ok' ? (
        <LinkLists outgoing={v.data.outgoing.length ? v.data.outgoing : local} incoming={v.data.incoming} />
      ) : (
        <>
          <LinkLists outgoing={local} incoming={null} />
          <Load value={v} what="Incoming links (traces that link here)" api="/api/v1/traces/{id}/links">
            {() => null}
          </Load>
        </>
      )}
    </details>
  );
}

function LinkLists({ outgoing, incoming }: { outgoing: LinksApi['outgoing']; incoming: LinksApi['incoming'] | null }) {
  return (
    <div class="link-lists">
      <div>
        <h3>This trace links to</h3>
        {outgoing.length ? (
          outgoing.map((l) => (
            <div key={l.traceID + l.spanID}>
              <a href={`/trace/${l.traceID}`}>{l.traceID.slice(0, 16)}</a> (from span {l.fromSpanID})
            </div>
          ))
        ) : (
          <div class="muted">none</div>
        )}
      </div>
      {incoming && (
        <div>
          <h3>Traces linking here</h3>
          {incoming.length ? (
            incoming.map((l) => (
              <div key={l.traceID + l.spanID}>
                <a href={`/trace/${l.traceID}`}>{l.traceID.slice(0, 16)}</a> (to span {l.toSpanID})
              </div>
            ))
          ) : (
            <div class="muted">none</div>
          )}
        </div>
      )}
    </div>
  );
}

