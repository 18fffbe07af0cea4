import { useState } from 'preact/hooks';
import { navigate, useLocation } from './router';
import { currentTheme, setTheme, type Theme } from './theme';
import { AlertsView } from './views/Alerts';
import { ClustersView } from './views/Clusters';
import { DashboardsView } from './views/Dashboards';
import { SearchView } from './views/Search';
import { ServiceMapView } from './views/ServiceMap';
import { TraceView } from './views/Trace';

const NAV = [
  { path: '/search', label: 'Search' },
  { path: '/map', label: 'Service map' },
  { path: '/dashboards', label: 'Dashboards' },
  { path: '/alerts', label: 'Alerts' },
  { path: '/clusters', label: 'Clusters' },
];

export function App() {
  const loc = useLocation();
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
          {NAV.map((n) => (
            <a href={n.path} class={loc.path.startsWith(n.path) ? 'active' : ''} key={n.path}>
              {n.label}
            </a>
          ))}
        </nav>
        <form class="goto" onSubmit={openTrace}>
          <input
            placeholder="Trace ID…"
            aria-label="Open a trace by id"
            value={traceInput}
            onInput={(e) => setTraceInput(e.currentTarget.value)}
          />
        </form>
        <button type="button" class="theme-toggle" onClick={toggleTheme} title="Switch theme" aria-label="Switch theme">
          {theme === 'dark' ? '☀' : '☾'}
        </button>
      </header>
      <main>
        <Route path={loc.path} query={loc.query} />
      </main>
    </div>
  );
}

function Route({ path, query }: { path: string; query: URLSearchParams }) {
  const trace = /^\/trace\/([0-9a-fA-F]+)\/?$/.exec(path);
  if (trace) return <TraceView id={trace[1].toLowerCase()} raw={query.get('raw') === 'true'} />;
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
