import { describe, expect, it } from "vitest";
import { breakdown } from "./cost";
import type { RunEvent } from "./run";

const ev = (seq: number, type: string, taskId: string | null, data: Record<string, unknown>): RunEvent => ({ seq, type, at: "2026-01-01T00:00:00Z", runId: "r", taskId, data });

describe("breakdown", () => {
  it("sums calls, tokens and cost by model, agent and task, costliest first", () => {
    const b = breakdown(
      [
        ev(1, "model.completed", "a", { model: "big", inputTokens: 100, outputTokens: 50, cost: 0.5 }),
        ev(2, "model.completed", "b", { model: "small", inputTokens: 10, outputTokens: 5, cost: 0.01 }),
        ev(3, "model.completed", "a", { model: "small", inputTokens: 20, outputTokens: 10, cost: 0.02 }),
        ev(4, "cost.alert", "a", { model: "big", cost: 0.5, threshold: 0.25 }),
        ev(5, "task.succeeded", "a", {}),
      ],
      (t) => (t === "a" ? "analyst" : null),
    );
    expect(b.byModel.map((s) => [s.key, s.calls, s.tokens, s.cost])).toEqual([
      ["big", 1, 150, 0.5],
      ["small", 2, 45, 0.03],
    ]);
    expect(b.byAgent.map((s) => s.key)).toEqual(["analyst", "(none)"]);
    expect(b.byTask.map((s) => [s.key, s.calls])).toEqual([
      ["a", 2],
      ["b", 1],
    ]);
    expect([b.total.calls, b.total.tokens]).toEqual([3, 195]);
    expect(b.alerts.map((e) => e.seq)).toEqual([4]);
  });
});
