// Time axis ticks and duration labels (µs).

export interface Tick {
  /** µs from the axis start. */
  offset: number;
  /** Fraction of the axis width. */
  at: number;
  label: string;
}

/** The 1-2-5 step (µs) that gives at most `maxTicks` ticks over `range`. */
export function niceStep(range: number, maxTicks: number): number {
  if (!(range > 0) || maxTicks < 1) return 1;
  const raw = range / maxTicks;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) {
    if (m * pow >= raw) return Math.max(1, m * pow);
  }
  return Math.max(1, 10 * pow);
}

/** Ticks for the window [start, end] (µs), labelled relative to `origin`. */
export function ticks(start: number, end: number, maxTicks: number, origin = start): Tick[] {
  const range = end - start;
  if (!(range > 0)) return [{ offset: 0, at: 0, label: formatDuration(start - origin) }];
  const step = niceStep(range, maxTicks);
  const first = Math.ceil((start - origin) / step) * step + origin;
  const out: Tick[] = [];
  for (let t = first; t <= end + 1e-6; t += step) {
    out.push({ offset: t - origin, at: (t - start) / range, label: formatDuration(t - origin) });
  }
  return out;
}

/** `0`, `250µs`, `1.5ms`, `12ms`, `1.25s`, `2m 5s`. */
export function formatDuration(us: number): string {
  const sign = us < 0 ? '-' : '';
  const a = Math.abs(us);
  if (a === 0) return '0';
  if (a < 1000) return `${sign}${trim(a)}µs`;
  if (a < 1_000_000) return `${sign}${trim(a / 1000)}ms`;
  if (a < 60_000_000) return `${sign}${trim(a / 1_000_000)}s`;
  const m = Math.floor(a / 60_000_000);
  const s = Math.round((a - m * 60_000_000) / 1_000_000);
  return `${sign}${m}m ${s}s`;
}

function trim(v: number): string {
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return String(Number(v.toFixed(digits)));
}

/** A Go duration string as the Jaeger API takes it (`1.5s`, `300ms`). */
export function parseGoDuration(s: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)\s*$/.exec(s);
  if (!m) return null;
  const mult = { us: 1, µs: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 }[m[2] as 'us'];
  return Number(m[1]) * mult;
}
