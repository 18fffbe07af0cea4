import type { ComponentChildren } from 'preact';
import { type ApiError, askSignIn } from '../api';
import { clusterColor } from '../lib/colors';
import type { Loadable } from '../hooks';

export function Loading({ what }: { what: string }) {
  return (
    <div class="state loading" role="status">
      <span class="spinner" aria-hidden="true" /> Loading {what}…
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="state empty">{children}</div>;
}

export function ErrorBox({ error, retry }: { error: ApiError; retry?: () => void }) {
  return (
    <div class="state error" role="alert">
      <strong>{error.status ? `Error ${error.status}` : 'Error'}</strong>
      {error.path && <code>{error.path.split('?')[0]}</code>}: {error.message}
      {error.signIn && (
        <button type="button" onClick={() => error.signIn && askSignIn(error.signIn)}>
          Sign in
        </button>
      )}
      {retry && !error.signIn && (
        <button type="button" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function NotAvailable({ what, api }: { what: string; api: string }) {
  return (
    <div class="state not-available" data-testid="not-available">
      <strong>{what} not available on this gateway</strong> — it does not serve <code>{api}</code> (added by a newer
      Meridian).
    </div>
  );
}

/** Renders the loaded value, or the loading / not-available / error state. */
export function Load<T>(props: {
  value: Loadable<T>;
  what: string;
  api?: string;
  retry?: () => void;
  children: (data: T) => ComponentChildren;
}) {
  const v = props.value;
  if (v.state === 'loading') return <Loading what={props.what} />;
  if (v.state === 'error') {
    if (v.error.notAvailable && props.api) return <NotAvailable what={props.what} api={props.api} />;
    return <ErrorBox error={v.error} retry={props.retry} />;
  }
  return <>{props.children(v.data)}</>;
}

export function ClusterBadge({ cluster }: { cluster: string }) {
  return (
    <span class="badge cluster" style={{ '--c': clusterColor(cluster) }} title={`cluster ${cluster}`}>
      {cluster}
    </span>
  );
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

export function formatTime(us: number): string {
  const d = new Date(us / 1000);
  return d.toLocaleString(undefined, { hour12: false });
}
