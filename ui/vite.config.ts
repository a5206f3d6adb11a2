/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// Built into ui/dist, which `nofx serve` embeds and serves at /ui/. `npm run dev` serves the
// app with the API of a `nofx serve` on NOFX_API (default http://127.0.0.1:8080).
const api = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.NOFX_API ?? "http://127.0.0.1:8080";
const proxied = ["/runs", "/session", "/templates", "/agents", "/analytics", "/questions", "/checkpoints"];

export default defineConfig({
  base: "/ui/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  server: {
    proxy: Object.fromEntries(proxied.map((p) => [p, { target: api, changeOrigin: false }])),
  },
  test: {
    include: ["src/**/*.test.ts"],
  },
});
