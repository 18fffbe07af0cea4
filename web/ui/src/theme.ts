// Light and dark themes: CSS variables under `html[data-theme]`, the choice
// kept in localStorage, the system's preference until one is made.

const KEY = 'meridian.theme';
export type Theme = 'light' | 'dark';

export function currentTheme(): Theme {
  const saved = localStorage.getItem(KEY);
  if (saved === 'light' || saved === 'dark') return saved;
  return window.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

export function initTheme() {
  document.documentElement.dataset.theme = currentTheme();
}

export function setTheme(t: Theme) {
  localStorage.setItem(KEY, t);
  document.documentElement.dataset.theme = t;
}
