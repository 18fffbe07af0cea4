// Alert rules (admin API, with the session's token): list,
// create, edit, delete, with the API's validation messages (a rule whose
// expression does not parse answers 400 with the reason). Each rule's
// state (inactive, pending, firing, resolved), its last value and example
// traces, and the recent notifications come from `/api/v1/alerts`; a
// firing rule also shows why: the top dimensions of its explanation
// (`/api/v1/explain`, the same one its notification names) and a link to
// the whole panel.

import { useState } from 'preact/hooks';
import { ApiError, get, request } from '../api';
import { ErrorBox, Load } from '../components/common';
import { type Loadable, useFetch } from '../hooks';
import { type AlertRuleState, type Alerts, ago, normalizeAlerts } from '../lib/alerts';
import { type ExplainAnswer, pct } from '../lib/explain';

type Rules = Record<string, { expr: string; for_secs: number }>;

const rulePath = (name: string) => `/api/v1/admin/alert-rules/${encodeURIComponent(name)}`;

export function AlertsView() {
  const [rules, reload] = useFetch((s) => request<Rules>('/api/v1/admin/alert-rules?consistency=local', { signal: s }), []);
  const [alerts, reloadAlerts] = useFetch((s) => get<unknown>('/api/v1/alerts', s).then(normalizeAlerts), []);
  const [editing, setEditing] = useState<{ name: string; expr: string; for_secs: number; isNew: boolean } | null>(null);
  const reloadAll = () => {
    reload();
    reloadAlerts();
  };
  return (
    <div class="page">
      <div class="page-head">
        <h1>Alerts</h1>
      </div>
      <h2>
        Rules{' '}
        <button type="button" class="primary" onClick={() => setEditing({ name: '', expr: '', for_secs: 60, isNew: true })}>
          New rule
        </button>
      </h2>
      {editing && (
        <RuleForm
          key={editing.name + String(editing.isNew)}
          initial={editing}
          onDone={() => {
            setEditing(null);
            reloadAll();
          }}
          onCancel={() => setEditing(null)}
        />
      )}
      <Load value={rules} what="alert rules" retry={reload}>
        {(r) => <RuleList rules={r ?? {}} alerts={alerts} onEdit={(name) => setEditing({ name, ...r[name], isNew: false })} onDeleted={reloadAll} />}
      </Load>
      <h2>
        History{' '}
        <button type="button" onClick={reloadAlerts}>
          Refresh
        </button>
      </h2>
      <History alerts={alerts} retry={reloadAlerts} />
    </div>
  );
}

function History({ alerts, retry }: { alerts: Loadable<Alerts>; retry: () => void }) {
  return (
    <Load value={alerts} what="alert state and history" api="/api/v1/alerts" retry={retry}>
      {(a) => (
        <div class="card" data-testid="alert-history">
          {!a.notifications.length ? (
            <div class="muted">No notifications yet: an alert notifies when it starts firing and when it resolves.</div>
          ) : (
            <table class="grid">
              <thead>
                <tr>
                  <th>When</th>
                  <th>Rule</th>
                  <th>Became</th>
                  <th>Delivered</th>
                </tr>
              </thead>
              <tbody>
                {a.notifications.map((n) => (
                  <tr key={`${n.rule}\u0000${n.transition}`} data-testid="notification">
                    <td>{new Date(n.atMs).toLocaleString(undefined, { hour12: false })}</td>
                    <td>{n.rule}</td>
                    <td class={`alert-state ${n.status}`}>{n.status}</td>
                    <td class={n.error ? 'errors' : ''}>
                      {n.receivers ? `${n.delivered} of ${n.receivers} receivers` : 'no receivers configured'}
                      {n.error && ` — ${n.error}`}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
    </Load>
  );
}

/** A rule's state cell: the state, since when, the last value, example
 * traces and the series' dashboard. */
function StateCell({ alerts, name }: { alerts: Loadable<Alerts>; name: string }) {
  if (alerts.state === 'loading') return <span class="muted">…</span>;
  if (alerts.state === 'error') return <span class="muted">unknown</span>;
  const r: AlertRuleState | undefined = alerts.data.rules.find((x) => x.name === name);
  if (!r) return <span class="muted">not evaluated yet</span>;
  if (r.error) return <span class="errors">does not parse: {r.error}</span>;
  const since = ago(r.sinceMs, Date.now());
  return (
    <span>
      <span class={`alert-state ${r.state}`} data-testid="alert-state">
        {r.state}
      </span>
      {since && <span class="muted"> {since}</span>}
      {r.value !== null && <span class="muted"> · value {Number(r.value.toPrecision(4))}</span>}
      {r.exemplars.slice(0, 3).map((t) => (
        <a key={t} class="exemplar" href={`/trace/${t}`}>
          {' '}
          {t.slice(0, 8)}
        </a>
      ))}
      {r.dashboard && (
        <a href={r.dashboard} data-testid="alert-dashboard">
          {' '}
          dashboard
        </a>
      )}
      {r.explain && (
        <a href={r.explain} data-testid="alert-explain">
          {' '}
          what's different?
        </a>
      )}
      {r.explain && <AlertWhy path={r.explain} />}
    </span>
  );
}

function RuleList({ rules, alerts, onEdit, onDeleted }: { rules: Rules; alerts: Loadable<Alerts>; onEdit: (name: string) => void; onDeleted: () => void }) {
  const [confirm, setConfirm] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const names = Object.keys(rules).sort();
  if (!names.length) return <div class="state empty">No alert rules yet. Create one with “New rule”.</div>;
  const del = async (name: string) => {
    setError(null);
    try {
      await request(rulePath(name), { method: 'DELETE' });
      setConfirm(null);
      onDeleted();
    } catch (e) {
      setError(e as ApiError);
    }
  };
  return (
    <div class="card">
      {error && <ErrorBox error={error} />}
      <table class="grid rules" data-testid="rules">
        <thead>
          <tr>
            <th>Name</th>
            <th>Expression</th>
            <th>For</th>
            <th>State</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {names.map((n) => (
            <tr key={n} data-testid="rule">
              <td>{n}</td>
              <td>
                <code>{rules[n].expr}</code>
              </td>
              <td>{rules[n].for_secs}s</td>
              <td>
                <StateCell alerts={alerts} name={n} />
              </td>
              <td class="actions">
                <button type="button" onClick={() => onEdit(n)}>
                  Edit
                </button>
                {confirm === n ? (
                  <>
                    <button type="button" class="danger" onClick={() => del(n)}>
                      Confirm delete
                    </button>
                    <button type="button" onClick={() => setConfirm(null)}>
                      Cancel
                    </button>
                  </>
                ) : (
                  <button type="button" onClick={() => setConfirm(n)}>
                    Delete
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function RuleForm({ initial, onDone, onCancel }: { initial: { name: string; expr: string; for_secs: number; isNew: boolean }; onDone: () => void; onCancel: () => void }) {
  const [name, setName] = useState(initial.name);
  const [expr, setExpr] = useState(initial.expr);
  const [forSecs, setForSecs] = useState(String(initial.for_secs));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const n = Number(forSecs);
    if (!Number.isInteger(n) || n < 0) {
      setError('“for” must be a whole number of seconds (0 or more)');
      return;
    }
    if (!name.trim()) {
      setError('give the rule a name');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await request(rulePath(name), { method: 'PUT', body: { expr, for_secs: n } });
      onDone();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card rule-form" onSubmit={submit} aria-label="Alert rule">
      <h3>{initial.isNew ? 'New alert rule' : `Edit ${initial.name}`}</h3>
      <label>
        Name
        <input name="name" value={name} readOnly={!initial.isNew} onInput={(e) => setName(e.currentTarget.value)} placeholder="checkout error ratio" />
      </label>
      <label>
        Expression
        <input name="expr" value={expr} onInput={(e) => setExpr(e.currentTarget.value)} placeholder='error_ratio{cluster="eu-west",service="checkout"}[5m] > 0.05' />
      </label>
      <label>
        For (seconds)
        <input name="for_secs" value={forSecs} inputMode="numeric" onInput={(e) => setForSecs(e.currentTarget.value)} />
      </label>
      <div class="muted hint">
        <code>error_ratio</code>, <code>rate</code> (calls/s), <code>p50_ms</code>, <code>p95_ms</code> or <code>p99_ms</code>, with optional labels{' '}
        <code>{'{cluster="…",service="…",operation="…",span_kind="…"}'}</code>, a window like <code>[5m]</code>, then <code>&gt;</code> or <code>&lt;</code> a
        threshold; <code>anomaly(p99_ms{'{…}'}[1m]) &gt; 3</code> fires at 3 deviations from the usual.
      </div>
      {error && (
        <div class="state error" role="alert" data-testid="rule-error">
          {error}
        </div>
      )}
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          Save
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** The top three dimensions of a firing rule's explanation. */
function AlertWhy({ path }: { path: string }) {
  const qs = path.slice(path.indexOf('?') + 1);
  const [answer] = useFetch((s) => get<ExplainAnswer>(`/api/v1/explain?${qs}`, s), [qs]);
  if (answer.state !== 'ok') return null;
  const top = answer.data.dimensions.filter((d) => d.score > 0).slice(0, 3);
  if (!top.length) return null;
  return (
    <ul class="alert-why" data-testid="alert-why">
      {top.map((d) => (
        <li key={`${d.key}=${d.value}`} class={d.score >= answer.data.significantScore ? 'significant' : ''}>
          <code>{d.key}</code> = <strong>{d.value}</strong> ({pct(d.selectionShare)} vs {pct(d.baselineShare)}, score {d.score.toFixed(1)})
        </li>
      ))}
    </ul>
  );
}
