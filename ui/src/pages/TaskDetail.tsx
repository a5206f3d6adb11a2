import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { api } from "../lib/api";
import type { RunEvent } from "../lib/run";
import { duration, money, when, MARK } from "../lib/format";

type Artifact = { task: string; name: string; sha256: string; size: number; createdAt: string };
type Detail = {
  task: { id: string; status: string; outputs: unknown; error: string | null; attempts: number; agent: string | null };
  spec: { tool?: string; inputs?: Record<string, unknown>; depends_on?: string[]; gates?: unknown[] } | null;
  events: RunEvent[];
  artifacts: Artifact[];
};

type D = Record<string, unknown>;

/** One task: status, inputs, outputs, attempts, the agents scored for it, gate results,
 * model routing and calls, artifacts and, for an agent that reasons, its transcript. */
export function TaskDetail({ runId, taskId, version }: { runId: string; taskId: string; version: string }) {
  const detail = useSignal<Detail | null>(null);
  const error = useSignal<string | null>(null);
  useEffect(() => {
    api<Detail>("GET", `/runs/${runId}/tasks/${encodeURIComponent(taskId)}`).then(
      (d) => {
        detail.value = d;
        error.value = null;
      },
      (e) => (error.value = (e as Error).message),
    );
  }, [runId, taskId, version]);
  if (error.value) return <p class="error">{error.value}</p>;
  const d = detail.value;
  if (!d) return <p role="status">Loading {taskId}…</p>;
  const of = (type: string) => d.events.filter((e) => e.type === type);
  const attempts = d.events.filter((e) => ["task.started", "task.succeeded", "task.failed", "task.retrying", "task.cancelled", "task.skipped"].includes(e.type));
  const gates = d.events.filter((e) => e.type === "gate.passed" || e.type === "gate.failed");
  const delegated = of("task.delegated");
  const routed = of("model.routed");
  const calls = of("model.completed");
  const agentTurns = of("agent.turn").length;
  const t = d.task;
  return (
    <div>
      <h2>{t.id}</h2>
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <span class={`status ${t.status}`}>
            <span aria-hidden="true">{MARK[t.status] ?? "?"}</span> {t.status}
          </span>
        </dd>
        <dt>Tool</dt>
        <dd>{d.spec?.tool ?? "–"}</dd>
        <dt>Attempts</dt>
        <dd>{t.attempts}</dd>
        <dt>Agent</dt>
        <dd>{t.agent ?? "–"}</dd>
        {t.error && (
          <>
            <dt>Error</dt>
            <dd class="error">{t.error}</dd>
          </>
        )}
      </dl>
      <h3>Inputs</h3>
      <pre>{JSON.stringify(d.spec?.inputs ?? {}, null, 2)}</pre>
      <h3>Outputs</h3>
      <pre>{t.outputs === null || t.outputs === undefined ? "–" : JSON.stringify(t.outputs, null, 2)}</pre>
      {gates.length > 0 && (
        <>
          <h3>Gates</h3>
          <ul>
            {gates.map((g) => (
              <li key={g.seq}>
                {g.type === "gate.passed" ? "✓ passed" : "✕ failed"}: {String((g.data as D).kind)} (attempt {String((g.data as D).attempt)}) — {String((g.data as D).reason)}
              </li>
            ))}
          </ul>
        </>
      )}
      <h3>Attempts</h3>
      <ol>
        {attempts.map((e) => (
          <li key={e.seq}>
            {when(e.at)} {e.type.slice(5)}
            {(e.data as D).agent ? ` by ${String((e.data as D).agent)}` : ""}
            {(e.data as D).error ? `: ${String((e.data as D).error)}` : ""}
          </li>
        ))}
      </ol>
      {delegated.length > 0 && (
        <>
          <h3>Agents scored</h3>
          {delegated.map((e) => (
            <table class="small" key={e.seq}>
              <caption>
                Attempt {String((e.data as D).attempt)}: to {String((e.data as D).agent)}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Agent</th>
                  <th scope="col">Score</th>
                  <th scope="col">In flight</th>
                  <th scope="col">Available</th>
                </tr>
              </thead>
              <tbody>
                {((e.data as D).candidates as D[]).map((c) => (
                  <tr key={String(c.agent)}>
                    <td>{String(c.agent)}</td>
                    <td class="num">{String(c.score)}</td>
                    <td class="num">{String(c.inFlight)}</td>
                    <td>{c.available ? "yes" : "no"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ))}
        </>
      )}
      {(routed.length > 0 || calls.length > 0) && (
        <>
          <h3>Model calls</h3>
          <ul>
            {routed.map((e) => (
              <li key={e.seq}>
                routed to {String((e.data as D).model)} by rule {String((e.data as D).rule)}: {String((e.data as D).reason)}
              </li>
            ))}
            {calls.map((e) => {
              const c = e.data as D;
              return (
                <li key={e.seq}>
                  {String(c.model)}: {String(c.inputTokens ?? c.input_tokens)} in / {String(c.outputTokens ?? c.output_tokens)} out tokens, {money(Number(c.cost))}, {duration(Number(c.durationMs ?? c.duration_ms))}
                </li>
              );
            })}
          </ul>
        </>
      )}
      {d.artifacts.length > 0 && (
        <>
          <h3>Artifacts</h3>
          <ul>
            {d.artifacts.map((a) => (
              <li key={a.name}>
                <a href={`/runs/${runId}/artifacts/${a.name.split("/").map(encodeURIComponent).join("/")}`} download={a.name.split("/").pop()}>
                  {a.name}
                </a>{" "}
                <span class="dim">{a.size} bytes</span>
              </li>
            ))}
          </ul>
        </>
      )}
      {agentTurns > 0 && (
        <p>
          <a href={`/runs/${runId}/tasks/${encodeURIComponent(taskId)}/transcript`}>Transcript</a> ({agentTurns} turns, JSON)
        </p>
      )}
    </div>
  );
}
