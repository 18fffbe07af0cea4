// The caller in the top bar: name, role and scope (from whoami), and the
// button to sign out (or, for an anonymous caller, to sign in).

import { type Principal, scopeLabel } from '../lib/session';

export function Identity({ who, onSignIn, onSignOut }: { who: Principal; onSignIn: () => void; onSignOut: () => void }) {
  const anonymous = who.kind === 'anonymous';
  const expires = who.expiresAtMs ? `, expires ${new Date(who.expiresAtMs).toLocaleString(undefined, { hour12: false })}` : '';
  return (
    <div class="identity" data-testid="identity" title={`${who.kind} ${who.name}, role ${who.role}, ${scopeLabel(who)}${expires}`}>
      <span class="who" data-testid="principal-name">
        {who.name}
      </span>
      <span class={`badge role ${who.role}`} data-testid="principal-role">
        {who.role}
      </span>
      <span class="scope" data-testid="principal-scope">
        {scopeLabel(who)}
      </span>
      {anonymous ? (
        <button type="button" onClick={onSignIn}>
          Sign in
        </button>
      ) : (
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      )}
    </div>
  );
}
