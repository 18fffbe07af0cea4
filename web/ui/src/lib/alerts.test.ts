import { describe, expect, it } from 'vitest';
import { ago, dashboardPath, explainPath, normalizeAlerts } from './alerts';

describe('alerts seam', () => {
  it('reads rules with their replicated status and the notifications', () => {
    const a = normalizeAlerts({
      rules: [
        {
          name: 'checkout errors',
          expr: 'error_ratio{service="checkout"}[5m] > 0.05',
          for_secs: 60,
          condition: { metric: 'error_ratio' },
          error: null,
          url: 'http://ui.example:16686/dashboards?service=checkout',
          explain: 'http://ui.example:16686/explain?service=checkout&tags=x',
          status: { state: 'firing', since_ms: 1000, fired_at_ms: 1000, value: 0.2, transition: 1, notified: 1, exemplars: ['0af7651916cd43dd8448eb211c80319c', '<b>'] },
        },
        { name: 'old', expr: 'bogus', for_secs: 0, error: 'unknown metric "bogus"', url: null, status: { state: 'weird' } },
      ],
      notifications: [{ rule: 'checkout errors', status: 'firing', transition: 1, at_ms: 1000, delivered: 1, receivers: 2, error: 'timeout' }],
    });
    expect(a.rules[0]).toEqual({
      name: 'checkout errors',
      expr: 'error_ratio{service="checkout"}[5m] > 0.05',
      forSecs: 60,
      error: null,
      dashboard: '/dashboards?service=checkout',
      explain: '/explain?service=checkout&tags=x',
      state: 'firing',
      sinceMs: 1000,
      value: 0.2,
      exemplars: ['0af7651916cd43dd8448eb211c80319c'],
    });
    expect(a.rules[1]).toMatchObject({ state: 'inactive', error: 'unknown metric "bogus"', dashboard: null, value: null });
    expect(a.notifications).toEqual([{ rule: 'checkout errors', status: 'firing', transition: 1, atMs: 1000, delivered: 1, receivers: 2, error: 'timeout' }]);
    expect(normalizeAlerts(null)).toEqual({ rules: [], notifications: [] });
  });
  it('opens only dashboard links in the UI', () => {
    expect(dashboardPath('https://x/dashboards?cluster=eu')).toBe('/dashboards?cluster=eu');
    expect(dashboardPath('javascript:alert(1)')).toBeNull();
    expect(dashboardPath(null)).toBeNull();
    expect(explainPath('https://x/explain?service=a')).toBe('/explain?service=a');
    expect(explainPath('https://x/dashboards?service=a')).toBeNull();
  });
  it('says how long ago', () => {
    expect(ago(0, 5000)).toBe('');
    expect(ago(1000, 46_000)).toBe('45s ago');
    expect(ago(0 + 1, 1 + 3 * 3600e3)).toBe('3h ago');
  });
});
