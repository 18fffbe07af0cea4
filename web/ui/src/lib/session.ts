// Who the UI calls the gateway as: one bearer token for every request,
// kept in the tab's sessionStorage (gone when the tab closes, never shared
// with other tabs), and what the gateway says about its holder
// (`GET /api/v1/whoami`). Pure: the storage is passed in, so the tests run
// without a browser.

/** The sessionStorage key of the token. */
export const TOKEN_KEY = 'meridian.token';
/** Keys older UIs kept a token under in localStorage: removed on load, so
 * no token lingers across browser restarts. */
export const LEGACY_KEYS = ['meridian.adminToken'];

/** The part of the Web Storage API the session uses. */
export interface KeyValue {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** The caller, as `GET /api/v1/whoami` answers. */
export interface Principal {
  name: string;
  /** `token`, `admin-token`, `anonymous` (and `proxy` once that mode exists). */
  kind: string;
  role: 'read' | 'admin';
  /** Cluster names, or `*` for every cluster. */
  clusters: string[] | '*';
  expiresAtMs: number | null;
  /** Whether the admin API serves this caller. */
  admin: boolean;
  /** The gateway's auth mode: `tokens`, `none` (or `proxy`). */
  auth: string;
}

/** Why the gateway wants a credential: its mode (from the 401 body's
 * `auth`, null when an older gateway does not say) and its message. */
export interface SignInNeeded {
  auth: string | null;
  message: string;
}

type Listener = () => void;

export class Session {
  private listeners = new Set<Listener>();
  private gen = 0;

  /** `store` keeps the token (sessionStorage); `legacy` is where older
   * UIs kept one (localStorage), cleared now. */
  constructor(
    private readonly store: KeyValue,
    legacy?: KeyValue,
  ) {
    for (const k of LEGACY_KEYS) {
      try {
        legacy?.removeItem(k);
      } catch {
        // storage disabled: nothing lingers there either
      }
    }
  }

  /** The token to send, or '' for none. */
  token(): string {
    try {
      return this.store.getItem(TOKEN_KEY) ?? '';
    } catch {
      return '';
    }
  }

  /** Changes on every sign-in and sign-out: an answer fetched under an
   * older generation belongs to another caller and is dropped. */
  get generation(): number {
    return this.gen;
  }

  signIn(token: string) {
    const t = token.trim();
    if (!t) return this.signOut();
    this.store.setItem(TOKEN_KEY, t);
    this.changed();
  }

  signOut() {
    try {
      this.store.removeItem(TOKEN_KEY);
    } catch {
      // nothing stored
    }
    this.changed();
  }

  /** Called on every sign-in and sign-out. */
  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => void this.listeners.delete(l);
  }

  private changed() {
    this.gen++;
    this.listeners.forEach((l) => l());
  }
}

/** The headers that carry `token` (none for ''). */
export function authHeaders(token: string): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** A 401's body (`{"error","auth"}`) read defensively. */
export function signInNeeded(body: string, fallback: string): SignInNeeded {
  try {
    const j = JSON.parse(body);
    return {
      auth: typeof j?.auth === 'string' ? j.auth : null,
      message: typeof j?.error === 'string' && j.error ? j.error : fallback,
    };
  } catch {
    return { auth: null, message: fallback };
  }
}

/** The whoami answer, or null when it is not one. */
export function parsePrincipal(v: unknown): Principal | null {
  if (!v || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  if (typeof o.name !== 'string' || !o.name) return null;
  if (o.role !== 'read' && o.role !== 'admin') return null;
  let clusters: Principal['clusters'];
  if (o.clusters === '*') clusters = '*';
  else if (Array.isArray(o.clusters) && o.clusters.every((c) => typeof c === 'string')) clusters = [...o.clusters].sort();
  else return null;
  return {
    name: o.name,
    kind: typeof o.kind === 'string' ? o.kind : 'token',
    role: o.role,
    clusters,
    expiresAtMs: typeof o.expires_at_ms === 'number' && Number.isFinite(o.expires_at_ms) ? o.expires_at_ms : null,
    admin: o.admin === true,
    auth: typeof o.auth === 'string' ? o.auth : 'tokens',
  };
}

/** The scope in words: "every cluster", "cluster a", "clusters a, b". */
export function scopeLabel(p: Pick<Principal, 'clusters'>): string {
  if (p.clusters === '*') return 'every cluster';
  if (p.clusters.length === 0) return 'no cluster';
  return `${p.clusters.length === 1 ? 'cluster' : 'clusters'} ${p.clusters.join(', ')}`;
}

/** What the sign-in view tells the user to do in the gateway's `auth` mode. */
export function signInHint(auth: string | null): string {
  if (auth === 'proxy') return 'This gateway identifies you through your sign-in proxy: sign in there, then reload this page.';
  if (auth === 'none') return 'This gateway lets anyone read; what you asked for needs a token with more rights.';
  return 'This gateway needs an API token. Paste one: an administrator makes it with meridian-gateway admin tokens create.';
}

/** A storage in memory: where the browser's is disabled, and in tests. */
export function memoryStorage(): KeyValue & { size(): number } {
  const m = new Map<string, string>();
  return {
    getItem: (k) => m.get(k) ?? null,
    setItem: (k, v) => void m.set(k, v),
    removeItem: (k) => void m.delete(k),
    size: () => m.size,
  };
}
