// The gateway's HTTP APIs, as the views use them: one session (the token
// in this tab's sessionStorage) for every request (lib/client.ts), and the
// app told when a request needs a sign-in.

import { ApiError, makeRequest, type RequestOptions } from './lib/client';
import { type KeyValue, memoryStorage, Session, type SignInNeeded } from './lib/session';

export { ApiError, errorMessage, type RequestOptions } from './lib/client';

function storage(pick: () => Storage): KeyValue {
  try {
    const s = pick();
    s.getItem('meridian.probe');
    return s;
  } catch {
    return memoryStorage();
  }
}

export const session = new Session(
  storage(() => window.sessionStorage),
  storage(() => window.localStorage),
);

const needListeners = new Set<(need: SignInNeeded) => void>();

/** `l` hears every request refused for want of a credential. */
export function onSignInNeeded(l: (need: SignInNeeded) => void): () => void {
  needListeners.add(l);
  return () => void needListeners.delete(l);
}

/** Opens the sign-in view (a page's own "Sign in" button). */
export function askSignIn(need: SignInNeeded) {
  needListeners.forEach((l) => l(need));
}

export const request: <T>(path: string, opts?: RequestOptions) => Promise<T> = makeRequest({
  fetch: (path, init) => fetch(path, init),
  session,
  onSignInNeeded: askSignIn,
});

export const get = <T>(path: string, signal?: AbortSignal) => request<T>(path, { signal });

/** Whether `e` is a 401 that a sign-in could fix. */
export const needsSignIn = (e: unknown): e is ApiError => e instanceof ApiError && e.status === 401;
