// Everything about one span: timing, cluster, attributes, resource,
// events, references and links in both directions.

import { ClusterBadge } from '../../components/common';
import { formatDuration } from '../../lib/ticks';
import type { JTag, Span, Trace } from '../../lib/trace';
import { useLinks } from './Panels';

export function SpanDetail({ trace, span, onClose, onSelect }: { trace: Trace; span: Span; onClose: () => void; onSelect: (id: string) => void }) {
  const links = useLinks(trace.id);
  const outgoing = span.references.filter((r) => r.refType !== 'CHILD_OF' || r.traceID !== trace.id);
  const incoming = links.state === 'ok' ? links.data.incoming.filter((l) => l.toSpanID === span.id) : [];
  return (
    <aside class="span-detail card" data-testid="span-detail" aria-label="Span detail">
      <div class="detail-head">
        <h2>
          <span class="svc">{span.service}</span> {span.operation}
        </h2>
        <button type="button" class="close" onClick={onClose} aria-label="Close span detail">
          ×
        </button>
      </div>
      <dl class="facts">
        <dt>Cluster</dt>
        <dd>
          <ClusterBadge cluster={span.cluster} />
          {span.crossesCluster && <span class="cross"> ⇄ called from {span.parent?.cluster}</span>}
        </dd>
        <dt>Start</dt>
        <dd>+{formatDuration(span.start - trace.start)}</dd>
        <dt>Duration</dt>
        <dd>{formatDuration(span.duration)}</dd>
        <dt>Span ID</dt>
        <dd>
          <code>{span.id}</code>
        </dd>
        {span.kind && (
          <>
            <dt>Kind</dt>
            <dd>{span.kind}</dd>
          </>
        )}
        <dt>Parent</dt>
        <dd>
          {span.parent ? (
            <button type="button" class="link" onClick={() => onSelect(span.parent!.id)}>
              {span.parent.service} {span.parent.operation}
            </button>
          ) : span.missingParent ? (
            <span class="badge warn">parent not in trace</span>
          ) : (
            'root'
          )}
        </dd>
        {span.error && (
          <>
            <dt>Status</dt>
            <dd class="errors">error</dd>
          </>
        )}
      </dl>
      <Section title="Attributes" count={span.tags.length}>
        <Tags tags={span.tags} />
      </Section>
      <Section title="Resource" count={span.process.tags?.length ?? 0}>
        <Tags tags={[{ key: 'service.name', value: span.service }, ...(span.process.tags ?? [])]} />
      </Section>
      <Section title="Events" count={span.logs.length}>
        {span.logs.map((l, i) => (
          <div class="event" key={i}>
            <div class="event-time">+{formatDuration(l.timestamp - span.start)}</div>
            <Tags tags={l.fields} />
          </div>
        ))}
      </Section>
      <Section title="Links" count={outgoing.length + incoming.length}>
        {outgoing.map((r) => (
          <div class="link-row" key={`o${r.traceID}${r.spanID}`}>
            → {r.refType === 'FOLLOWS_FROM' ? 'follows from' : 'child of'}{' '}
            {r.traceID === trace.id ? (
              <button type="button" class="link" onClick={() => onSelect(r.spanID)}>
                span {r.spanID}
              </button>
            ) : (
              <a href={`/trace/${r.traceID}`}>
                trace {r.traceID.slice(0, 12)} / {r.spanID}
              </a>
            )}
          </div>
        ))}
        {incoming.map((l) => (
          <div class="link-row" key={`i${l.traceID}${l.spanID}`}>
            ← linked from <a href={`/trace/${l.traceID}`}>trace {l.traceID.slice(0, 12)}</a> / {l.spanID}
          </div>
        ))}
        {links.state === 'error' && links.error.notAvailable && <div class="muted">Incoming links need a gateway with /api/v1/traces/…/links.</div>}
      </Section>
      {span.warnings.length > 0 && (
        <Section title="Warnings" count={span.warnings.length}>
          {span.warnings.map((w) => (
            <div class="notice warn" key={w}>
              {w}
            </div>
          ))}
        </Section>
      )}
    </aside>
  );
}

function Section({ title, count, children }: { title: string; count: number; children: preact.ComponentChildren }) {
  return (
    <details class="section" open={count > 0}>
      <summary>
        {title} <span class="count">{count}</span>
      </summary>
      {count === 0 ? <div class="muted">none</div> : children}
    </details>
  );
}

function Tags({ tags }: { tags: JTag[] }) {
  return (
    <table class="tags">
      <tbody>
        {tags.map((t, i) => (
          <tr key={`${t.key}${i}`}>
            <th>{t.key}</th>
            <td class={t.key === 'error' || t.value === 'ERROR' ? 'errors' : ''}>{typeof t.value === 'object' ? JSON.stringify(t.value) : String(t.value)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
