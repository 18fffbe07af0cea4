// Data fetching for views: loading / error / data, aborted on change.

import { useEffect, useState } from 'preact/hooks';
import { ApiError } from './api';

export type Loadable<T> =
  | { state: 'loading' }
  | { state: 'error'; error: ApiError }
  | { state: 'ok'; data: T };

/** `load` runs again whenever a value in `deps` (primitives) changes; until
 * it answers, the result is `loading` — never the previous deps' data. */
export function useFetch<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): [Loadable<T>, () => void] {
  const [tick, setTick] = useState(0);
  const key = [...deps, tick].map(String).join('\u0000');
  const [result, setResult] = useState<{ key: string; value: Loadable<T> }>({ key: '', value: { state: 'loading' } });
  useEffect(() => {
    const ctl = new AbortController();
    load(ctl.signal).then(
      (data) => !ctl.signal.aborted && setResult({ key, value: { state: 'ok', data } }),
      (e) => {
        if (ctl.signal.aborted) return;
        const error = e instanceof ApiError ? e : new ApiError(String(e?.message ?? e), 0, '');
        setResult({ key, value: { state: 'error', error } });
      },
    );
    return () => ctl.abort();
  }, [key]);
  return [result.key === key ? result.value : { state: 'loading' }, () => setTick((t) => t + 1)];
}
