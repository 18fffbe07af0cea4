// The gateway's HTTP APIs, as the views use them. Every failure becomes an
// ApiError whose message can be shown as is; a 404 on an API that newer
// gateways add is `notAvailable`, so a view can say so instead of failing.

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly path: string,
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

const TOKEN_KEY = 'meridian.adminToken';

export const adminToken = {
  get: (): string => localStorage.getItem(TOKEN_KEY) ?? '',
  set: (t: string) => (t ? localStorage.setItem(TOKEN_KEY, t) : localStorage.removeItem(TOKEN_KEY)),
};

export interface RequestOptions {
  method?: string;
  body?: unknown;
  admin?: boolean;
  signal?: AbortSignal;
}

export async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const token = opts.admin ? adminToken.get() : '';
  if (token) headers.Authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(path, {
      method: opts.method ?? 'GET',
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(`the gateway did not answer (${(e as Error).message})`, 0, path);
  }
  const text = await res.text();
  if (!res.ok) {
    let msg = errorMessage(res.status, text);
    if (res.status === 401) msg = `${msg} — set the admin token (top right of the Alerts page)`;
    throw new ApiError(msg, res.status, path);
  }
  try {
    return (text ? JSON.parse(text) : null) as T;
  } catch {
    throw new ApiError(`${path}: the answer is not JSON`, res.status, path);
  }
}

export const get = <T>(path: string, signal?: AbortSignal) => request<T>(path, { signal });
