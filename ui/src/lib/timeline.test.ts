import { describe, expect, it } from "vitest";
import { attempts, lanes } from "./timeline";
import type { RunEvent } from "./run";

const ev = (seq: number, type: string, taskId: string, ms: number, data: Record<string, unknown> = {}): RunEvent => ({
  seq,
  type,
  at: new Date(ms).toISOString(),
  runId: "r",
  taskId,
  data,
});

describe("attempts", () => {
  it("makes one bar per attempt, ended by the task's outcome, on its agent's lane", () => {
    const bars = attempts([
      ev(1, "task.started", "a", 1000, { agent: "w1", attempt: 1 }),
      ev(2, "task.started", "b", 1100, { agent: "w2", attempt: 1 }),
      ev(3, "task.retrying", "a", 1500, { attempt: 1 }),
      ev(4, "task.started", "a", 1600, { agent: "w2", attempt: 2 }),
      ev(5, "task.succeeded", "b", 1700, { attempt: 1 }),
      ev(6, "task.failed", "a", 2000, { attempt: 2 }),
      ev(7, "task.started", "c", 2100, { agent: "w1", attempt: 1 }),
    ]);
    expect(bars.map((b) => [b.task, b.agent, b.attempt, b.start, b.end, b.outcome])).toEqual([
      ["a", "w1", 1, 1000, 1500, "retried"],
      ["b", "w2", 1, 1100, 1700, "succeeded"],
      ["a", "w2", 2, 1600, 2000, "failed"],
      ["c", "w1", 1, 2100, null, "running"],
    ]);
    expect(lanes(bars).map(([agent, l]) => [agent, l.map((b) => b.task)])).toEqual([
      ["w1", ["a", "c"]],
      ["w2", ["b", "a"]],
    ]);
  });
});
