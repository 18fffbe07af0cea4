import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, get } from '../api';
import { ClusterBadge, Empty, formatTime, Load } from '../components/common';
import { Scatter } from '../components/Scatter';
import { type Brush, explainParams } from '../lib/explain';
import { useFetch } from '../hooks';
import { navigate } from '../router';
import { DEFAULT_QUERY, formToTraceQL, fromParams, LOOKBACKS, MAX_LIMIT, type SearchMode, type SearchQuery, toApiParams, toParams, TRACEQL_PLACEHOLDER } from '../lib/searchQuery';
import { formatDuration } from '../lib/ticks';
import { type JTrace, summarize, type TraceSummary } from '../lib/trace';
import { knownClusters } from './clusterList';
import { ExplainPanel } from './Explain';

type Sort = 'recent' | 'longest' | 'spans' | 'errors';

export function SearchView({ query }: { query: URLSearchParams }) {
  const urlQuery = useMemo(() => fromParams(query), [query.toString()]);
  const [form, setForm] = useState<SearchQuery>(urlQuery);
  useEffect(() => setForm(urlQuery), [urlQuery]);
  const [services] = useFetch((s) => get<{ data: string[] | null }>('/api/services', s), []);
  const [operations] = useFetch(
    (s) => (form.service ? get<{ data: string[] | null }>(`/api/services/${encodeURIComponent(form.service)}/operations`, s) : Promise.resolve({ data: [] })),
    [form.service],
  );
  const [clusters] = useFetch((s) => knownClusters(s), []);
  // Pick the first service when none is chosen, so the page is useful at once.
  const serviceList = services.state === 'ok' ? (services.data.data ?? []).slice().sort() : [];
  useEffect(() => {
    // The updater sees the latest form: a service the user picked while
    // the list was loading is kept.
    if (serviceList.length) setForm((f) => (f.service ? f : { ...f, service: serviceList[0] }));
  }, [serviceList.join(',')]);

  const set = <K extends keyof SearchQuery>(k: K, v: SearchQuery[K]) => setForm((f) => ({ ...f, [k]: v, ...(k === 'service' ? { operation: '' } : {}) }));
  const submit = (e: Event) => {
    e.preventDefault();
    const p = toParams(form);
    p.set('run', String(Date.now() % 1e6)); // a new entry even for the same query
    navigate(`/search?${p}`);
  };
  // Switching to TraceQL with an empty box starts from the form's filters.
  const setMode = (mode: SearchMode) => setForm((f) => ({ ...f, mode, traceql: mode === 'traceql' && !f.traceql.trim() ? (formToTraceQL(f) ?? '') : f.traceql }));
  const toLocalInput = (ms: number | null) => (ms === null ? '' : new Date(ms - new Date().getTimezoneOffset() * 60e3).toISOString().slice(0, 16));
  const fromLocalInput = (v: string) => (v ? new Date(v).getTime() : null);

  return (
    <div class="page search">
      <form class="search-form card" onSubmit={submit} aria-label="Search traces">
        <div class="segmented search-mode" role="group" aria-label="Search with">
          <button type="button" class={form.mode === 'form' ? 'on' : ''} aria-pressed={form.mode === 'form'} onClick={() => setMode('form')}>
            Filters
          </button>
          <button type="button" class={form.mode === 'traceql' ? 'on' : ''} aria-pressed={form.mode === 'traceql'} onClick={() => setMode('traceql')}>
            TraceQL
          </button>
        </div>
        {form.mode === 'traceql' ? (
          <>
            <label>
              TraceQL
              <textarea
                name="q"
                rows={4}
                spellcheck={false}
                placeholder={TRACEQL_PLACEHOLDER}
                value={form.traceql}
                onInput={(e) => set('traceql', e.currentTarget.value)}
                onKeyDown={(e) => {
                  // Enter searches, Shift+Enter breaks the line.
                  if (e.key === 'Enter' && !e.shiftKey) {
                    e.preventDefault();
                    e.currentTarget.form?.requestSubmit();
                  }
                }}
              />
            </label>
            <p class="hint">
              Spanset filters with <code>&amp;&amp;</code> and <code>||</code>, between spansets also <code>&gt;&gt;</code> (descendant) and <code>&gt;</code> (child), over the time range
              below. The README has the grammar.
            </p>
          </>
        ) : (
          <>
            <label>
              Service
              <select name="service" value={form.service} onChange={(e) => set('service', e.currentTarget.value)}>
                {!serviceList.length && <option value="">{services.state === 'loading' ? 'loading…' : 'no services yet'}</option>}
                {serviceList.map((s) => (
                  <option key={s}>{s}</option>
                ))}
              </select>
            </label>
            <label>
              Operation
              <select name="operation" value={form.operation} onChange={(e) => set('operation', e.currentTarget.value)}>
                <option value="">all</option>
                {operations.state === 'ok' &&
                  (operations.data.data ?? [])
                    .slice()
                    .sort()
                    .map((o) => <option key={o}>{o}</option>)}
              </select>
            </label>
            <label>
              Tags
              <input name="tags" placeholder="http.status_code=500 error=true" value={form.tags} onInput={(e) => set('tags', e.currentTarget.value)} />
            </label>
            <label title="Spans of the service in this cluster">
              Cluster
              <input name="cluster" list="cluster-list" placeholder="any" value={form.cluster} onInput={(e) => set('cluster', e.currentTarget.value)} />
              <datalist id="cluster-list">{clusters.state === 'ok' && clusters.data.map((c) => <option key={c} value={c} />)}</datalist>
            </label>
            <div class="row2">
              <label>
                Min duration
                <input name="minDuration" placeholder="e.g. 100ms" value={form.minDuration} onInput={(e) => set('minDuration', e.currentTarget.value)} />
              </label>
              <label>
                Max duration
                <input name="maxDuration" placeholder="e.g. 2s" value={form.maxDuration} onInput={(e) => set('maxDuration', e.currentTarget.value)} />
              </label>
            </div>
          </>
        )}
        <div class="row2">
          <label>
            Time range
            <select name="lookback" value={form.lookback} onChange={(e) => set('lookback', e.currentTarget.value)}>
              {Object.keys(LOOKBACKS).map((k) => (
                <option key={k} value={k}>
                  last {k}
                </option>
              ))}
              <option value="custom">custom…</option>
            </select>
          </label>
          <label>
            Limit
            <input name="limit" type="number" min={1} max={MAX_LIMIT} value={form.limit} onInput={(e) => set('limit', Number(e.currentTarget.value) || DEFAULT_QUERY.limit)} />
          </label>
        </div>
        {form.lookback === 'custom' && (
          <div class="row2">
            <label>
              From
              <input type="datetime-local" value={toLocalInput(form.start)} onInput={(e) => set('start', fromLocalInput(e.currentTarget.value))} />
            </label>
            <label>
              To
              <input type="datetime-local" value={toLocalInput(form.end)} onInput={(e) => set('end', fromLocalInput(e.currentTarget.value))} />
            </label>
          </div>
        )}
        <button type="submit" class="primary">
          Find traces
        </button>
      </form>
      <section class="results">
        <Results query={urlQuery} run={query.get('run') ?? ''} />
      </section>
    </div>
  );
}

type Found = { traces: TraceSummary[]; warnings: string[] } | { refused: string };

function Results({ query, run }: { query: SearchQuery; run: string }) {
  const [sort, setSort] = useState<Sort>('recent');
  const [brush, setBrush] = useState<Brush | null>(null);
  const [explain, setExplain] = useState<URLSearchParams | null>(null);
  useEffect(() => {
    setBrush(null);
    setExplain(null);
  }, [JSON.stringify(query), run]);
  const api = toApiParams(query, Date.now());
  const [result, retry] = useFetch(
    async (s): Promise<Found | null> => {
      if (!api.ok) return null;
      try {
        const r = await get<{ data: JTrace[] | null; errors: { msg: string }[] | null }>(`/api/traces?${api.value}`, s);
        // A partial answer (a shard did not answer, a search stopped early)
        // says what is missing in `errors`.
        return { traces: (r.data ?? []).map(summarize), warnings: (r.errors ?? []).map((e) => e.msg) };
      } catch (e) {
        // The gateway's parser is the judge of TraceQL: its reason is shown.
        if (query.mode === 'traceql' && e instanceof ApiError && e.status === 400) return { refused: e.message };
        throw e;
      }
    },
    [JSON.stringify(query), run],
  );
  if (query.mode === 'traceql' && !query.traceql.trim()) return <Empty>Type a TraceQL query and press “Find traces”.</Empty>;
  if (query.mode === 'form' && !query.service) return <Empty>Choose a service and press “Find traces”.</Empty>;
  if (!api.ok) return <div class="state error">{api.error}</div>;
  return (
    <Load value={result} what="traces" retry={retry}>
      {(found) => {
        if (found && 'refused' in found) {
          return (
            <div class="state error" role="alert" data-testid="query-refused">
              <strong>Query refused</strong>: {found.refused}
            </div>
          );
        }
        const traces = found?.traces ?? [];
        const warnings = found?.warnings.length ? (
          <div class="state not-available" role="status" data-testid="search-warnings">
            <strong>Partial results</strong>: {found.warnings.join('; ')}
          </div>
        ) : null;
        if (!traces.length) {
          return (
            <>
              {warnings}
              <Empty>No traces match this query in the chosen time range.</Empty>
            </>
          );
        }
        const rows = sortTraces(traces, sort);
        return (
          <>
            {warnings}
            <div class="card">
              <Scatter traces={traces} onOpen={(id) => navigate(`/trace/${id}`)} onBrush={setBrush} />
              <div class="brush-bar">
                {brush ? (
                  <>
                    <span data-testid="brush">
                      {formatDuration(brush.minDurationUs)}–{formatDuration(brush.maxDurationUs)}, {formatTime(brush.startUs)} – {formatTime(brush.endUs)}
                    </span>
                    <button
                      type="button"
                      class="primary"
                      onClick={() => {
                        const p = explainParams(query, brush, Date.now());
                        if (p.ok) setExplain(p.value);
                      }}
                    >
                      What's different?
                    </button>
                  </>
                ) : (
                  <span class="hint">Drag a box over slow or failing points, then ask “What's different?”.</span>
                )}
              </div>
            </div>
            {explain && <ExplainPanel params={explain} onClose={() => setExplain(null)} />}
            <div class="results-head">
              <span data-testid="result-count">
                {traces.length} trace{traces.length === 1 ? '' : 's'}
              </span>
              <label>
                Sort
                <select value={sort} onChange={(e) => setSort(e.currentTarget.value as Sort)}>
                  <option value="recent">most recent</option>
                  <option value="longest">longest first</option>
                  <option value="spans">most spans</option>
                  <option value="errors">most errors</option>
                </select>
              </label>
            </div>
            <ul class="result-list">
              {rows.map((t) => (
                <ResultRow key={t.traceId} t={t} longest={Math.max(...traces.map((x) => x.duration))} />
              ))}
            </ul>
          </>
        );
      }}
    </Load>
  );
}

function sortTraces(ts: TraceSummary[], sort: Sort): TraceSummary[] {
  const key: Record<Sort, (t: TraceSummary) => number> = {
    recent: (t) => -t.start,
    longest: (t) => -t.duration,
    spans: (t) => -t.spanCount,
    errors: (t) => -t.errorCount,
  };
  return [...ts].sort((a, b) => key[sort](a) - key[sort](b));
}

function ResultRow({ t, longest }: { t: TraceSummary; longest: number }) {
  return (
    <li class={`result ${t.errorCount ? 'has-error' : ''}`} data-testid="result">
      <a href={`/trace/${t.traceId}`}>
        <div class="result-title">
          <span class="svc">{t.rootService}</span>: <span class="op">{t.rootOperation}</span>
          {t.rootMissing && <span class="badge warn">root missing</span>}
          <span class="trace-id">{t.traceId.slice(0, 12)}</span>
          <span class="dur">{formatDuration(t.duration)}</span>
        </div>
        <div class="result-bar">
          <div style={{ width: `${Math.max(1, (100 * t.duration) / Math.max(1, longest))}%` }} />
        </div>
        <div class="result-meta">
          <span>{t.spanCount} spans</span>
          {t.errorCount > 0 && <span class="errors">{t.errorCount} error{t.errorCount === 1 ? '' : 's'}</span>}
          <span>{t.services.length} services</span>
          <span class="clusters">
            {t.clusters.map((c) => (
              <ClusterBadge key={c} cluster={c} />
            ))}
          </span>
          <span class="when">{formatTime(t.start)}</span>
        </div>
      </a>
    </li>
  );
}
