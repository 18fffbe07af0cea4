// Alert rules (admin API, bearer token kept in localStorage): list,
// create, edit, delete, with the API's validation messages. State and
// history come from `/api/v1/alerts` when the gateway serves it.

import { useState } from 'preact/hooks';
import { adminToken, ApiError, get, request } from '../api';
import { ErrorBox, Load } from '../components/common';
import { useFetch } from '../hooks';

type Rules = Record<string, { expr: string; for_secs: number }>;

interface AlertsApi {
  alerts?: Array<{ name: string; state: string; since?: string; labels?: Record<string, string> }>;
  notifications?: Array<{ name: string; status: string; at: string }>;
}

const rulePath = (name: string) => `/api/v1/admin/alert-rules/${encodeURIComponent(name)}`;

export function AlertsView() {
  const [token, setToken] = useState(adminToken.get());
  const [rules, reload] = useFetch(() => request<Rules>('/api/v1/admin/alert-rules?consistency=local', { admin: true }), [token]);
  const [editing, setEditing] = useState<{ name: string; expr: string; for_secs: number; isNew: boolean } | null>(null);
  return (
    <div class="page">
      <div class="page-head">
        <h1>Alerts</h1>
        <TokenBox
          token={token}
          onSave={(t) => {
            adminToken.set(t);
            setToken(t);
          }}
        />
      </div>
      <h2>State and history</h2>
      <AlertState />
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
            reload();
          }}
          onCancel={() => setEditing(null)}
        />
      )}
      <Load value={rules} what="alert rules" retry={reload}>
        {(r) => <RuleList rules={r ?? {}} onEdit={(name) => setEditing({ name, ...r[name], isNew: false })} onDeleted={reload} />}
      </Load>
    </div>
  );
}

function TokenBox({ token, onSave }: { token: string; onSave: (t: string) => void }) {
  const [value, setValue] = useState(token);
  return (
    <form
      class="token"
      onSubmit={(e) => {
        e.preventDefault();
        onSave(value.trim());
      }}
    >
      <label>
        Admin token
        <input type="password" name="token" autocomplete="off" placeholder="bearer token (if the gateway has one)" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      </label>
      <button type="submit">{token ? 'Update' : 'Save'}</button>
      {token && <span class="muted">saved in this browser</span>}
    </form>
  );
}

function AlertState() {
  const [v, retry] = useFetch((s) => get<AlertsApi>('/api/v1/alerts', s), []);
  return (
    <Load value={v} what="Alert state and history" api="/api/v1/alerts" retry={retry}>
      {(a) => (
        <div class="card">
          {!a.alerts?.length ? (
            <div class="muted">No alerts are pending or firing.</div>
          ) : (
            <table class="grid">
              <thead>
                <tr>
                  <th>Rule</th>
                  <th>State</th>
                  <th>Since</th>
                </tr>
              </thead>
              <tbody>
                {a.alerts.map((x) => (
                  <tr key={x.name}>
                    <td>{x.name}</td>
                    <td class={`alert-state ${x.state}`}>{x.state}</td>
                    <td>{x.since ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {a.notifications?.length ? (
            <>
              <h4>Recent notifications</h4>
              <ul>
                {a.notifications.map((n, i) => (
                  <li key={i}>
                    {n.at} {n.name}: {n.status}
                  </li>
                ))}
              </ul>
            </>
          ) : null}
        </div>
      )}
    </Load>
  );
}

function RuleList({ rules, onEdit, onDeleted }: { rules: Rules; onEdit: (name: string) => void; onDeleted: () => void }) {
  const [confirm, setConfirm] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const names = Object.keys(rules).sort();
  if (!names.length) return <div class="state empty">No alert rules yet. Create one with “New rule”.</div>;
  const del = async (name: string) => {
    setError(null);
    try {
      await request(rulePath(name), { method: 'DELETE', admin: true });
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
      await request(rulePath(name), { method: 'PUT', admin: true, body: { expr, for_secs: n } });
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
        <input name="expr" value={expr} onInput={(e) => setExpr(e.currentTarget.value)} placeholder='error_ratio{service="checkout"} > 0.05' />
      </label>
      <label>
        For (seconds)
        <input name="for_secs" value={forSecs} inputMode="numeric" onInput={(e) => setForSecs(e.currentTarget.value)} />
      </label>
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
