//! What a group commit writes, once for both backends: each table's insert (its columns and
//! what a conflict does) with how a row becomes the values bound to it, and the single-row
//! statements (run updates, commands, template uses, noted questions) as text with `$n`
//! placeholders, which SQLite and Postgres both read. [`steps`] lists a batch's statements
//! in the order rows must be written (runs before the rows that point at them).

use super::Batch;
use std::borrow::Cow;

/// A value bound to a statement, typed even when null (Postgres needs the type).
#[derive(Debug, Clone)]
pub(crate) enum Cell<'a> {
    Text(Option<Cow<'a, str>>),
    Int(Option<i64>),
    Bool(Option<bool>),
}

fn text<'a>(s: impl Into<Cow<'a, str>>) -> Cell<'a> {
    Cell::Text(Some(s.into()))
}

fn opt_text<'a>(s: Option<impl Into<Cow<'a, str>>>) -> Cell<'a> {
    Cell::Text(s.map(Into::into))
}

fn int(v: i64) -> Cell<'static> {
    Cell::Int(Some(v))
}

fn opt_int(v: Option<i64>) -> Cell<'static> {
    Cell::Int(v)
}

/// JSON text, written straight into a buffer (`Display` goes through the formatter, a call
/// per piece).
fn json(v: &serde_json::Value) -> Cell<'static> {
    text(json_text(v))
}

fn json_text(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// One statement of a commit.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// Rows for one table: `head` and `tail` around the values, `width` values a row,
    /// `cells` the rows' values one after another.
    Insert {
        head: &'static str,
        tail: &'static str,
        width: usize,
        cells: Vec<Cell<'a>>,
    },
    /// One statement with `$1…$n` placeholders.
    Single {
        sql: &'static str,
        cells: Vec<Cell<'a>>,
    },
}

/// Adds an insert of `rows` into the table `head` names (a no-op without rows).
fn insert<'a, R>(
    steps: &mut Vec<Step<'a>>,
    head: &'static str,
    tail: &'static str,
    rows: &'a [R],
    row: impl Fn(&'a R, &mut Vec<Cell<'a>>),
) {
    if rows.is_empty() {
        return;
    }
    let width = head.matches(',').count() + 1;
    let mut cells = Vec::with_capacity(rows.len() * width);
    for r in rows {
        row(r, &mut cells);
    }
    debug_assert_eq!(cells.len(), rows.len() * width, "{head}");
    steps.push(Step::Insert {
        head,
        tail,
        width,
        cells,
    });
}

const RUNS: &str = "INSERT INTO runs (id, name, status, reason, correlation_id, inputs, \
    workspace, created_at, started_at, finished_at, deadline_at, project, parent_run_id, \
    checkpoint_id, forked_at) ";

const RUN_PLANS: &str = "INSERT INTO run_plans (run_id, plan) ";

const LEASES: &str = "INSERT INTO leases (run_id, holder, host, pid, expires_at, token) ";
const LEASES_TAIL: &str = " ON CONFLICT (run_id) DO NOTHING";

const RUN_UPDATE: &str = "UPDATE runs SET status = $1, reason = COALESCE($2, reason), \
    started_at = COALESCE(started_at, $3), finished_at = COALESCE($4, finished_at), \
    deadline_at = COALESCE(deadline_at, $5) WHERE id = $6";

/// A run that ended needs no lease: it expires in the transaction that ends the run, so a
/// process stopped right after leaves no lease behind. Holder and token stay (the fence of a
/// late write of this process still matches) until the process releases it.
const LEASE_DONE: &str = "UPDATE leases SET expires_at = 0 WHERE run_id = $1";

const DECOMPOSITIONS: &str = "INSERT INTO decompositions (run_id, task_id, round, first_idx, \
    source, subtasks, replaced, reason, created_at) ";

const TASKS: &str = "INSERT INTO tasks (run_id, task_id, idx, tool, status, attempt, agent, \
    outputs, error, started_at, finished_at, restored_from) ";
const TASKS_TAIL: &str = " ON CONFLICT (run_id, task_id) DO UPDATE SET status = excluded.status, \
    attempt = excluded.attempt, agent = excluded.agent, outputs = excluded.outputs, \
    error = excluded.error, started_at = excluded.started_at, \
    finished_at = excluded.finished_at";

const EVENTS: &str = "INSERT INTO events (run_id, seq, type, at, task_id, correlation_id, data) ";

const METRICS: &str = "INSERT INTO metrics (run_id, task_id, tool, agent, attempt, duration_ms, \
    success, error_type, at) ";

const ARTIFACTS: &str = "INSERT INTO artifacts (run_id, task_id, name, hash, size, created_at) ";
const ARTIFACTS_TAIL: &str = " ON CONFLICT (run_id, task_id, name) DO UPDATE SET \
    hash = excluded.hash, size = excluded.size, created_at = excluded.created_at";

const MODEL_CALLS: &str = "INSERT INTO model_calls (run_id, task_id, tool, agent, model, \
    provider, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
    estimated_cost_micro_usd, cost_micro_usd, duration_ms, success, error_type, \
    correlation_id, at, project) ";

const COMMAND: &str =
    "INSERT INTO run_commands (run_id, kind, reason, created_at) VALUES ($1, $2, $3, $4)";
const HANDLED: &str = "UPDATE run_commands SET handled_at = $1 WHERE id = $2";
const TEMPLATE_USE: &str =
    "UPDATE templates SET usage_count = usage_count + 1 WHERE project = $1 AND id = $2";

const CHECKPOINTS: &str = "INSERT INTO checkpoints (id, run_id, description, step, tasks, \
    artifacts, manifest, decompositions, created_at) ";

const WAITS: &str = "INSERT INTO waits (id, run_id, task_id, attempt, kind, approvers, \
    deadline_at, on_timeout, requested_at, decided_by, reason, decided_at, question_id, scope, \
    spec, question_status, answer, source, timed_out, noted_at) ";
/// A wait asked for again (an attempt repeated after a crash) keeps its first row.
const WAITS_TAIL: &str = " ON CONFLICT (id) DO NOTHING";
const NOTED: &str = "UPDATE waits SET noted_at = $1 WHERE id = $2";

const LOOPS: &str = "INSERT INTO agent_loops (id, run_id, task_id, attempt, parent_loop, \
    parent_call, depth, agent, system, prompt, tools, output_schema, max_turns, status, \
    stop_reason, answer, error, created_at, finished_at) ";
const LOOPS_TAIL: &str = " ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
    stop_reason = excluded.stop_reason, answer = excluded.answer, error = excluded.error, \
    finished_at = excluded.finished_at";

const TURNS: &str = "INSERT INTO agent_turns (loop_id, turn, run_id, model, text, tool_calls, \
    feedback, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
    cost_micro_usd, at) ";

const CALLS: &str = "INSERT INTO tool_calls (loop_id, turn, seq, run_id, call_id, name, tool, \
    input, status, result, is_error, idempotency_key, wait_id, started_at, finished_at, \
    duration_ms) ";
const CALLS_TAIL: &str = " ON CONFLICT (loop_id, turn, seq) DO UPDATE SET \
    status = excluded.status, result = excluded.result, is_error = excluded.is_error, \
    wait_id = excluded.wait_id, started_at = excluded.started_at, \
    finished_at = excluded.finished_at, duration_ms = excluded.duration_ms";

const SNAPSHOTS: &str = "INSERT INTO workspace_snapshots (run_id, task_id, taken_at, manifest, \
    rolled_back_at, rollback) ";
/// The manifest of the first snapshot stands; a rollback is recorded once.
const SNAPSHOTS_TAIL: &str = " ON CONFLICT (run_id, task_id) DO UPDATE SET \
    rolled_back_at = COALESCE(workspace_snapshots.rolled_back_at, excluded.rolled_back_at), \
    rollback = COALESCE(workspace_snapshots.rollback, excluded.rollback)";

/// The statements that write `batch`, in order; `now` stamps commands.
pub(crate) fn steps(batch: &Batch, now: i64) -> Vec<Step<'_>> {
    let mut s = Vec::new();
    insert(&mut s, RUNS, "", &batch.new_runs, |r, c| {
        c.extend([
            text(r.id.to_string()),
            text(r.name.as_str()),
            text(r.status.as_str()),
            opt_text(r.reason.as_deref()),
            text(r.correlation_id.as_str()),
            text(json_text(&serde_json::Value::Object(r.inputs.clone()))),
            text(r.workspace.as_str()),
            int(r.created_at),
            opt_int(r.started_at),
            opt_int(r.finished_at),
            opt_int(r.deadline_at),
            text(r.project.as_str()),
            opt_text(r.lineage.as_ref().map(|l| l.parent_run_id.to_string())),
            opt_text(r.lineage.as_ref().and_then(|l| l.checkpoint_id.as_deref())),
            opt_text(r.lineage.as_ref().and_then(|l| l.forked_at.as_deref())),
        ]);
    });
    insert(&mut s, RUN_PLANS, "", &batch.new_runs, |r, c| {
        c.extend([
            text(r.id.to_string()),
            text(serde_json::to_string(&*r.plan).unwrap_or_default()),
        ]);
    });
    insert(
        &mut s,
        LEASES,
        LEASES_TAIL,
        &batch.new_leases,
        |(run, h, expires), c| {
            c.extend([
                text(run.to_string()),
                text(h.id.as_str()),
                text(h.host.as_str()),
                int(h.pid),
                int(*expires),
                int(1),
            ]);
        },
    );
    for u in &batch.run_updates {
        s.push(Step::Single {
            sql: RUN_UPDATE,
            cells: vec![
                text(u.status.as_str()),
                opt_text(u.reason.as_deref()),
                opt_int(u.started_at),
                opt_int(u.finished_at),
                opt_int(u.deadline_at),
                text(u.id.to_string()),
            ],
        });
        if u.status.is_terminal() {
            s.push(Step::Single {
                sql: LEASE_DONE,
                cells: vec![text(u.id.to_string())],
            });
        }
    }
    insert(&mut s, DECOMPOSITIONS, "", &batch.decompositions, |d, c| {
        c.extend([
            text(d.run_id.to_string()),
            text(d.task_id.as_str()),
            int(i64::from(d.round)),
            int(d.first_idx),
            text(d.source.as_str()),
            text(serde_json::to_string(&d.subtasks).unwrap_or_default()),
            text(serde_json::to_string(&d.replaced).unwrap_or_default()),
            opt_text(d.reason.as_deref()),
            int(d.created_at),
        ]);
    });
    insert(&mut s, TASKS, TASKS_TAIL, &batch.tasks, |t, c| {
        c.extend([
            text(t.run_id.to_string()),
            text(t.task_id.as_str()),
            int(t.idx),
            text(t.tool.as_str()),
            text(t.status.as_str()),
            int(t.attempt),
            opt_text(t.agent.as_deref()),
            opt_text(t.outputs.as_ref().map(json_text)),
            opt_text(t.error.as_deref()),
            opt_int(t.started_at),
            opt_int(t.finished_at),
            opt_text(t.restored_from.as_deref()),
        ]);
    });
    insert(&mut s, EVENTS, "", &batch.events, |e, c| {
        c.extend([
            text(e.run_id.to_string()),
            int(e.seq),
            text(e.kind().as_str()),
            int(e.at_ms),
            opt_text(e.task_id.as_ref().map(|t| t.as_str())),
            text(e.correlation_id.as_str()),
            text(e.text.as_str()),
        ]);
    });
    insert(&mut s, METRICS, "", &batch.metrics, |m, c| {
        c.extend([
            text(m.run_id.to_string()),
            text(m.task_id.as_str()),
            text(m.tool.as_str()),
            opt_text(m.agent.as_deref()),
            int(m.attempt),
            int(m.duration_ms),
            Cell::Bool(Some(m.success)),
            opt_text(m.error_type.as_deref()),
            int(m.at),
        ]);
    });
    insert(
        &mut s,
        ARTIFACTS,
        ARTIFACTS_TAIL,
        &batch.artifacts,
        |a, c| {
            c.extend([
                text(a.run_id.to_string()),
                text(a.task_id.as_str()),
                text(a.name.as_str()),
                text(a.hash.as_str()),
                int(a.size),
                int(a.created_at),
            ]);
        },
    );
    insert(&mut s, MODEL_CALLS, "", &batch.model_calls, |m, c| {
        c.extend([
            opt_text(m.run_id.as_deref()),
            opt_text(m.task_id.as_deref()),
            opt_text(m.tool.as_deref()),
            opt_text(m.agent.as_deref()),
            text(m.model.as_str()),
            text(m.provider.as_str()),
            int(m.input_tokens),
            int(m.output_tokens),
            int(m.cache_read_tokens),
            int(m.cache_write_tokens),
            int(m.estimated_cost_micro_usd),
            int(m.cost_micro_usd),
            int(m.duration_ms),
            Cell::Bool(Some(m.success)),
            opt_text(m.error_type.as_deref()),
            text(m.correlation_id.as_str()),
            int(m.at),
            opt_text(m.project.as_deref()),
        ]);
    });
    for (run, kind, reason) in &batch.new_commands {
        s.push(Step::Single {
            sql: COMMAND,
            cells: vec![
                text(run.to_string()),
                text(kind.as_str()),
                opt_text(reason.as_deref()),
                int(now),
            ],
        });
    }
    for id in &batch.handled_commands {
        s.push(Step::Single {
            sql: HANDLED,
            cells: vec![int(now), int(*id)],
        });
    }
    for (project, id) in &batch.template_uses {
        s.push(Step::Single {
            sql: TEMPLATE_USE,
            cells: vec![text(project.as_str()), text(id.as_str())],
        });
    }
    insert(&mut s, CHECKPOINTS, "", &batch.checkpoints, |cp, c| {
        c.extend([
            text(cp.id.as_str()),
            text(cp.run_id.to_string()),
            opt_text(cp.description.as_deref()),
            int(cp.step),
            json(&cp.tasks),
            json(&cp.artifacts),
            json(&cp.manifest),
            json(&cp.decompositions),
            int(cp.created_at),
        ]);
    });
    insert(&mut s, WAITS, WAITS_TAIL, &batch.waits, |w, c| {
        let qw = w.question.as_deref();
        c.extend([
            text(w.id.to_string()),
            text(w.run_id.to_string()),
            text(w.task_id.as_str()),
            int(w.attempt),
            text(w.kind.as_str()),
            text(serde_json::json!(w.approvers).to_string()),
            opt_int(w.deadline_at),
            text(w.on_timeout.as_str()),
            int(w.requested_at),
            opt_text(w.decided_by.as_deref()),
            opt_text(w.reason.as_deref()),
            opt_int(w.decided_at),
            opt_text(qw.map(|q| q.spec.id.as_str())),
            opt_text(qw.map(|q| q.scope.as_str())),
            opt_text(qw.map(|q| serde_json::to_string(&q.spec).unwrap_or_default())),
            opt_text(qw.map(|q| q.status.as_str())),
            opt_text(qw.and_then(|q| q.value.as_ref().map(|v| v.to_string()))),
            opt_text(qw.and_then(|q| q.source.map(|s| s.as_str()))),
            Cell::Bool(qw.map(|q| q.timed_out)),
            opt_int(qw.filter(|q| q.noted).map(|_| w.requested_at)),
        ]);
    });
    for (_, id) in &batch.noted_waits {
        s.push(Step::Single {
            sql: NOTED,
            cells: vec![int(now), text(id.to_string())],
        });
    }
    insert(&mut s, LOOPS, LOOPS_TAIL, &batch.agent_loops, |l, c| {
        c.extend([
            text(l.id.as_str()),
            text(l.run_id.to_string()),
            text(l.task_id.as_str()),
            int(l.attempt),
            opt_text(l.parent_loop.as_deref()),
            opt_text(l.parent_call.as_deref()),
            int(i64::from(l.depth)),
            text(l.agent.as_str()),
            opt_text(l.system.as_deref()),
            text(l.prompt.as_str()),
            json(&l.tools),
            opt_text(l.output_schema.as_ref().map(|v| v.to_string())),
            int(i64::from(l.max_turns)),
            text(l.status.as_str()),
            opt_text(l.stop_reason.as_deref()),
            opt_text(l.answer.as_ref().map(|v| v.to_string())),
            opt_text(l.error.as_deref()),
            int(l.created_at),
            opt_int(l.finished_at),
        ]);
    });
    insert(&mut s, TURNS, "", &batch.agent_turns, |t, c| {
        c.extend([
            text(t.loop_id.as_str()),
            int(i64::from(t.turn)),
            text(t.run_id.to_string()),
            text(t.model.as_str()),
            text(t.text.as_str()),
            text(serde_json::to_string(&t.tool_calls).unwrap_or_else(|_| "[]".into())),
            opt_text(t.feedback.as_deref()),
            int(t.input_tokens as i64),
            int(t.output_tokens as i64),
            int(t.cache_read_tokens as i64),
            int(t.cache_write_tokens as i64),
            int(t.cost_micro_usd),
            int(t.at),
        ]);
    });
    insert(&mut s, CALLS, CALLS_TAIL, &batch.tool_calls, |k, c| {
        c.extend([
            text(k.loop_id.as_str()),
            int(i64::from(k.turn)),
            int(i64::from(k.seq)),
            text(k.run_id.to_string()),
            text(k.call_id.as_str()),
            text(k.name.as_str()),
            opt_text(k.tool.as_deref()),
            json(&k.input),
            text(k.status.as_str()),
            opt_text(k.result.as_deref()),
            Cell::Bool(Some(k.is_error)),
            text(k.idempotency_key.as_str()),
            opt_text(k.wait_id.as_ref().map(|w| w.to_string())),
            opt_int(k.started_at),
            opt_int(k.finished_at),
            opt_int(k.duration_ms),
        ]);
    });
    insert(
        &mut s,
        SNAPSHOTS,
        SNAPSHOTS_TAIL,
        &batch.snapshots,
        |sn, c| {
            c.extend([
                text(sn.run_id.to_string()),
                text(sn.task_id.as_str()),
                int(sn.taken_at),
                text(serde_json::to_string(&sn.manifest).unwrap_or_default()),
                opt_int(sn.rolled_back_at),
                opt_text(sn.rollback.as_ref().map(|v| v.to_string())),
            ]);
        },
    );
    s
}

/// Whether rows inserted by `head` point at nothing another insert of the same batch writes
/// (only at runs, which go first), so they may be written in one statement with others such.
pub(crate) fn independent(head: &str) -> bool {
    [TASKS, EVENTS, METRICS, ARTIFACTS, MODEL_CALLS].contains(&head)
}

/// The text of a one-row insert: `head`, `$1…$width`, `tail`.
pub(crate) fn one_row(head: &str, tail: &str, width: usize) -> String {
    let marks: Vec<String> = (1..=width).map(|i| format!("${i}")).collect();
    format!("{head}VALUES ({}){tail}", marks.join(", "))
}
