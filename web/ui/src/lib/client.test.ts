import { describe, expect, it } from 'vitest';
import { ApiError, type Fetch, makeRequest } from './client';
import { memoryStorage, Session, type SignInNeeded } from './session';

interface Call {
  path: string;
  init: RequestInit;
}

/** A fake gateway: answers by the bearer token, records every call, and
 * lets a test hold an answer until it says so. */
function gateway(answer: (token: string | null, path: string) => { status: number; body: unknown }) {
  const calls: Call[] = [];
  let hold: Promise<void> | null = null;
  const fetch: Fetch = async (path, init) => {
    calls.push({ path, init });
    if (hold) await hold;
    const auth = (init.headers as Record<string, string>).Authorization ?? null;
    const a = answer(auth ? auth.replace(/^Bearer /, '') : null, path);
    return new Response(typeof a.body === 'string' ? a.body : JSON.stringify(a.body), { status: a.status });
  };
  return {
    fetch,
    calls,
    holdUntil(p: Promise<void>) {
      hold = p;
    },
  };
}

function setup(answer: Parameters<typeof gateway>[0]) {
  const gw = gateway(answer);
  const session = new Session(memoryStorage());
  const needs: SignInNeeded[] = [];
  const request = makeRequest({ fetch: gw.fetch, session, onSignInNeeded: (n) => needs.push(n) });
  return { gw, session, needs, request };
}

/** The error `p` fails with (it must fail). */
const failure = (p: Promise<unknown>): Promise<ApiError> =>
  p.then(
    () => {
      throw new Error('the request succeeded');
    },
    (x) => x as ApiError,
  );

/** Tokens mode: `mrd_a` reads cluster a; nothing else passes. */
const tokensMode = (token: string | null, path: string) =>
  token === 'mrd_a'
    ? { status: 200, body: path === '/api/services' ? { data: ['frontend'] } : { ok: true } }
    : { status: 401, body: { error: token ? 'the token is not valid' : 'this endpoint needs a token', auth: 'tokens' } };

describe('request', () => {
  it('sends the one session token on every request, never from the HTTP cache', async () => {
    const { gw, session, request } = setup(tokensMode);
    session.signIn('mrd_a');
    await request('/api/services');
    await request('/api/v1/admin/alert-rules/x', { method: 'PUT', body: { expr: 'e' } });
    for (const c of gw.calls) {
      expect((c.init.headers as Record<string, string>).Authorization).toBe('Bearer mrd_a');
      expect(c.init.cache).toBe('no-store');
    }
    expect((gw.calls[1].init.headers as Record<string, string>)['Content-Type']).toBe('application/json');
  });

  it('a 401 asks for a sign-in with the gateway\'s mode, unless the caller handles it', async () => {
    const { needs, request } = setup(tokensMode);
    const e = await failure(request('/api/services'));
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(401);
    expect(e.signIn).toEqual({ auth: 'tokens', message: 'this endpoint needs a token' });
    expect(needs).toEqual([{ auth: 'tokens', message: 'this endpoint needs a token' }]);
    await request('/api/v1/admin/members', { signIn: false }).catch(() => undefined);
    expect(needs.length).toBe(1);
    // Other failures are errors to show, not sign-ins.
    const other = setup(() => ({ status: 403, body: { error: 'needs an admin token' } }));
    const f = await failure(other.request('/api/v1/admin/raft'));
    expect([f.status, f.message, f.signIn]).toEqual([403, 'needs an admin token', null]);
    expect(other.needs).toEqual([]);
  });

  it('checks a pasted token without keeping it', async () => {
    const { gw, session, request } = setup(tokensMode);
    const wrong = await failure(request('/api/v1/whoami', { token: 'mrd_wrong', signIn: false }));
    expect(wrong.message).toBe('the token is not valid');
    expect(await request('/api/v1/whoami', { token: 'mrd_a', signIn: false })).toEqual({ ok: true });
    expect(session.token()).toBe('');
    expect((gw.calls[1].init.headers as Record<string, string>).Authorization).toBe('Bearer mrd_a');
  });

  it('drops an answer that arrives after the caller changed', async () => {
    const { gw, session, needs, request } = setup(tokensMode);
    session.signIn('mrd_a');
    let release = () => {};
    gw.holdUntil(new Promise<void>((r) => (release = r)));
    const inFlight = failure(request('/api/services'));
    session.signOut();
    session.signIn('mrd_other');
    release();
    const e = await inFlight;
    expect(e.name).toBe('AbortError');
    // Neither the data nor a sign-in prompt for the old caller.
    expect(needs).toEqual([]);
  });
});
