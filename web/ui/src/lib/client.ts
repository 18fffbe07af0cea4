// Calls to the gateway's HTTP APIs: every request carries the session's
// token; every failure becomes an ApiError whose message can be shown as
// is; a 401 tells the app to show the sign-in view (unless the caller
// handles it); an answer that arrives after a sign-in or sign-out is
// dropped, so no view shows one caller's data to another. Pure apart from
// the `fetch` passed in.

import { authHeaders, type Session, type SignInNeeded, signInNeeded } from './session';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly path: string,
    /** Set on a 401: the gateway's auth mode and message. */
    readonly signIn: SignInNeeded | null = null,
  ) {
    super(message);
  }
  /** The endpoint does not exist on this gateway. */
  get notAvailable(): boolean {
    return this.status === 404;
  }
}

/** The readable message in an error body: admin `{"error"}`, Jaeger
 * `{"errors":[{"msg"}]}`, or the text itself. */
export function errorMessage(status: number, body: string): string {
  try {
    const j = JSON.parse(body);
    if (typeof j?.error === 'string') return j.error;
    if (Array.isArray(j?.errors) && j.errors.length) return j.errors.map((e: { msg?: string }) => e.msg ?? JSON.stringify(e)).join('; ');
  } catch {
    // not JSON
  }
  const text = body.trim();
  return text ? `${status}: ${text.slice(0, 300)}` : `HTTP ${status}`;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  signal?: AbortSignal;
  /** false: a 401 is the caller's to show (an optional part of a page);
   * by default it opens the sign-in view. */
  signIn?: boolean;
  /** Send this token instead of the session's (the sign-in check). */
  token?: string;
}

export type Fetch = (path: string, init: RequestInit) => Promise<Response>;

export interface ClientDeps {
  fetch: Fetch;
  session: Session;
  /** A request was refused for want of a (better) credential. */
  onSignInNeeded: (need: SignInNeeded) => void;
}

/** Thrown for an answer that belongs to the caller signed in before. */
export function staleAnswer(): Error {
  const e = new Error('the caller changed while the request was in flight');
  e.name = 'AbortError';
  return e;
}

export function makeRequest(deps: ClientDeps) {
  return async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    const generation = deps.session.generation;
    const headers: Record<string, string> = { Accept: 'application/json', ...authHeaders(opts.token ?? deps.session.token()) };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const stale = () => opts.token === undefined && deps.session.generation !== generation;
    let res: Response;
    try {
      res = await deps.fetch(path, {
        method: opts.method ?? 'GET',
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: opts.signal,
        // Answers depend on the token: never from (or into) the HTTP cache.
        cache: 'no-store',
        credentials: 'same-origin',
      });
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      throw new ApiError(`the gateway did not answer (${(e as Error).message})`, 0, path);
    }
    const text = await res.text();
    if (stale()) throw staleAnswer();
    if (res.status === 401) {
      const need = signInNeeded(text, errorMessage(401, text));
      if (opts.signIn !== false) deps.onSignInNeeded(need);
      throw new ApiError(need.message, 401, path, need);
    }
    if (!res.ok) throw new ApiError(errorMessage(res.status, text), res.status, path);
    try {
      return (text ? JSON.parse(text) : null) as T;
    } catch {
      throw new ApiError(`${path}: the answer is not JSON`, res.status, path);
    }
  };
}
