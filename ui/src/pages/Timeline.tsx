import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { allEvents } from "../lib/events";
import type { Run } from "../lib/run";
import { attempts, lanes, type Bar } from "../lib/timeline";
import { duration } from "../lib/format";

const LANE_H = 28;
const SHOWN = 2000;

/** One bar per attempt, one lane per agent (the first 2,000 attempts drawn; all counted). */
export function Timeline({ run }: { run: Run }) {
  const bars = useSignal<Bar[] | null>(null);
  const error = useSignal<string | null>(null);
  useEffect(() => {
    let alive = true;
    allEvents(run.id, () => alive).then(
      (all) => {
        if (alive) bars.value = attempts(all);
      },
      (e) => (error.value = (e as Error).message),
    );
    return () => {
      alive = false;
    };
  }, [run.id, run.status]);
  if (error.value) return <p class="error">{error.value}</p>;
  if (!bars.value) return <p role="status">Reading the run's attempts…</p>;
  const list = bars.value;
  if (list.length === 0) return <p class="dim">No attempt has started.</p>;
  const t0 = Math.min(...list.map((b) => b.start));
  const now = Date.now();
  const t1 = Math.max(...list.map((b) => b.end ?? now));
  const span = Math.max(1, t1 - t0);
  const width = 1000;
  const ls = lanes(list.slice(0, SHOWN));
  return (
    <div>
      <p class="dim">
        {list.length} attempt(s) over {duration(span)} on {ls.length} agent(s)
        {list.length > SHOWN ? `; the first ${SHOWN} are drawn` : ""}.
      </p>
      <svg viewBox={`0 0 ${width + 120} ${ls.length * LANE_H + 10}`} class="timeline" role="img" aria-label="Attempts by agent over time; the Tasks view lists them as a table">
        {ls.map(([agent, lane], k) => (
          <g key={agent} transform={`translate(0 ${k * LANE_H + 4})`}>
            <text x={0} y={LANE_H / 2} class="lane">
              {agent}
            </text>
            {lane.map((b) => (
              <rect
                key={`${b.task}-${b.attempt}`}
                x={120 + ((b.start - t0) / span) * width}
                y={2}
                width={Math.max(1.5, (((b.end ?? now) - b.start) / span) * width)}
                height={LANE_H - 8}
                class={`bar ${b.outcome}`}
              >
                <title>{`${b.task} attempt ${b.attempt}: ${b.outcome}, ${duration((b.end ?? now) - b.start)}`}</title>
              </rect>
            ))}
          </g>
        ))}
      </svg>
    </div>
  );
}
