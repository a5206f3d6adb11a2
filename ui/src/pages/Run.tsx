import { useSignal } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import { api, ApiError } from "../lib/api";
import { follow, type Link } from "../lib/sse";
import { apply, counts, fromDocument, TERMINAL_RUN, type Run, type RunEvent } from "../lib/run";
import { duration, money, when, MARK } from "../lib/format";
import { href, onLink } from "../lib/router";
import { Graph } from "./Graph";
import { Tasks } from "./Tasks";
import { Events } from "./Events";
import { Timeline } from "./Timeline";
import { Cost } from "./Cost";

const TABS = ["graph", "tasks", "timeline", "events", "cost"] as const;
type Tab = (typeof TABS)[number];

export function RunPage({ id }: { id: string }) {
  const run = useSignal<Run | null>(null);
  const error = useSignal<string | null>(null);
  const link = useSignal<Link>("reconnecting");
  const tab = useSignal<Tab>("graph");
  const log = useSignal<RunEvent[]>([]);
  const shapeChanged = useSignal(0);
  const notice = useSignal<string | null>(null);
  const confirming = useRef<HTMLDialogElement>(null);

  useEffect(() => {
    let stop = () => {};
    let alive = true;
    let queue: RunEvent[] = [];
    let frame = 0;
    // Events are applied at most once per animation frame.
    const flush = () => {
      frame = 0;
      const batch = queue;
      queue = [];
      if (!run.value) return;
      run.value = apply(run.value, batch);
      log.value = log.value.concat(batch.filter((e) => e.seq > (log.value[log.value.length - 1]?.seq ?? 0))).slice(-5000);
      if (batch.some((e) => e.type === "task.decomposed" || e.type === "task.replanned")) shapeChanged.value++;
      if (TERMINAL_RUN.has(run.value.status)) void refresh();
    };
    const refresh = async () => {
      const doc = await api<Record<string, unknown>>("GET", `/runs/${id}`);
      if (alive) run.value = fromDocument(doc);
    };
    (async () => {
      try {
        const doc = await api<Record<string, unknown>>("GET", `/runs/${id}`);
        if (!alive) return;
        const r = fromDocument(doc);
        run.value = r;
        const first = await api<{ events: RunEvent[] }>("GET", `/runs/${id}/events?after=${Math.max(0, r.eventSeq - 500)}&limit=500`);
        if (alive) log.value = first.events;
        stop = follow(`/runs/${id}/stream`, {
          from: String(r.eventSeq),
          onFrame: (f) => {
            if (f.id === null) return;
            try {
              queue.push(JSON.parse(f.data) as RunEvent);
            } catch {
              return;
            }
            if (!frame) frame = requestAnimationFrame(flush);
          },
          onLink: (l) => (link.value = l),
          ended: () => queue.some((e) => e.type.startsWith("run.") && TERMINAL_RUN.has(e.type.slice(4))) || TERMINAL_RUN.has(run.value?.status ?? ""),
          onRefused: () => (link.value = "ended"),
        });
      } catch (e) {
        error.value = e instanceof ApiError && e.status === 404 ? `No run ${id} in this project.` : (e as Error).message;
      }
    })();
    return () => {
      alive = false;
      stop();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [id]);

  if (error.value)
    return (
      <p class="error" role="alert">
        {error.value}
      </p>
    );
  const r = run.value;
  if (!r) return <p role="status">Loading run…</p>;
  const c = counts(r.tasks);
  const done = (c.succeeded ?? 0) + (c.failed ?? 0) + (c.skipped ?? 0) + (c.cancelled ?? 0);
  const act = async (what: string, method: string, path: string, body?: unknown) => {
    notice.value = null;
    try {
      await api(method, path, body);
      notice.value = `${what}: done.`;
    } catch (e) {
      notice.value = `${what} failed: ${(e as Error).message}`;
    }
  };
  return (
    <article aria-labelledby="run-h">
      <div class="bar">
        <h1 id="run-h">
          {r.name} <span class={`status ${r.status}`}><span aria-hidden="true">{MARK[r.status] ?? "?"}</span> {r.status}</span>
        </h1>
        <span class={`link ${link.value}`} role="status" aria-live="polite">
          {link.value === "live" ? "● live" : link.value === "reconnecting" ? "○ reconnecting…" : "○ ended"}
        </span>
      </div>
      <dl class="facts">
        <dt>Run</dt>
        <dd class="mono">{r.id}</dd>
        <dt>Correlation id</dt>
        <dd class="mono">{r.correlationId}</dd>
        <dt>Progress</dt>
        <dd>
          {done}/{r.tasks.length} done{" "}
          {Object.entries(c).map(([s, n]) => (
            <span class={`chip ${s}`}>
              <span aria-hidden="true">{MARK[s]}</span> {n} {s}
            </span>
          ))}
        </dd>
        <dt>Cost</dt>
        <dd>{money(r.cost)}</dd>
        <dt>Started</dt>
        <dd>{when(r.createdAt)}</dd>
        <dt>Duration</dt>
        <dd>{duration(r.durationMs)}</dd>
        {r.reason && (
          <>
            <dt>Reason</dt>
            <dd>{r.reason}</dd>
          </>
        )}
        {r.parentRunId && (
          <>
            <dt>Lineage</dt>
            <dd>
              from <a href={href(`/runs/${r.parentRunId}`)} onClick={(e) => onLink(e, `/runs/${r.parentRunId}`)}>{r.parentRunId}</a>
              {r.checkpointId && <> (checkpoint {r.checkpointId})</>}
              {r.forkedAt && <> forked at {r.forkedAt}</>}
            </dd>
          </>
        )}
      </dl>
      <p class="sr-only" aria-live="polite">
        Run {r.status}
        {c.failed ? `, ${c.failed} task(s) failed` : ""}
      </p>
      <div class="actions">
        <button type="button" disabled={TERMINAL_RUN.has(r.status)} onClick={() => confirming.current?.showModal()}>
          Cancel run…
        </button>
        <button type="button" onClick={() => void act("Checkpoint", "POST", `/runs/${r.id}/checkpoints`, {})}>
          Checkpoint
        </button>
        {notice.value && <span role="status">{notice.value}</span>}
      </div>
      <dialog ref={confirming} aria-labelledby="cancel-h">
        <form method="dialog">
          <h2 id="cancel-h">Cancel this run?</h2>
          <p>Tasks still running are stopped; the run ends as cancelled.</p>
          <button value="no">Keep running</button>{" "}
          <button value="yes" onClick={() => void act("Cancel", "POST", `/runs/${r.id}/cancel`, {})}>
            Cancel run
          </button>
        </form>
      </dialog>
      <div role="tablist" aria-label="Views" class="tabs">
        {TABS.map((t) => (
          <button
            type="button"
            role="tab"
            id={`tab-${t}`}
            aria-selected={tab.value === t}
            aria-controls={`panel-${t}`}
            tabIndex={tab.value === t ? 0 : -1}
            onClick={() => (tab.value = t)}
            onKeyDown={(e) => {
              const k = TABS.indexOf(t);
              if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
                const n = TABS[(k + (e.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length];
                tab.value = n;
                document.getElementById(`tab-${n}`)?.focus();
              }
            }}
          >
            {t[0].toUpperCase() + t.slice(1)}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab.value}`} aria-labelledby={`tab-${tab.value}`}>
        {tab.value === "graph" && <Graph run={r} shape={shapeChanged.value} />}
        {tab.value === "tasks" && <Tasks run={r} />}
        {tab.value === "timeline" && <Timeline run={r} />}
        {tab.value === "events" && <Events events={log.value} />}
        {tab.value === "cost" && <Cost run={r} />}
      </div>
    </article>
  );
}
