// The run's attempts as bars on lanes, one lane per agent: an attempt starts at its
// `task.started` and ends at the task's next `task.succeeded`, `task.failed`,
// `task.retrying` or `task.cancelled` (or is still running).

import type { RunEvent } from "./run";

export type Bar = { task: string; agent: string; attempt: number; start: number; end: number | null; outcome: string };

const ENDS: Record<string, string> = {
  "task.succeeded": "succeeded",
  "task.failed": "failed",
  "task.retrying": "retried",
  "task.cancelled": "cancelled",
};

/** Bars from events in seq order. */
export function attempts(events: RunEvent[]): Bar[] {
  const open = new Map<string, Bar>();
  const out: Bar[] = [];
  for (const e of events) {
    if (!e.taskId) continue;
    if (e.type === "task.started") {
      const bar: Bar = {
        task: e.taskId,
        agent: String(e.data.agent ?? "?"),
        attempt: Number(e.data.attempt ?? 1),
        start: Date.parse(e.at),
        end: null,
        outcome: "running",
      };
      open.set(e.taskId, bar);
      out.push(bar);
      continue;
    }
    const outcome = ENDS[e.type];
    const bar = outcome ? open.get(e.taskId) : undefined;
    if (bar && outcome) {
      bar.end = Date.parse(e.at);
      bar.outcome = outcome;
      open.delete(e.taskId);
    }
  }
  return out;
}

/** Lanes by agent, in order of first use; each lane's bars by start. */
export function lanes(bars: Bar[]): [string, Bar[]][] {
  const by = new Map<string, Bar[]>();
  for (const b of bars) {
    let lane = by.get(b.agent);
    if (!lane) by.set(b.agent, (lane = []));
    lane.push(b);
  }
  for (const lane of by.values()) lane.sort((a, b) => a.start - b.start);
  return Array.from(by.entries());
}
