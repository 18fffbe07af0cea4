// Vite builds the UI into web's OUT_DIR (build.rs passes --outDir); vitest
// runs the unit tests of the pure modules (src/**/*.test.ts).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  // `npx vite` serves the sources with hot reload; the APIs come from a
  // running gateway.
  server: {
    proxy: { '/api': process.env.MERIDIAN_GATEWAY ?? 'http://127.0.0.1:16686' },
  },
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    target: 'es2022',
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
