import { useMemo } from 'preact/hooks';
import { get } from '../api';
import { Load } from '../components/common';
import { useFetch } from '../hooks';
import { buildTrace, type JTrace } from '../lib/trace';
import { TracePage } from './trace/TracePage';

export function TraceView({ id, raw }: { id: string; raw: boolean }) {
  const [value, retry] = useFetch(
    (s) => get<{ data: JTrace[] }>(`/api/traces/${id}${raw ? '?raw=true' : ''}`, s).then((r) => r.data?.[0] ?? null),
    [id, raw],
  );
  return (
    <div class="page trace-page">
      <Load value={value} what={`trace ${id}`} retry={retry}>
        {(j) => (j ? <Loaded json={j} raw={raw} /> : <div class="state empty">Trace {id} was not found.</div>)}
      </Load>
    </div>
  );
}

function Loaded({ json, raw }: { json: JTrace; raw: boolean }) {
  const trace = useMemo(() => buildTrace(json), [json]);
  return <TracePage trace={trace} json={json} raw={raw} />;
}
