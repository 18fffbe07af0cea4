import { render } from 'preact';
import { App } from './App';
import { interceptLinks } from './router';
import { initTheme } from './theme';
import './styles.css';

initTheme();
const root = document.getElementById('app')!;
interceptLinks(root);
render(<App />, root);
