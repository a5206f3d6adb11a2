import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { api } from "../lib/api";
import { money, duration } from "../lib/format";
import { Alert } from "./Alert";

type Bucket = { bucket: string; runs: number; tasks: number; calls: number; tokens: number; cost: number; avgDuration: number; errors: number };
type Usage = { usage: Bucket[]; summary: Record<string, number> };

const day = (d: Date) => d.toISOString().slice(0, 10);

/** Usage and cost of the project over a range: a chart and, beside it, its table. */
export function UsagePage() {
  const end = new Date(Date.now() + 86_400_000);
  const since = useSignal(day(new Date(end.getTime() - 14 * 86_400_000)));
  const until = useSignal(day(end));
  const by = useSignal("day");
  const data = useSignal<Usage | null>(null);
  const error = useSignal<string | null>(null);
  useEffect(() => {
    const q = new URLSearchParams({ startDate: since.value, endDate: until.value, groupBy: by.value });
    api<Usage>("GET", `/analytics/usage?${q}`).then(
      (d) => {
        data.value = d;
        error.value = null;
      },
      (e) => (error.value = (e as Error).message),
    );
  }, [since.value, until.value, by.value]);
  const d = data.value;
  return (
    <section aria-labelledby="usage-h">
      <h1 id="usage-h">Usage</h1>
      <div class="filters">
        <label>
          From <input type="date" value={since.value} onChange={(e) => (since.value = (e.target as HTMLInputElement).value)} />
        </label>
        <label>
          To <input type="date" value={until.value} onChange={(e) => (until.value = (e.target as HTMLInputElement).value)} />
        </label>
        <label>
          By{" "}
          <select value={by.value} onChange={(e) => (by.value = (e.target as HTMLSelectElement).value)}>
            <option value="hour">hour</option>
            <option value="day">day</option>
            <option value="week">week</option>
            <option value="month">month</option>
          </select>
        </label>
      </div>
      <Alert text={error.value} />
      {d && (
        <>
          <p>
            {Object.entries(d.summary)
              .map(([k, v]) => `${k}: ${k === "cost" ? money(v) : v}`)
              .join(" · ")}
          </p>
          <Chart title="Cost" values={d.usage.map((b) => [b.bucket, b.cost])} fmt={money} />
          <Chart title="Tasks" values={d.usage.map((b) => [b.bucket, b.tasks])} fmt={String} />
          <Chart title="Tokens" values={d.usage.map((b) => [b.bucket, b.tokens])} fmt={String} />
          <Chart title="Average duration" values={d.usage.map((b) => [b.bucket, b.avgDuration])} fmt={(v) => duration(Math.round(v))} />
        </>
      )}
    </section>
  );
}

/** Bars for each bucket, with the same numbers as a table beside them. */
function Chart({ title, values, fmt }: { title: string; values: [string, number][]; fmt: (v: number) => string }) {
  const max = Math.max(1e-9, ...values.map(([, v]) => v));
  const w = 560;
  const h = 140;
  const bw = values.length ? w / values.length : w;
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div class="chart-row">
        <svg viewBox={`0 0 ${w} ${h + 4}`} width={w} height={h + 4} role="img" aria-label={`${title} by period; the table beside it has the values`}>
          {values.map(([k, v], i) => (
            <rect key={k} x={i * bw + 1} y={h - (v / max) * h} width={Math.max(1, bw - 2)} height={(v / max) * h} class="bar">
              <title>{`${k}: ${fmt(v)}`}</title>
            </rect>
          ))}
        </svg>
        <table class="small">
          <caption class="sr-only">{title} by period</caption>
          <thead>
            <tr>
              <th scope="col">Period</th>
              <th scope="col">{title}</th>
            </tr>
          </thead>
          <tbody>
            {values.map(([k, v]) => (
              <tr key={k}>
                <td>{k.slice(0, 16).replace("T", " ")}</td>
                <td class="num">{fmt(v)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </figure>
  );
}
