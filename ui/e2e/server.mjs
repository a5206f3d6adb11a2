// A real `nofx serve` for the browser tests: a fresh SQLite store in a temporary directory,
// an ephemeral port, and keys made with the CLI.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const root = resolve(import.meta.dirname, "../..");
export const NOFX = process.env.NOFX_BIN ?? join(root, "target/debug/nofx");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** This environment without a store URL: the server gets its own SQLite file. */
function withoutStoreUrl() {
  const env = { ...process.env };
  delete env.NOFX_DATABASE_URL;
  return env;
}

/** Starts `nofx serve` on `dir`'s store; resolves to the child and the URL it serves. */
async function launch(dir, bind) {
  const child = spawn(NOFX, ["--data-dir", join(dir, "data"), "serve", "--bind", bind], {
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
    env: withoutStoreUrl(),
  });
  const lines = createInterface({ input: child.stderr });
  const base = await new Promise((ok, fail) => {
    child.on("exit", (code) => fail(new Error(`nofx serve exited ${code}`)));
    lines.on("line", (line) => {
      const m = /^nofx serving on (\S+)/.exec(line);
      if (m) ok(m[1]);
    });
  });
  return { child, base };
}

async function stopChild(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((ok) => child.on("exit", ok));
  child.kill("SIGTERM");
  await exited;
}

export async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), "nofx-e2e-"));
  let { child, base } = await launch(dir, "127.0.0.1:0");
  const cli = (...args) => execFileSync(NOFX, ["--data-dir", join(dir, "data"), ...args], { cwd: dir, encoding: "utf8", env: withoutStoreUrl() });
  return {
    base,
    /** A new key of `project` (its secret). */
    key(project, scope = "submit") {
      const out = cli("keys", "create", "--project", project, "--scope", scope).trim().split("\n");
      return out[out.length - 1];
    },
    revoke(secret) {
      cli("keys", "revoke", secret);
    },
    async api(key, method, path, body, type = "application/json") {
      const r = await fetch(base + path, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { "content-type": type } : {}) },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    },
    /** Waits until run `id` has status `want` (by reading it), up to `ms`. */
    async until(key, id, want, ms = 60_000) {
      const end = Date.now() + ms;
      for (;;) {
        const r = await this.api(key, "GET", `/runs/${id}`);
        if (want.includes(r.body.status)) return r.body;
        if (Date.now() > end) throw new Error(`run ${id} is ${r.body.status}, not ${want}`);
        await new Promise((ok) => setTimeout(ok, 100));
      }
    },
    /** Stops the server (its streams close), runs `meanwhile`, and starts it again on the same address. */
    async restart(meanwhile = () => {}) {
      await stopChild(child);
      await meanwhile();
      ({ child } = await launch(dir, base.replace(/^http:\/\//, "")));
    },
    cli,
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
