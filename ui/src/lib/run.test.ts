import { describe, expect, it } from "vitest";
import { apply, counts, fromDocument, type RunEvent } from "./run";

const doc = {
  id: "r1",
  name: "p",
  status: "running",
  reason: null,
  correlationId: "c",
  createdAt: "2026-01-01T00:00:00Z",
  durationMs: null,
  cost: 0,
  eventSeq: 2,
  tasks: [
    { id: "a", status: "pending", outputs: null, error: null, attempts: 0, agent: null, parentTaskId: null, depth: 0 },
    { id: "b", status: "pending", outputs: null, error: null, attempts: 0, agent: null, parentTaskId: null, depth: 0 },
  ],
};

const ev = (seq: number, type: string, taskId: string | null, data: Record<string, unknown> = {}): RunEvent => ({
  seq,
  type,
  at: "2026-01-01T00:00:01Z",
  runId: "r1",
  taskId,
  data,
});

describe("apply", () => {
  it("moves tasks and the run by their events, once each", () => {
    const r0 = fromDocument(doc);
    const events = [
      ev(3, "task.ready", "a"),
      ev(4, "task.started", "a", { agent: "w", attempt: 1 }),
      ev(5, "task.failed", "b", { attempt: 1, error: "boom" }),
      ev(6, "task.succeeded", "a", { attempt: 1, agent: "w" }),
      ev(7, "model.completed", "a", { cost: 0.25 }),
      ev(8, "run.failed", null, { reason: "b failed" }),
    ];
    const r1 = apply(r0, events);
    expect(r1.tasks.map((t) => [t.id, t.status, t.attempts, t.agent, t.error])).toEqual([
      ["a", "succeeded", 1, "w", null],
      ["b", "failed", 1, null, "boom"],
    ]);
    expect([r1.status, r1.reason, r1.eventSeq, r1.cost]).toEqual(["failed", "b failed", 8, 0.25]);
    // The input is unchanged; repeats and older events change nothing.
    expect(r0.tasks[0].status).toBe("pending");
    expect(apply(r1, events)).toBe(r1);
    expect(apply(r1, [ev(2, "run.started", null)])).toBe(r1);
    expect(counts(r1.tasks)).toEqual({ succeeded: 1, failed: 1 });
  });

  it("adds subtasks that join the run under their parent", () => {
    const r = apply(fromDocument(doc), [ev(3, "task.ready", "a.x")]);
    expect(r.tasks[2]).toMatchObject({ id: "a.x", status: "ready", parentTaskId: "a", depth: 1 });
    expect(r.index.get("a.x")).toBe(2);
  });

  it("applies events out of order by seq", () => {
    const r = apply(fromDocument(doc), [ev(4, "task.succeeded", "a"), ev(3, "task.started", "a")]);
    expect(r.tasks[0].status).toBe("succeeded");
  });
});
