import { useSignal, useComputed } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { api, ApiError } from "../lib/api";
import { follow, type Link } from "../lib/sse";
import { duration, when, MARK } from "../lib/format";
import { go, href, onLink } from "../lib/router";
import { RUN_STATUS, type Run } from "../lib/run";
import { Alert } from "./Alert";

/** A run as GET /runs lists it. */
type RunRow = Pick<Run, "id" | "name" | "status" | "reason" | "correlationId" | "createdAt" | "durationMs"> & { taskCount: number };
type Page = { runs: RunRow[]; nextCursor: string | null };

const STATUSES = ["", "pending", "running", "waiting", "succeeded", "failed", "cancelled", "interrupted"];

export function Runs() {
  const status = useSignal("");
  const search = useSignal("");
  const rows = useSignal<RunRow[]>([]);
  const cursors = useSignal<(string | null)[]>([null]);
  const next = useSignal<string | null>(null);
  const error = useSignal<string | null>(null);
  const link = useSignal<Link>("reconnecting");
  const changed = useSignal(0);

  const load = async () => {
    const cursor = cursors.value[cursors.value.length - 1];
    const q = new URLSearchParams({ limit: "50" });
    if (status.value) q.set("status", status.value);
    if (cursor) q.set("cursor", cursor);
    try {
      const page = await api<Page>("GET", `/runs?${q}`);
      rows.value = page.runs;
      next.value = page.nextCursor;
      error.value = null;
    } catch (e) {
      error.value = (e as ApiError).message;
    }
  };

  useEffect(() => {
    void load();
  }, [status.value, cursors.value, changed.value]);

  // New runs and status changes, live: a changed row in place; a new run reloads the first page.
  useEffect(() => {
    let pending = false;
    return follow("/runs/stream", {
      from: null,
      onFrame: (f) => {
        let d: { runId?: string };
        try {
          d = JSON.parse(f.data);
        } catch {
          return;
        }
        const s = RUN_STATUS[f.event];
        const i = rows.value.findIndex((r) => r.id === d.runId);
        if (i >= 0 && s) {
          const copy = rows.value.slice();
          copy[i] = { ...copy[i], status: s };
          rows.value = copy;
        } else if (f.event === "run.created" && cursors.value.length === 1 && !pending) {
          pending = true;
          requestAnimationFrame(() => {
            pending = false;
            changed.value++;
          });
        }
      },
      onLink: (l) => (link.value = l),
      ended: () => false,
      onRefused: () => (link.value = "ended"),
    });
  }, []);

  const shown = useComputed(() => {
    const q = search.value.trim().toLowerCase();
    if (!q) return rows.value;
    return rows.value.filter((r) => r.id.startsWith(q) || r.correlationId.toLowerCase().includes(q) || r.name.toLowerCase().includes(q));
  });

  const onSearch = (e: Event) => {
    e.preventDefault();
    const q = search.value.trim();
    if (/^[0-9a-f-]{36}$/.test(q)) go(`/runs/${q}`);
  };

  return (
    <section aria-labelledby="runs-h">
      <div class="bar">
        <h1 id="runs-h">Runs</h1>
        <span class={`link ${link.value}`} role="status" aria-live="polite">
          {link.value === "live" ? "● live" : link.value === "reconnecting" ? "○ reconnecting…" : "○ not live"}
        </span>
      </div>
      <form class="filters" onSubmit={onSearch} role="search">
        <label>
          Status{" "}
          <select
            value={status.value}
            onChange={(e) => {
              status.value = (e.target as HTMLSelectElement).value;
              cursors.value = [null];
            }}
          >
            {STATUSES.map((s) => (
              <option value={s}>{s || "any"}</option>
            ))}
          </select>
        </label>
        <label>
          Search{" "}
          <input
            type="search"
            placeholder="run id, correlation id or name"
            value={search.value}
            onInput={(e) => (search.value = (e.target as HTMLInputElement).value)}
          />
        </label>
      </form>
      <Alert text={error.value} />
      <table class="runs">
        <caption class="sr-only">Runs of the project, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Status</th>
            <th scope="col">Run</th>
            <th scope="col">Tasks</th>
            <th scope="col">Started</th>
            <th scope="col">Duration</th>
            <th scope="col">Correlation id</th>
          </tr>
        </thead>
        <tbody>
          {shown.value.map((r) => (
            <tr key={r.id}>
              <td>
                <span class={`status ${r.status}`}>
                  <span aria-hidden="true">{MARK[r.status] ?? "?"}</span> {r.status}
                </span>
              </td>
              <td>
                <a href={href(`/runs/${r.id}`)} onClick={(e) => onLink(e, `/runs/${r.id}`)}>
                  {r.name}
                </a>
                <div class="mono dim">{r.id}</div>
              </td>
              <td class="num">{r.taskCount}</td>
              <td>{when(r.createdAt)}</td>
              <td class="num">{duration(r.durationMs)}</td>
              <td class="mono">{r.correlationId}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {shown.value.length === 0 && !error.value && <p class="dim">No runs{status.value ? ` with status ${status.value}` : ""}.</p>}
      <nav class="pages" aria-label="Pages">
        <button type="button" disabled={cursors.value.length === 1} onClick={() => (cursors.value = cursors.value.slice(0, -1))}>
          Newer
        </button>
        <button type="button" disabled={!next.value} onClick={() => (cursors.value = [...cursors.value, next.value])}>
          Older
        </button>
      </nav>
    </section>
  );
}
