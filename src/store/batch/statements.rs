//! The statements of a group commit: one macro a table appends that table's multi-row
//! statement for a chunk of rows to a query builder, and `for_each_statement!` calls them
//! in the order rows must be written. They are macros because the builder's type differs by
//! backend while the text is the same.

/// Text of a JSON value, as stored.
pub(super) fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

// One macro a table: appends that table's statement for `chunk` to the builder `qb`. The
// same text serves both backends (each builder writes its own placeholders).
macro_rules! push_runs {
    ($qb:ident, $chunk:expr) => {
        $qb.push(
            "INSERT INTO runs (id, name, status, reason, correlation_id, plan, inputs, workspace, \
             created_at, started_at, finished_at, deadline_at, project, parent_run_id, \
             checkpoint_id, forked_at) ",
        );
        $qb.push_values($chunk, |mut b, r| {
            b.push_bind(r.id.to_string())
                .push_bind(r.name.clone())
                .push_bind(r.status.as_str())
                .push_bind(r.reason.clone())
                .push_bind(r.correlation_id.to_string())
                .push_bind(serde_json::to_string(&*r.plan).unwrap_or_default())
                .push_bind(serde_json::Value::Object(r.inputs.clone()).to_string())
                .push_bind(r.workspace.clone())
                .push_bind(r.created_at)
                .push_bind(r.started_at)
                .push_bind(r.finished_at)
                .push_bind(r.deadline_at)
                .push_bind(r.project.clone())
                .push_bind(r.lineage.as_ref().map(|l| l.parent_run_id.to_string()))
                .push_bind(r.lineage.as_ref().and_then(|l| l.checkpoint_id.clone()))
                .push_bind(r.lineage.as_ref().and_then(|l| l.forked_at.clone()));
        });
    };
}

macro_rules! push_run_update {
    ($qb:ident, $u:expr) => {
        let u = $u;
        $qb.push("UPDATE runs SET status = ")
            .push_bind(u.status.as_str());
        $qb.push(", reason = COALESCE(")
            .push_bind(u.reason.clone())
            .push(", reason)");
        $qb.push(", started_at = COALESCE(started_at, ")
            .push_bind(u.started_at)
            .push(")");
        $qb.push(", finished_at = COALESCE(")
            .push_bind(u.finished_at)
            .push(", finished_at)");
        $qb.push(", deadline_at = COALESCE(deadline_at, ")
            .push_bind(u.deadline_at)
            .push(")");
        $qb.push(" WHERE id = ").push_bind(u.id.to_string());
    };
}

macro_rules! push_tasks {
    ($qb:ident, $chunk:expr) => {
        $qb.push(
            "INSERT INTO tasks (run_id, task_id, idx, tool, status, attempt, agent, outputs, \
             error, started_at, finished_at, restored_from) ",
        );
        $qb.push_values($chunk, |mut b, t| {
            b.push_bind(t.run_id.to_string())
                .push_bind(t.task_id.to_string())
                .push_bind(t.idx)
                .push_bind(t.tool.clone())
                .push_bind(t.status.as_str())
                .push_bind(t.attempt)
                .push_bind(t.agent.clone())
                .push_bind(t.outputs.as_ref().map(json_text))
                .push_bind(t.error.clone())
                .push_bind(t.started_at)
                .push_bind(t.finished_at)
                .push_bind(t.restored_from.clone());
        });
        $qb.push(
            " ON CONFLICT (run_id, task_id) DO UPDATE SET status = excluded.status, \
             attempt = excluded.attempt, agent = excluded.agent, outputs = excluded.outputs, \
             error = excluded.error, started_at = excluded.started_at, \
             finished_at = excluded.finished_at",
        );
    };
}

macro_rules! push_events {
    ($qb:ident, $chunk:expr) => {
        $qb.push("INSERT INTO events (run_id, seq, type, at, task_id, correlation_id, data) ");
        $qb.push_values($chunk, |mut b, e| {
            b.push_bind(e.run_id.to_string())
                .push_bind(e.seq)
                .push_bind(e.kind.as_str())
                .push_bind(e.at.timestamp_millis())
                .push_bind(e.task_id.as_ref().map(|t| t.to_string()))
                .push_bind(e.correlation_id.to_string())
                .push_bind(json_text(&e.data));
        });
    };
}

macro_rules! push_metrics {
    ($qb:ident, $chunk:expr) => {
        $qb.push(
            "INSERT INTO metrics (run_id, task_id, tool, agent, attempt, duration_ms, success, \
             error_type, at) ",
        );
        $qb.push_values($chunk, |mut b, m| {
            b.push_bind(m.run_id.to_string())
                .push_bind(m.task_id.to_string())
                .push_bind(m.tool.clone())
                .push_bind(m.agent.clone())
                .push_bind(m.attempt)
                .push_bind(m.duration_ms)
                .push_bind(m.success)
                .push_bind(m.error_type.clone())
                .push_bind(m.at);
        });
    };
}

macro_rules! push_artifacts {
    ($qb:ident, $chunk:expr) => {
        $qb.push("INSERT INTO artifacts (run_id, task_id, name, hash, size, created_at) ");
        $qb.push_values($chunk, |mut b, a| {
            b.push_bind(a.run_id.to_string())
                .push_bind(a.task_id.to_string())
                .push_bind(a.name.clone())
                .push_bind(a.hash.clone())
                .push_bind(a.size)
                .push_bind(a.created_at);
        });
        $qb.push(
            " ON CONFLICT (run_id, task_id, name) DO UPDATE SET hash = excluded.hash, \
             size = excluded.size, created_at = excluded.created_at",
        );
    };
}

macro_rules! push_model_calls {
    ($qb:ident, $chunk:expr) => {
        $qb.push(
            "INSERT INTO model_calls (run_id, task_id, tool, agent, model, provider, input_tokens, \
             output_tokens, cache_read_tokens, cache_write_tokens, estimated_cost_micro_usd, \
             cost_micro_usd, duration_ms, success, error_type, correlation_id, at, project) ",
        );
        $qb.push_values($chunk, |mut b, m| {
            b.push_bind(m.run_id.clone())
                .push_bind(m.task_id.clone())
                .push_bind(m.tool.clone())
                .push_bind(m.agent.clone())
                .push_bind(m.model.clone())
                .push_bind(m.provider.clone())
                .push_bind(m.input_tokens)
                .push_bind(m.output_tokens)
                .push_bind(m.cache_read_tokens)
                .push_bind(m.cache_write_tokens)
                .push_bind(m.estimated_cost_micro_usd)
                .push_bind(m.cost_micro_usd)
                .push_bind(m.duration_ms)
                .push_bind(m.success)
                .push_bind(m.error_type.clone())
                .push_bind(m.correlation_id.clone())
                .push_bind(m.at)
                .push_bind(m.project.clone());
        });
    };
}

macro_rules! push_command {
    ($qb:ident, $c:expr, $now:expr) => {
        let (run, kind, reason) = $c;
        $qb.push("INSERT INTO run_commands (run_id, kind, reason, created_at) VALUES (")
            .push_bind(run.to_string())
            .push(", ")
            .push_bind(kind.as_str())
            .push(", ")
            .push_bind(reason.clone())
            .push(", ")
            .push_bind($now)
            .push(")");
    };
}

macro_rules! push_handled {
    ($qb:ident, $id:expr, $now:expr) => {
        $qb.push("UPDATE run_commands SET handled_at = ")
            .push_bind($now)
            .push(" WHERE id = ")
            .push_bind($id);
    };
}

macro_rules! push_template_use {
    ($qb:ident, $t:expr) => {
        let (project, id) = $t;
        $qb.push("UPDATE templates SET usage_count = usage_count + 1 WHERE project = ")
            .push_bind(project.clone())
            .push(" AND id = ")
            .push_bind(id.clone());
    };
}

macro_rules! push_checkpoints {
    ($qb:ident, $chunk:expr) => {
        $qb.push(
            "INSERT INTO checkpoints (id, run_id, description, step, tasks, artifacts, manifest, \
             decompositions, created_at) ",
        );
        $qb.push_values($chunk, |mut b, c| {
            b.push_bind(c.id.clone())
                .push_bind(c.run_id.to_string())
                .push_bind(c.description.clone())
                .push_bind(c.step)
                .push_bind(c.tasks.to_string())
                .push_bind(c.artifacts.to_string())
                .push_bind(c.manifest.to_string())
                .push_bind(c.decompositions.to_string())
                .push_bind(c.created_at);
        });
    };
}

macro_rules! push_new_leases {
    ($qb:ident, $chunk:expr) => {
        $qb.push("INSERT INTO leases (run_id, holder, host, pid, expires_at, token) ");
        $qb.push_values($chunk, |mut b, (run, h, expires)| {
            b.push_bind(run.to_string())
                .push_bind(h.id.clone())
                .push_bind(h.host.clone())
                .push_bind(h.pid)
                .push_bind(*expires)
                .push_bind(1_i64);
        });
        $qb.push(" ON CONFLICT (run_id) DO NOTHING");
    };
}

macro_rules! push_waits {
    ($qb:ident, $chunk:expr) => {
        $qb.push(
            "INSERT INTO waits (id, run_id, task_id, attempt, kind, approvers, deadline_at, \
             on_timeout, requested_at, decided_by, reason, decided_at, question_id, scope, \
             spec, question_status, answer, source, timed_out, noted_at) ",
        );
        $qb.push_values($chunk, |mut b, w| {
            let qw = w.question.as_deref();
            b.push_bind(w.id.to_string())
                .push_bind(w.run_id.to_string())
                .push_bind(w.task_id.clone())
                .push_bind(w.attempt)
                .push_bind(w.kind.as_str())
                .push_bind(serde_json::json!(w.approvers).to_string())
                .push_bind(w.deadline_at)
                .push_bind(w.on_timeout.as_str())
                .push_bind(w.requested_at)
                .push_bind(w.decided_by.clone())
                .push_bind(w.reason.clone())
                .push_bind(w.decided_at)
                .push_bind(qw.map(|q| q.spec.id.clone()))
                .push_bind(qw.map(|q| q.scope.clone()))
                .push_bind(qw.map(|q| serde_json::to_string(&q.spec).unwrap_or_default()))
                .push_bind(qw.map(|q| q.status.as_str()))
                .push_bind(qw.and_then(|q| q.value.as_ref().map(json_text)))
                .push_bind(qw.and_then(|q| q.source.map(|s| s.as_str())))
                .push_bind(qw.map(|q| q.timed_out))
                .push_bind(qw.filter(|q| q.noted).map(|_| w.requested_at));
        });
        // A wait asked for again (an attempt repeated after a crash) keeps its first row.
        $qb.push(" ON CONFLICT (id) DO NOTHING");
    };
}

macro_rules! push_noted {
    ($qb:ident, $id:expr, $now:expr) => {
        $qb.push("UPDATE waits SET noted_at = ")
            .push_bind($now)
            .push(" WHERE id = ")
            .push_bind($id.to_string());
    };
}

macro_rules! push_agent_loops {
    ($qb:ident, $chunk:expr) => {
        $qb.push(
            "INSERT INTO agent_loops (id, run_id, task_id, attempt, parent_loop, parent_call, \
             depth, agent, system, prompt, tools, output_schema, max_turns, status, stop_reason, \
             answer, error, created_at, finished_at) ",
        );
        $qb.push_values($chunk, |mut b, l| {
            b.push_bind(l.id.clone())
                .push_bind(l.run_id.to_string())
                .push_bind(l.task_id.clone())
                .push_bind(l.attempt)
                .push_bind(l.parent_loop.clone())
                .push_bind(l.parent_call.clone())
                .push_bind(i64::from(l.depth))
                .push_bind(l.agent.clone())
                .push_bind(l.system.clone())
                .push_bind(l.prompt.clone())
                .push_bind(json_text(&l.tools))
                .push_bind(l.output_schema.as_ref().map(json_text))
                .push_bind(i64::from(l.max_turns))
                .push_bind(l.status.as_str())
                .push_bind(l.stop_reason.clone())
                .push_bind(l.answer.as_ref().map(json_text))
                .push_bind(l.error.clone())
                .push_bind(l.created_at)
                .push_bind(l.finished_at);
        });
        $qb.push(
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
             stop_reason = excluded.stop_reason, answer = excluded.answer, \
             error = excluded.error, finished_at = excluded.finished_at",
        );
    };
}

macro_rules! push_agent_turns {
    ($qb:ident, $chunk:expr) => {
        $qb.push(
            "INSERT INTO agent_turns (loop_id, turn, run_id, model, text, tool_calls, feedback, \
             input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_micro_usd, \
             at) ",
        );
        $qb.push_values($chunk, |mut b, t| {
            b.push_bind(t.loop_id.clone())
                .push_bind(i64::from(t.turn))
                .push_bind(t.run_id.to_string())
                .push_bind(t.model.clone())
                .push_bind(t.text.clone())
                .push_bind(serde_json::to_string(&t.tool_calls).unwrap_or_else(|_| "[]".into()))
                .push_bind(t.feedback.clone())
                .push_bind(t.input_tokens as i64)
                .push_bind(t.output_tokens as i64)
                .push_bind(t.cache_read_tokens as i64)
                .push_bind(t.cache_write_tokens as i64)
                .push_bind(t.cost_micro_usd)
                .push_bind(t.at);
        });
    };
}

macro_rules! push_tool_calls {
    ($qb:ident, $chunk:expr) => {
        $qb.push(
            "INSERT INTO tool_calls (loop_id, turn, seq, run_id, call_id, name, tool, input, \
             status, result, is_error, idempotency_key, wait_id, started_at, finished_at, \
             duration_ms) ",
        );
        $qb.push_values($chunk, |mut b, c| {
            b.push_bind(c.loop_id.clone())
                .push_bind(i64::from(c.turn))
                .push_bind(i64::from(c.seq))
                .push_bind(c.run_id.to_string())
                .push_bind(c.call_id.clone())
                .push_bind(c.name.clone())
                .push_bind(c.tool.clone())
                .push_bind(json_text(&c.input))
                .push_bind(c.status.as_str())
                .push_bind(c.result.clone())
                .push_bind(c.is_error)
                .push_bind(c.idempotency_key.clone())
                .push_bind(c.wait_id.as_ref().map(|w| w.to_string()))
                .push_bind(c.started_at)
                .push_bind(c.finished_at)
                .push_bind(c.duration_ms);
        });
        $qb.push(
            " ON CONFLICT (loop_id, turn, seq) DO UPDATE SET status = excluded.status, \
             result = excluded.result, is_error = excluded.is_error, wait_id = excluded.wait_id, \
             started_at = excluded.started_at, finished_at = excluded.finished_at, \
             duration_ms = excluded.duration_ms",
        );
    };
}

macro_rules! push_decompositions {
    ($qb:ident, $chunk:expr) => {
        $qb.push(
            "INSERT INTO decompositions (run_id, task_id, round, first_idx, source, subtasks, \
             replaced, reason, created_at) ",
        );
        $qb.push_values($chunk, |mut b, d| {
            b.push_bind(d.run_id.to_string())
                .push_bind(d.task_id.to_string())
                .push_bind(i64::from(d.round))
                .push_bind(d.first_idx)
                .push_bind(d.source.as_str())
                .push_bind(serde_json::to_string(&d.subtasks).unwrap_or_default())
                .push_bind(serde_json::to_string(&d.replaced).unwrap_or_default())
                .push_bind(d.reason.clone())
                .push_bind(d.created_at);
        });
    };
}

macro_rules! push_snapshots {
    ($qb:ident, $chunk:expr) => {
        $qb.push(
            "INSERT INTO workspace_snapshots (run_id, task_id, taken_at, manifest, rolled_back_at, \
             rollback) ",
        );
        $qb.push_values($chunk, |mut b, s| {
            b.push_bind(s.run_id.to_string())
                .push_bind(s.task_id.clone())
                .push_bind(s.taken_at)
                .push_bind(serde_json::to_string(&s.manifest).unwrap_or_default())
                .push_bind(s.rolled_back_at)
                .push_bind(s.rollback.as_ref().map(|v| v.to_string()));
        });
        // The manifest of the first snapshot stands; a rollback is recorded once.
        $qb.push(
            " ON CONFLICT (run_id, task_id) DO UPDATE SET \
             rolled_back_at = COALESCE(workspace_snapshots.rolled_back_at, excluded.rolled_back_at), \
             rollback = COALESCE(workspace_snapshots.rollback, excluded.rollback)",
        );
    };
}

/// Calls `$each!(qb, …)` for every statement of a batch, in the order rows must be written
/// (runs before the rows that point at them). `$next` starts each statement.
macro_rules! for_each_statement {
    ($batch:expr, $now:expr, $qb:ident, $next:block, $done:block) => {
        for chunk in $batch.new_runs.chunks(CHUNK) {
            $next
            push_runs!($qb, chunk);
            $done
        }
        for chunk in $batch.new_leases.chunks(CHUNK) {
            $next
            push_new_leases!($qb, chunk);
            $done
        }
        for u in &$batch.run_updates {
            $next
            push_run_update!($qb, u);
            $done
        }
        for chunk in $batch.decompositions.chunks(CHUNK) {
            $next
            push_decompositions!($qb, chunk);
            $done
        }
        for chunk in $batch.tasks.chunks(CHUNK) {
            $next
            push_tasks!($qb, chunk);
            $done
        }
        for chunk in $batch.events.chunks(CHUNK) {
            $next
            push_events!($qb, chunk);
            $done
        }
        for chunk in $batch.metrics.chunks(CHUNK) {
            $next
            push_metrics!($qb, chunk);
            $done
        }
        for chunk in $batch.artifacts.chunks(CHUNK) {
            $next
            push_artifacts!($qb, chunk);
            $done
        }
        for chunk in $batch.model_calls.chunks(CHUNK) {
            $next
            push_model_calls!($qb, chunk);
            $done
        }
        for c in &$batch.new_commands {
            $next
            push_command!($qb, c, $now);
            $done
        }
        for id in &$batch.handled_commands {
            $next
            push_handled!($qb, *id, $now);
            $done
        }
        for t in &$batch.template_uses {
            $next
            push_template_use!($qb, t);
            $done
        }
        for chunk in $batch.checkpoints.chunks(CHUNK) {
            $next
            push_checkpoints!($qb, chunk);
            $done
        }
        for chunk in $batch.waits.chunks(CHUNK) {
            $next
            push_waits!($qb, chunk);
            $done
        }
        for (_, id) in &$batch.noted_waits {
            $next
            push_noted!($qb, id, $now);
            $done
        }
        for chunk in $batch.agent_loops.chunks(CHUNK) {
            $next
            push_agent_loops!($qb, chunk);
            $done
        }
        for chunk in $batch.agent_turns.chunks(CHUNK) {
            $next
            push_agent_turns!($qb, chunk);
            $done
        }
        for chunk in $batch.tool_calls.chunks(CHUNK) {
            $next
            push_tool_calls!($qb, chunk);
            $done
        }
        for chunk in $batch.snapshots.chunks(CHUNK) {
            $next
            push_snapshots!($qb, chunk);
            $done
        }
    };
}
