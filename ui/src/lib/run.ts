// A run as the run page shows it: the document of GET /runs/{id}, kept current by applying
// the run's events in order. Each event is applied once (by its seq), so a stream that
// resumes with a repeat changes nothing; after the terminal event the state equals what
// GET /runs/{id} answers.

export type RunEvent = {
  seq: number;
  type: string;
  at: string;
  runId: string;
  taskId: string | null;
  data: Record<string, unknown>;
};

export type Task = {
  id: string;
  status: string;
  outputs: unknown;
  error: string | null;
  attempts: number;
  agent: string | null;
  parentTaskId: string | null;
  depth: number;
  /** When its current attempt started (ms), from events seen live. */
  startedAt?: number;
};

export type Run = {
  id: string;
  name: string;
  status: string;
  reason: string | null;
  correlationId: string;
  createdAt: string;
  durationMs: number | null;
  cost: number;
  eventSeq: number;
  parentRunId: string | null;
  checkpointId: string | null;
  forkedAt: string | null;
  tasks: Task[];
  /** Task index by id. */
  index: Map<string, number>;
};

export const TERMINAL_RUN = new Set(["succeeded", "failed", "cancelled"]);

export function fromDocument(doc: Record<string, unknown>): Run {
  const tasks = ((doc.tasks as Task[]) ?? []).map((t) => ({ ...t }));
  return {
    id: doc.id as string,
    name: doc.name as string,
    status: doc.status as string,
    reason: (doc.reason as string | null) ?? null,
    correlationId: doc.correlationId as string,
    createdAt: doc.createdAt as string,
    durationMs: (doc.durationMs as number | null) ?? null,
    cost: (doc.cost as number) ?? 0,
    eventSeq: (doc.eventSeq as number) ?? 0,
    parentRunId: (doc.parentRunId as string | null) ?? null,
    checkpointId: (doc.checkpointId as string | null) ?? null,
    forkedAt: (doc.forkedAt as string | null) ?? null,
    tasks,
    index: new Map(tasks.map((t, i) => [t.id, i])),
  };
}

const TASK_STATUS: Record<string, string> = {
  "task.ready": "ready",
  "task.started": "running",
  "task.succeeded": "succeeded",
  "task.failed": "failed",
  "task.retrying": "ready",
  "task.skipped": "skipped",
  "task.cancelled": "cancelled",
  "approval.requested": "waiting",
  "question.asked": "waiting",
};

/** The status a run-level event leaves its run in. */
export const RUN_STATUS: Record<string, string> = {
  "run.created": "pending",
  "run.started": "running",
  "run.waiting": "waiting",
  "run.succeeded": "succeeded",
  "run.failed": "failed",
  "run.cancelled": "cancelled",
  "run.interrupted": "interrupted",
};

/** `run` with `events` applied (those at or below its seq are skipped); `run` is unchanged. */
export function apply(run: Run, events: RunEvent[]): Run {
  const fresh = events.filter((e) => e.seq > run.eventSeq).sort((a, b) => a.seq - b.seq);
  if (fresh.length === 0) return run;
  const next: Run = { ...run, tasks: run.tasks.slice(), index: run.index };
  let grown = false;
  for (const e of fresh) {
    next.eventSeq = e.seq;
    const rs = RUN_STATUS[e.type];
    if (rs) {
      next.status = rs;
      if (typeof e.data.reason === "string") next.reason = e.data.reason;
    }
    if (e.type === "model.completed" && typeof e.data.cost === "number") next.cost += e.data.cost;
    if (!e.taskId) continue;
    let i = next.index.get(e.taskId);
    if (i === undefined) {
      // A subtask that joined the run.
      if (!grown) {
        next.index = new Map(next.index);
        grown = true;
      }
      const parent = e.taskId.includes(".") ? e.taskId.slice(0, e.taskId.lastIndexOf(".")) : null;
      i = next.tasks.length;
      next.tasks.push({ id: e.taskId, status: "pending", outputs: null, error: null, attempts: 0, agent: null, parentTaskId: parent, depth: parent ? parent.split(".").length : 0 });
      next.index.set(e.taskId, i);
    }
    const t = { ...next.tasks[i] };
    const ts = TASK_STATUS[e.type];
    if (ts) t.status = ts;
    const d = e.data;
    if (typeof d.attempt === "number") t.attempts = Math.max(t.attempts, d.attempt);
    if (typeof d.agent === "string") t.agent = d.agent;
    if (e.type === "task.started") t.startedAt = Date.parse(e.at);
    if (e.type === "task.succeeded") {
      t.error = null;
      if ("outputs" in d) t.outputs = d.outputs;
    }
    if ((e.type === "task.failed" || e.type === "task.skipped" || e.type === "task.cancelled") && typeof d.error === "string") t.error = d.error;
    next.tasks[i] = t;
  }
  return next;
}

/** Tasks by status: how many of each. */
export function counts(tasks: Task[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of tasks) out[t.status] = (out[t.status] ?? 0) + 1;
  return out;
}
