import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { allEvents } from "../lib/events";
import { breakdown, type Breakdown, type Spend } from "../lib/cost";
import type { Run } from "../lib/run";
import { money, when } from "../lib/format";

/** The run's model spend by model, agent and task, and its cost alerts. */
export function Cost({ run }: { run: Run }) {
  const b = useSignal<Breakdown | null>(null);
  const error = useSignal<string | null>(null);
  useEffect(() => {
    let alive = true;
    allEvents(run.id, () => alive).then(
      (all) => {
        if (!alive) return;
        b.value = breakdown(all, (t) => {
          const i = run.index.get(t);
          return i === undefined ? null : run.tasks[i].agent;
        });
      },
      (e) => (error.value = (e as Error).message),
    );
    return () => {
      alive = false;
    };
  }, [run.id, run.status]);
  if (error.value) return <p class="error">{error.value}</p>;
  const d = b.value;
  if (!d) return <p role="status">Reading the run's model calls…</p>;
  return (
    <div>
      <p>
        {d.total.calls} model call(s), {d.total.tokens} tokens, {money(d.total.cost)} (the run's cost: {money(run.cost)}).
      </p>
      {d.alerts.length > 0 && (
        <>
          <h3>Cost alerts</h3>
          <ul>
            {d.alerts.map((e) => (
              <li key={e.seq}>
                {when(e.at)} {e.taskId}: {String(e.data.model)} cost {money(Number(e.data.cost))}, over the alert line of {money(Number(e.data.threshold))}
              </li>
            ))}
          </ul>
        </>
      )}
      <div class="chart-row">
        <SpendTable title="By model" rows={d.byModel} />
        <SpendTable title="By agent" rows={d.byAgent} />
        <SpendTable title="By task" rows={d.byTask.slice(0, 100)} />
      </div>
    </div>
  );
}

function SpendTable({ title, rows }: { title: string; rows: Spend[] }) {
  return (
    <table class="small">
      <caption>{title}</caption>
      <thead>
        <tr>
          <th scope="col">{title.slice(3)}</th>
          <th scope="col">Calls</th>
          <th scope="col">Tokens</th>
          <th scope="col">Cost</th>
        </tr>
      </thead>
      <tbody>
        {rows.length === 0 && (
          <tr>
            <td colSpan={4} class="dim">
              none
            </td>
          </tr>
        )}
        {rows.map((r) => (
          <tr key={r.key}>
            <td>{r.key}</td>
            <td class="num">{r.calls}</td>
            <td class="num">{r.tokens}</td>
            <td class="num">{money(r.cost)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
