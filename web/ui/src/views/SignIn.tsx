// The sign-in view: shown when the gateway refused a request for want of
// a credential (any 401). The user pastes an API token; it is checked
// with `GET /api/v1/whoami` before it is kept (in this tab's
// sessionStorage only), then the app reloads the view as the new caller.

import { useState } from 'preact/hooks';
import { ApiError, request } from '../api';
import { parsePrincipal, type Principal, type SignInNeeded, signInHint } from '../lib/session';

export function SignInView(props: {
  need: SignInNeeded;
  /** The token was accepted: keep it and reload the view. */
  onSignedIn: (token: string, who: Principal) => void;
  /** Set when the gateway serves this tab without a token (go back). */
  onCancel?: () => void;
}) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) return setError('Paste a token first.');
    setBusy(true);
    setError(null);
    try {
      const who = parsePrincipal(await request<unknown>('/api/v1/whoami', { token: t, signIn: false }));
      if (!who) throw new ApiError('the gateway did not answer who the token belongs to', 0, '/api/v1/whoami');
      setToken('');
      props.onSignedIn(t, who);
    } catch (err) {
      const a = err instanceof ApiError ? err : new ApiError(String((err as Error)?.message ?? err), 0, '');
      setError(a.status === 401 ? `Not signed in: ${a.message}.` : a.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="page sign-in" data-testid="sign-in">
      <form class="card sign-in-card" onSubmit={submit} aria-label="Sign in">
        <h1>Sign in</h1>
        <p class="muted" data-testid="sign-in-reason">
          {props.need.message}
        </p>
        <p>{signInHint(props.need.auth)}</p>
        <label>
          API token
          <input
            type="password"
            name="token"
            autocomplete="off"
            spellcheck={false}
            placeholder="mrd_…"
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
          />
        </label>
        {error && (
          <div class="state error" role="alert" data-testid="sign-in-error">
            {error}
          </div>
        )}
        <div class="sign-in-actions">
          <button type="submit" class="primary" disabled={busy}>
            Sign in
          </button>
          {props.onCancel && (
            <button type="button" onClick={props.onCancel}>
              Continue without a token
            </button>
          )}
        </div>
        <p class="muted small">The token is kept in this browser tab only, until you sign out or close the tab.</p>
      </form>
    </div>
  );
}
