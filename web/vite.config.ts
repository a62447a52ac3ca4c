// The web UI's build: `npm run build` writes web/dist, which uvmmd embeds (see
// crates/uvmm-daemon/build.rs). `npm run dev` serves the UI with hot reload and sends
// /api to a running uvmmd (UVMM_URL, default http://127.0.0.1:2106).
import { defineConfig } from 'vite';

const target = process.env.UVMM_URL ?? 'http://127.0.0.1:2106';

export default defineConfig({
  // JSX is Preact's (no React): the automatic runtime from preact/jsx-runtime.
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Chromium, Firefox and Safari of the last years: no polyfills, smaller files.
    target: 'es2022',
    // The preload polyfill would be an inline script, which the page's CSP forbids.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    // uvmmd checks Host and Origin (DNS rebinding, cross-site requests): the dev proxy
    // presents the daemon's own. Only for development; the built UI is served by uvmmd.
    proxy: { '/api': { target, changeOrigin: true, headers: { origin: target } } },
  },
});
