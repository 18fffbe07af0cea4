// Data fetching for views: loading / error / data, aborted on change.

import { useEffect, useState } from 'preact/hooks';
import { ApiError } from './api';

export type Loadable<T> =
  | { state: 'loading' }
  | { state: 'error'; error: ApiError }
  | { state: 'ok'; data: T };

export function useFetch<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): [Loadable<T>, () => void] {
  const [value, setValue] = useState<Loadable<T>>({ state: 'loading' });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    setValue({ state: 'loading' });
    load(ctl.signal).then(
      (data) => !ctl.signal.aborted && setValue({ state: 'ok', data }),
      (e) => {
        if (ctl.signal.aborted) return;
        setValue({ state: 'error', error: e instanceof ApiError ? e : new ApiError(String(e?.message ?? e), 0, '') });
      },
    );
    return () => ctl.abort();
  }, [...deps, tick]);
  return [value, () => setTick((t) => t + 1)];
}
