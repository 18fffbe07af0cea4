// `GET /api/v1/alerts` (gateway/src/alerts/api.rs), read defensively:
//   {"rules": [{"name","expr","for_secs","error" (parse error or null),
//               "url" (the series' dashboard, or null),
//               "explain" (while firing: the /explain page of why, or null),
//               "status": {"state": inactive|pending|firing|resolved,
//                          "since_ms","fired_at_ms","value","transition",
//                          "notified","exemplars": [hex trace id]}}],
//    "notifications": [{"rule","status","transition","at_ms",
//                       "delivered","receivers","error"}]}   (newest first)

export type AlertStateName = 'inactive' | 'pending' | 'firing' | 'resolved';
const STATES: AlertStateName[] = ['inactive', 'pending', 'firing', 'resolved'];

export interface AlertRuleState {
  name: string;
  expr: string;
  forSecs: number;
  /** Why the expression does not parse (a rule stored before the grammar). */
  error: string | null;
  /** The dashboard path for the rule's series (same origin), if any. */
  dashboard: string | null;
  /** While firing: the `/explain?…` path of why (same origin). */
  explain: string | null;
  state: AlertStateName;
  sinceMs: number;
  value: number | null;
  exemplars: string[];
}
export interface AlertNotification {
  rule: string;
  status: string;
  transition: number;
  atMs: number;
  delivered: number;
  receivers: number;
  error: string | null;
}
export interface Alerts {
  rules: AlertRuleState[];
  notifications: AlertNotification[];
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});
const list = (v: unknown): Obj[] => (Array.isArray(v) ? v.map(obj) : []);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const str = (v: unknown): string | null => (typeof v === 'string' && v ? v : null);

/** The path of an absolute `--ui-url` link under `prefix`, so it opens in this UI. */
function uiPath(url: string | null, prefix: string): string | null {
  if (!url) return null;
  try {
    const u = new URL(url, 'http://ui.invalid');
    return u.pathname.startsWith(prefix) ? u.pathname + u.search : null;
  } catch {
    return null;
  }
}

export const dashboardPath = (url: string | null) => uiPath(url, '/dashboards');
export const explainPath = (url: string | null) => uiPath(url, '/explain');

export function normalizeAlerts(body: unknown): Alerts {
  const b = obj(body);
  return {
    rules: list(b.rules).map((r) => {
      const st = obj(r.status);
      const state = STATES.find((s) => s === st.state) ?? 'inactive';
      return {
        name: String(r.name ?? ''),
        expr: String(r.expr ?? ''),
        forSecs: num(r.for_secs),
        error: str(r.error),
        dashboard: dashboardPath(str(r.url)),
        explain: explainPath(str(r.explain)),
        state,
        sinceMs: num(st.since_ms),
        value: typeof st.value === 'number' ? st.value : null,
        exemplars: (Array.isArray(st.exemplars) ? st.exemplars : []).filter((e): e is string => typeof e === 'string' && /^[0-9a-f]{1,32}$/i.test(e)),
      };
    }),
    notifications: list(b.notifications).map((n) => ({
      rule: String(n.rule ?? ''),
      status: String(n.status ?? ''),
      transition: num(n.transition),
      atMs: num(n.at_ms),
      delivered: num(n.delivered),
      receivers: num(n.receivers),
      error: str(n.error),
    })),
  };
}

/** "3m ago" style, for a state's start; "" when never set. */
export function ago(ms: number, now: number): string {
  if (!ms) return '';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
