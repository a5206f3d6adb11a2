import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { api, ApiError } from "../lib/api";
import { when } from "../lib/format";
import { href, onLink } from "../lib/router";
import { Alert } from "./Alert";

type Approval = {
  id: string;
  runId: string;
  taskId: string;
  attempt: number;
  approvers: string[];
  deadlineAt: string | null;
  onTimeout: string;
  requestedAt: string;
};

type QuestionSpec = {
  id: string;
  text: string;
  type: "text" | "select" | "multiselect" | "boolean" | "number";
  options?: string[];
  allow_other?: boolean;
  default?: unknown;
  required?: boolean;
};

type Asked = {
  waitId: string;
  runId: string;
  taskId: string;
  status: string;
  question: QuestionSpec;
  askedAt: string;
  deadlineAt: string | null;
};

/** What waits on a person in the project: manual approvals and typed questions. */
export function Waiting() {
  const approvals = useSignal<Approval[]>([]);
  const questions = useSignal<Asked[]>([]);
  const name = useSignal("");
  const error = useSignal<string | null>(null);
  const notice = useSignal<string | null>(null);
  const load = async () => {
    try {
      const [a, q] = await Promise.all([
        api<{ approvals: Approval[] }>("GET", "/approvals"),
        api<{ questions: Asked[] }>("GET", "/questions?status=pending"),
      ]);
      approvals.value = a.approvals;
      questions.value = q.questions;
      error.value = null;
    } catch (e) {
      error.value = (e as Error).message;
    }
  };
  useEffect(() => {
    void load();
  }, []);
  const decide = async (a: Approval, decision: "approve" | "reject", reason: string) => {
    notice.value = null;
    try {
      await api("POST", `/runs/${a.runId}/tasks/${encodeURIComponent(a.taskId)}/approval`, { decision, by: name.value.trim(), reason: reason || null });
      notice.value = `${a.taskId}: ${decision === "approve" ? "approved" : "rejected"}.`;
      await load();
    } catch (e) {
      notice.value = `${a.taskId}: ${e instanceof ApiError && e.status === 403 ? `${name.value || "this name"} may not decide it` : (e as Error).message}`;
    }
  };
  const answer = async (q: Asked, body: unknown) => {
    notice.value = null;
    try {
      await api("POST", `/runs/${q.runId}/questions/${encodeURIComponent(q.question.id)}/answer`, body);
      notice.value = `${q.question.id}: answered.`;
      await load();
    } catch (e) {
      notice.value = `${q.question.id}: ${(e as Error).message}`;
    }
  };
  return (
    <section aria-labelledby="wait-h">
      <h1 id="wait-h">Waiting on a person</h1>
      <label>
        Decide as{" "}
        <input value={name.value} onInput={(e) => (name.value = (e.target as HTMLInputElement).value)} placeholder="your name" autocomplete="name" />
      </label>
      <p role="status" aria-live="polite">
        {notice.value}
      </p>
      <Alert text={error.value} />
      <h2>Approvals ({approvals.value.length})</h2>
      {approvals.value.length === 0 && <p class="dim">No approval waits.</p>}
      <ul class="cards">
        {approvals.value.map((a) => (
          <ApprovalCard key={a.id} a={a} onDecide={decide} canDecide={name.value.trim() !== ""} />
        ))}
      </ul>
      <h2>Questions ({questions.value.length})</h2>
      {questions.value.length === 0 && <p class="dim">No pending questions.</p>}
      <ul class="cards">
        {questions.value.map((q) => (
          <QuestionCard key={q.waitId} q={q} onAnswer={answer} />
        ))}
      </ul>
    </section>
  );
}

function RunLink({ id }: { id: string }) {
  return (
    <a href={href(`/runs/${id}`)} onClick={(e) => onLink(e, `/runs/${id}`)} class="mono">
      {id}
    </a>
  );
}

function ApprovalCard({ a, onDecide, canDecide }: { a: Approval; onDecide: (a: Approval, d: "approve" | "reject", reason: string) => void; canDecide: boolean }) {
  const reason = useSignal("");
  const rid = `reason-${a.id}`;
  return (
    <li class="card" aria-label={`Approval of task ${a.taskId}`}>
      <p>
        Task <strong>{a.taskId}</strong> (attempt {a.attempt}) of run <RunLink id={a.runId} />
      </p>
      <p class="dim">
        Asked {when(a.requestedAt)}
        {a.deadlineAt ? `; ${a.onTimeout}s by itself at ${when(a.deadlineAt)}` : "; no deadline"}. May decide:{" "}
        {a.approvers.length ? a.approvers.join(", ") : "anyone"}.
      </p>
      <label for={rid}>Reason</label> <input id={rid} value={reason.value} onInput={(e) => (reason.value = (e.target as HTMLInputElement).value)} />{" "}
      <button type="button" disabled={!canDecide} onClick={() => onDecide(a, "approve", reason.value)}>
        Approve
      </button>{" "}
      <button type="button" disabled={!canDecide} onClick={() => onDecide(a, "reject", reason.value)}>
        Reject
      </button>
      {!canDecide && <span class="dim"> (give your name above to decide)</span>}
    </li>
  );
}

function QuestionCard({ q, onAnswer }: { q: Asked; onAnswer: (q: Asked, body: unknown) => void }) {
  const spec = q.question;
  const value = useSignal<unknown>(spec.type === "multiselect" ? [] : spec.type === "boolean" ? false : "");
  const fid = `q-${q.waitId}`;
  const submit = (e: Event) => {
    e.preventDefault();
    const v = spec.type === "number" ? Number(value.value) : value.value;
    onAnswer(q, { value: v });
  };
  let field;
  if (spec.type === "boolean") {
    field = <input id={fid} type="checkbox" checked={value.value === true} onChange={(e) => (value.value = (e.target as HTMLInputElement).checked)} />;
  } else if (spec.type === "select") {
    field = (
      <select id={fid} value={String(value.value)} onChange={(e) => (value.value = (e.target as HTMLSelectElement).value)} required>
        <option value="">choose…</option>
        {(spec.options ?? []).map((o) => (
          <option value={o}>{o}</option>
        ))}
      </select>
    );
  } else if (spec.type === "multiselect") {
    field = (
      <select id={fid} multiple onChange={(e) => (value.value = Array.from((e.target as HTMLSelectElement).selectedOptions).map((o) => o.value))}>
        {(spec.options ?? []).map((o) => (
          <option value={o}>{o}</option>
        ))}
      </select>
    );
  } else {
    const onInput = (e: Event) => {
      value.value = (e.target as HTMLInputElement).value;
    };
    field =
      spec.type === "number" ? (
        <input id={fid} type="number" value={String(value.value)} onInput={onInput} />
      ) : (
        <input id={fid} type="text" value={String(value.value)} onInput={onInput} />
      );
  }
  return (
    <li class="card" aria-label={`Question ${spec.id}`}>
      <form onSubmit={submit}>
        <p>
          <label for={fid}>{spec.text}</label> <span class="dim">({spec.type}{spec.required === false ? ", optional" : ""})</span>
        </p>
        <p class="dim">
          Task {q.taskId} of run <RunLink id={q.runId} />, asked {when(q.askedAt)}
          {spec.default !== undefined && spec.default !== null ? `; default ${JSON.stringify(spec.default)}` : ""}
        </p>
        {field} <button type="submit">Answer</button>{" "}
        <button type="button" onClick={() => onAnswer(q, { idk: true })}>
          I don't know
        </button>
      </form>
    </li>
  );
}
