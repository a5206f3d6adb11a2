// Where a run's model spend went: by model, by agent and by task, from its
// `model.completed` events; and the `cost.alert`s it raised.

import type { RunEvent } from "./run";

export type Spend = { key: string; calls: number; tokens: number; cost: number };

export type Breakdown = { byModel: Spend[]; byAgent: Spend[]; byTask: Spend[]; total: Spend; alerts: RunEvent[] };

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

/** The breakdown of `events`; `agentOf` names the agent of a task. */
export function breakdown(events: RunEvent[], agentOf: (task: string) => string | null): Breakdown {
  const maps = { model: new Map<string, Spend>(), agent: new Map<string, Spend>(), task: new Map<string, Spend>() };
  const total: Spend = { key: "total", calls: 0, tokens: 0, cost: 0 };
  const add = (m: Map<string, Spend>, key: string, tokens: number, cost: number) => {
    let s = m.get(key);
    if (!s) m.set(key, (s = { key, calls: 0, tokens: 0, cost: 0 }));
    s.calls += 1;
    s.tokens += tokens;
    s.cost += cost;
  };
  const alerts: RunEvent[] = [];
  for (const e of events) {
    if (e.type === "cost.alert") alerts.push(e);
    if (e.type !== "model.completed") continue;
    const d = e.data;
    const tokens = num(d.inputTokens ?? d.input_tokens) + num(d.outputTokens ?? d.output_tokens);
    const cost = num(d.cost);
    add(maps.model, String(d.model ?? "?"), tokens, cost);
    add(maps.task, e.taskId ?? "(run)", tokens, cost);
    add(maps.agent, (e.taskId && agentOf(e.taskId)) || "(none)", tokens, cost);
    total.calls += 1;
    total.tokens += tokens;
    total.cost += cost;
  }
  const sorted = (m: Map<string, Spend>) => Array.from(m.values()).sort((a, b) => b.cost - a.cost || a.key.localeCompare(b.key));
  return { byModel: sorted(maps.model), byAgent: sorted(maps.agent), byTask: sorted(maps.task), total, alerts };
}
