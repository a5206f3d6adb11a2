import { useSignal, useComputed } from "@preact/signals";
import type { Run, Task } from "../lib/run";
import { MARK } from "../lib/format";

const ROW_H = 30;
const SHOWN = 40;
type Key = "id" | "status" | "attempts" | "agent";

/** Every task of the run in a table that renders only the rows in view. */
export function Tasks({ run }: { run: Run }) {
  const sort = useSignal<{ key: Key; up: boolean }>({ key: "id", up: true });
  const filter = useSignal("");
  const top = useSignal(0);
  const rows = useComputed(() => {
    const q = filter.value.trim().toLowerCase();
    const list = q ? run.tasks.filter((t) => t.id.toLowerCase().includes(q) || t.status === q || (t.agent ?? "").includes(q)) : run.tasks.slice();
    const { key, up } = sort.value;
    const val = (t: Task) => (key === "attempts" ? t.attempts : (t[key] ?? ""));
    list.sort((a, b) => {
      const x = val(a);
      const y = val(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
    });
    return list;
  });
  const first = Math.max(0, Math.floor(top.value / ROW_H) - 5);
  const slice = rows.value.slice(first, first + SHOWN);
  const head = (key: Key, label: string) => (
    <th scope="col" aria-sort={sort.value.key === key ? (sort.value.up ? "ascending" : "descending") : "none"}>
      <button type="button" onClick={() => (sort.value = { key, up: sort.value.key === key ? !sort.value.up : true })}>
        {label}
      </button>
    </th>
  );
  return (
    <div>
      <label>
        Filter{" "}
        <input type="search" placeholder="task id, status or agent" value={filter.value} onInput={(e) => (filter.value = (e.target as HTMLInputElement).value)} />
      </label>{" "}
      <span class="dim" role="status">
        {rows.value.length} of {run.tasks.length} tasks
      </span>
      <div class="vscroll" onScroll={(e) => (top.value = (e.target as HTMLElement).scrollTop)}>
        <table class="tasks" aria-rowcount={rows.value.length + 1}>
          <thead>
            <tr>
              {head("id", "Task")}
              {head("status", "Status")}
              {head("attempts", "Attempts")}
              {head("agent", "Agent")}
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            <tr style={{ height: `${first * ROW_H}px` }} aria-hidden="true" />
            {slice.map((t, k) => (
              <tr key={t.id} aria-rowindex={first + k + 2}>
                <td class="mono" style={{ paddingLeft: `${0.5 + t.depth}em` }}>
                  {t.id}
                </td>
                <td>
                  <span class={`status ${t.status}`}>
                    <span aria-hidden="true">{MARK[t.status] ?? "?"}</span> {t.status}
                  </span>
                </td>
                <td class="num">{t.attempts}</td>
                <td>{t.agent ?? "–"}</td>
                <td class="error">{t.error ?? ""}</td>
              </tr>
            ))}
            <tr style={{ height: `${Math.max(0, rows.value.length - first - SHOWN) * ROW_H}px` }} aria-hidden="true" />
          </tbody>
        </table>
      </div>
    </div>
  );
}
