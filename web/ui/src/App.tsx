import { useEffect, useState } from 'preact/hooks';
import { ApiError, needsSignIn, onSignInNeeded, request, session } from './api';
import { Loading } from './components/common';
import { Identity } from './components/Identity';
import { parsePrincipal, type Principal, type SignInNeeded } from './lib/session';
import { navigate, useLocation } from './router';
import { currentTheme, setTheme, type Theme } from './theme';
import { AlertsView } from './views/Alerts';
import { ClustersView } from './views/Clusters';
import { CompareView } from './views/Compare';
import { ExplainPanel } from './views/Explain';
import { DashboardsView } from './views/Dashboards';
import { SearchView } from './views/Search';
import { ServiceMapView } from './views/ServiceMap';
import { SignInView } from './views/SignIn';
import { TraceView } from './views/Trace';

/** Who the app runs as. `who` is null on a gateway without whoami. */
type Auth =
  | { state: 'checking' }
  | { state: 'ready'; who: Principal | null }
  /** A request was refused for want of a credential; `who` is the caller
   * still served without one (anonymous), if any. */
  | { state: 'sign-in'; need: SignInNeeded; who: Principal | null };

/** Asks the gateway who this tab's token (or no token) is. */
async function whoami(): Promise<Auth> {
  try {
    return { state: 'ready', who: parsePrincipal(await request<unknown>('/api/v1/whoami', { signIn: false })) };
  } catch (e) {
    if (needsSignIn(e)) return { state: 'sign-in', need: e.signIn ?? { auth: null, message: e.message }, who: null };
    if ((e as Error)?.name === 'AbortError') throw e;
    // An older gateway (404) or one that failed: the views say what fails.
    if (!(e instanceof ApiError)) throw e;
    return { state: 'ready', who: null };
  }
}

/** The auth state and the session's generation (a new one on every
 * sign-in and sign-out: the views are mounted afresh, so nothing loaded
 * for one caller is shown to the next). */
function useAuth() {
  const [auth, setAuth] = useState<Auth>({ state: 'checking' });
  const [generation, setGeneration] = useState(session.generation);
  useEffect(() => {
    let live = true;
    const check = () =>
      whoami().then(
        (a) => live && setAuth(a),
        () => undefined,
      );
    check();
    // "Continue without a token" only where the tab is served without one.
    const offNeed = onSignInNeeded((need) =>
      setAuth((a) => {
        const who = a.state !== 'checking' && a.who?.kind === 'anonymous' && !session.token() ? a.who : null;
        return { state: 'sign-in', need, who };
      }),
    );
    const offSession = session.subscribe(() => {
      setGeneration(session.generation);
      // Signed out: who is this tab now (anonymous, or nobody)?
      if (!session.token()) {
        setAuth({ state: 'checking' });
        check();
      }
    });
    return () => {
      live = false;
      offNeed();
      offSession();
    };
  }, []);
  return { auth, setAuth, generation };
}

const NAV = [
  { path: '/search', label: 'Search' },
  { path: '/map', label: 'Service map' },
  { path: '/dashboards', label: 'Dashboards' },
  { path: '/alerts', label: 'Alerts' },
  { path: '/clusters', label: 'Clusters' },
];

export function App() {
  const loc = useLocation();
  const { auth, setAuth, generation } = useAuth();
  const [theme, setThemeState] = useState<Theme>(currentTheme());
  const toggleTheme = () => {
    const t = theme === 'dark' ? 'light' : 'dark';
    setTheme(t);
    setThemeState(t);
  };
  const [traceInput, setTraceInput] = useState('');
  const openTrace = (e: Event) => {
    e.preventDefault();
    const id = traceInput.trim().toLowerCase();
    if (/^[0-9a-f]{1,32}$/.test(id)) {
      setTraceInput('');
      navigate(`/trace/${id}`);
    }
  };
  return (
    <div class="app">
      <header class="topbar">
        <a class="brand" href="/search">
          <img src="/favicon.svg" alt="" width={20} height={20} /> Meridian
        </a>
        <nav>
          {auth.state === 'ready' &&
            NAV.map((n) => (
              <a href={n.path} class={loc.path.startsWith(n.path) ? 'active' : ''} key={n.path}>
                {n.label}
              </a>
            ))}
        </nav>
        {auth.state === 'ready' && (
          <form class="goto" onSubmit={openTrace}>
            <input
              placeholder="Trace ID…"
              aria-label="Open a trace by id"
              value={traceInput}
              onInput={(e) => setTraceInput(e.currentTarget.value)}
            />
          </form>
        )}
        {auth.state === 'ready' && auth.who && (
          <Identity
            who={auth.who}
            onSignIn={() => setAuth({ state: 'sign-in', need: { auth: auth.who?.auth ?? null, message: 'Paste an API token to act with its rights.' }, who: auth.who })}
            onSignOut={() => session.signOut()}
          />
        )}
        <button type="button" class="theme-toggle" onClick={toggleTheme} title="Switch theme" aria-label="Switch theme">
          {theme === 'dark' ? '☀' : '☾'}
        </button>
      </header>
      <main>
        {auth.state === 'checking' && <Loading what="who you are" />}
        {auth.state === 'sign-in' && (
          <SignInView
            need={auth.need}
            onSignedIn={(token, who) => {
              session.signIn(token);
              setAuth({ state: 'ready', who });
            }}
            onCancel={
              auth.who
                ? () => {
                    setAuth({ state: 'ready', who: auth.who });
                    navigate('/search');
                  }
                : undefined
            }
          />
        )}
        {auth.state === 'ready' && <Route key={generation} path={loc.path} query={loc.query} />}
      </main>
    </div>
  );
}

function Route({ path, query }: { path: string; query: URLSearchParams }) {
  const compare = /^\/compare\/([0-9a-fA-F]+)\/([0-9a-fA-F]+)\/?$/.exec(path);
  if (compare) return <CompareView a={compare[1].toLowerCase()} b={compare[2].toLowerCase()} />;
  const trace = /^\/trace\/([0-9a-fA-F]+)\/?$/.exec(path);
  if (trace) return <TraceView id={trace[1].toLowerCase()} raw={query.get('raw') === 'true'} />;
  // An explanation by link (an alert's notification points here).
  if (path === '/explain') {
    return (
      <div class="page">
        <ExplainPanel params={query} onClose={() => navigate('/search')} />
      </div>
    );
  }
  if (path === '/' || path.startsWith('/search')) return <SearchView query={query} />;
  if (path.startsWith('/map')) return <ServiceMapView query={query} />;
  if (path.startsWith('/dashboards')) return <DashboardsView />;
  if (path.startsWith('/alerts')) return <AlertsView />;
  if (path.startsWith('/clusters')) return <ClustersView />;
  return (
    <div class="page">
      <h1>Not found</h1>
      <p>
        No page at <code>{path}</code>. Go to <a href="/search">Search</a>.
      </p>
    </div>
  );
}
