//! Group commit: many state changes from many runs written in one transaction, one multi-row
//! statement per table.

use super::{q, ArtifactRow, MetricRow, RunRecord, RunUpdate, Store, StoreError, TaskRow};
use crate::domain::{Event, RunId};
use sqlx::{QueryBuilder, Row};
use std::collections::{HashMap, HashSet};

/// The leases a writer holds: its holder id and, by run, the fencing token it was granted.
/// A write for one of these runs is kept only while the lease row still names this holder
/// with this token; otherwise another process owns the run now and the write is late.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fences {
    /// The writer's lease holder id.
    pub holder: String,
    /// Tokens by run.
    pub tokens: HashMap<RunId, i64>,
}

/// Rows per multi-row statement (well under both backends' bind-parameter limits).
const CHUNK: usize = 256;
/// Longest SQL text whose prepared statements are kept in the connection's cache.
const CACHED_SQL: usize = 4096;
/// SQLite statements sent to its worker thread in one call.
const STATEMENTS_PER_CALL: usize = 8;

/// A group of writes committed together.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// New runs.
    pub new_runs: Vec<RunRecord>,
    /// Run status changes.
    pub run_updates: Vec<RunUpdate>,
    /// Task rows to insert or replace.
    pub tasks: Vec<TaskRow>,
    /// Events to append.
    pub events: Vec<Event>,
    /// Metrics rows.
    pub metrics: Vec<MetricRow>,
    /// Artifact rows.
    pub artifacts: Vec<ArtifactRow>,
    /// Model-call rows.
    pub model_calls: Vec<super::ModelCallRow>,
    /// Commands to record: (run, kind, reason).
    pub new_commands: Vec<(crate::domain::RunId, super::CommandKind, Option<String>)>,
    /// Command ids to mark handled.
    pub handled_commands: Vec<i64>,
    /// Templates a new run was made from: (owner project, template id); usage_count + 1.
    pub template_uses: Vec<(String, String)>,
    /// New checkpoints.
    pub checkpoints: Vec<super::CheckpointRow>,
    /// New waits (manual approvals).
    pub waits: Vec<super::WaitRow>,
    /// Leases of new runs, taken in the transaction that stores them: (run, holder, expiry).
    pub new_leases: Vec<(RunId, super::LeaseHolder, i64)>,
}

impl Batch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.new_runs.is_empty()
            && self.run_updates.is_empty()
            && self.tasks.is_empty()
            && self.events.is_empty()
            && self.metrics.is_empty()
            && self.artifacts.is_empty()
            && self.model_calls.is_empty()
            && self.new_commands.is_empty()
            && self.handled_commands.is_empty()
            && self.template_uses.is_empty()
            && self.checkpoints.is_empty()
            && self.waits.is_empty()
            && self.new_leases.is_empty()
    }

    /// Number of rows it writes.
    pub fn len(&self) -> usize {
        self.new_runs.len()
            + self.run_updates.len()
            + self.tasks.len()
            + self.events.len()
            + self.metrics.len()
            + self.artifacts.len()
            + self.model_calls.len()
            + self.new_commands.len()
            + self.handled_commands.len()
            + self.template_uses.len()
            + self.checkpoints.len()
            + self.waits.len()
            + self.new_leases.len()
    }

    /// Moves every write of `other` into this batch.
    pub fn append(&mut self, mut other: Batch) {
        self.new_runs.append(&mut other.new_runs);
        self.run_updates.append(&mut other.run_updates);
        self.tasks.append(&mut other.tasks);
        self.events.append(&mut other.events);
        self.metrics.append(&mut other.metrics);
        self.artifacts.append(&mut other.artifacts);
        self.model_calls.append(&mut other.model_calls);
        self.new_commands.append(&mut other.new_commands);
        self.handled_commands.append(&mut other.handled_commands);
        self.template_uses.append(&mut other.template_uses);
        self.checkpoints.append(&mut other.checkpoints);
        self.waits.append(&mut other.waits);
        self.new_leases.append(&mut other.new_leases);
    }

    /// The runs whose existing rows this batch changes (not the runs it creates).
    pub(crate) fn runs_touched(&self) -> HashSet<RunId> {
        let new: HashSet<RunId> = self.new_runs.iter().map(|r| r.id).collect();
        let mut out = HashSet::new();
        out.extend(self.run_updates.iter().map(|u| u.id));
        out.extend(self.tasks.iter().map(|t| t.run_id));
        out.extend(self.events.iter().map(|e| e.run_id));
        out.extend(self.metrics.iter().map(|m| m.run_id));
        out.extend(self.artifacts.iter().map(|a| a.run_id));
        out.extend(self.waits.iter().map(|w| w.run_id));
        out.retain(|r| !new.contains(r));
        out
    }

    /// Drops every row of `runs` that states what a run did (its status, tasks, events,
    /// metrics, artifacts, waits); usage rows stay (money spent is a fact).
    fn drop_runs(&mut self, runs: &HashSet<RunId>) {
        self.run_updates.retain(|u| !runs.contains(&u.id));
        self.tasks.retain(|t| !runs.contains(&t.run_id));
        self.events.retain(|e| !runs.contains(&e.run_id));
        self.metrics.retain(|m| !runs.contains(&m.run_id));
        self.artifacts.retain(|a| !runs.contains(&a.run_id));
        self.waits.retain(|w| !runs.contains(&w.run_id));
        self.checkpoints.retain(|c| !runs.contains(&c.run_id));
    }

    /// Keeps only the last row for each task (one statement may not touch a row twice).
    fn dedup_tasks(&mut self) {
        if self.tasks.len() < 2 {
            return;
        }
        let mut last: HashMap<(crate::domain::RunId, &str), usize> =
            HashMap::with_capacity(self.tasks.len());
        for (i, t) in self.tasks.iter().enumerate() {
            last.insert((t.run_id, t.task_id.as_str()), i);
        }
        if last.len() == self.tasks.len() {
            return;
        }
        let keep: Vec<bool> = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| last.get(&(t.run_id, t.task_id.as_str())) == Some(&i))
            .collect();
        let mut i = 0;
        self.tasks.retain(|_| {
            let k = keep[i];
            i += 1;
            k
        });
    }
}

/// A pooled SQLite connection inside a transaction this code opened; dropped before the
/// transaction ends, the connection is closed instead of going back to the pool.
struct OpenTransaction<'a>(Option<&'a mut sqlx::pool::PoolConnection<sqlx::Sqlite>>);

impl OpenTransaction<'_> {
    fn conn(&mut self) -> &mut sqlx::pool::PoolConnection<sqlx::Sqlite> {
        self.0
            .as_deref_mut()
            .expect("the connection is held until the transaction ends")
    }
}

impl Drop for OpenTransaction<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.close_on_drop();
        }
    }
}

fn json_text(v: &serde_json::Value) -> String {
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
                .push_bind(r.lineage.as_ref().map(|l| l.checkpoint_id.clone()))
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
             output_tokens, estimated_cost_micro_usd, cost_micro_usd, duration_ms, success, \
             error_type, correlation_id, at, project) ",
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
             created_at) ",
        );
        $qb.push_values($chunk, |mut b, c| {
            b.push_bind(c.id.clone())
                .push_bind(c.run_id.to_string())
                .push_bind(c.description.clone())
                .push_bind(c.step)
                .push_bind(c.tasks.to_string())
                .push_bind(c.artifacts.to_string())
                .push_bind(c.manifest.to_string())
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
             on_timeout, requested_at) ",
        );
        $qb.push_values($chunk, |mut b, w| {
            b.push_bind(w.id.to_string())
                .push_bind(w.run_id.to_string())
                .push_bind(w.task_id.clone())
                .push_bind(w.attempt)
                .push_bind(w.kind.as_str())
                .push_bind(serde_json::json!(w.approvers).to_string())
                .push_bind(w.deadline_at)
                .push_bind(w.on_timeout.as_str())
                .push_bind(w.requested_at);
        });
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
    };
}

impl Store {
    /// Writes a batch in one transaction; when this returns `Ok`, every row is committed.
    /// On SQLite the whole batch is one multi-statement call (one hop to SQLite's worker
    /// thread); on Postgres it is one multi-row statement per table and chunk.
    ///
    /// # Errors
    /// Any failed statement; then nothing of the batch is written.
    ///
    /// # Cancel safety
    /// Dropping the future rolls the transaction back.
    pub async fn write(&self, batch: &mut Batch) -> Result<(), StoreError> {
        self.write_fenced(batch, &Fences::default(), &mut HashSet::new())
            .await
    }

    /// Like [`Store::write`], for a writer holding leases: in the same transaction, the rows
    /// of every run in `fences` whose lease moved to another holder (or token) are dropped
    /// from the batch (for good, even if the transaction then fails) and added to `stale`;
    /// the rest is written.
    ///
    /// # Errors
    /// As [`Store::write`].
    ///
    /// # Cancel safety
    /// As [`Store::write`].
    pub async fn write_fenced(
        &self,
        batch: &mut Batch,
        fences: &Fences,
        stale: &mut HashSet<RunId>,
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        batch.dedup_tasks();
        let now = super::now_ms();
        let fenced: Vec<(RunId, i64)> = if fences.tokens.is_empty() {
            Vec::new()
        } else {
            batch
                .runs_touched()
                .into_iter()
                .filter_map(|r| fences.tokens.get(&r).map(|t| (r, *t)))
                .collect()
        };
        match self {
            Store::Sqlite(p) => {
                // BEGIN, the statements and COMMIT go to SQLite's worker thread in as few calls
                // as possible (one for a usual batch). The fence check is the batch's first
                // statement: it fails the transaction when a lease it fences has moved on;
                // then the leases are read, the stale runs' rows dropped, and the rest written.
                // If this future is dropped half-way, the connection is closed rather than
                // returned inside an open transaction.
                let mut conn = p.acquire().await.map_err(q("begin write"))?;
                let mut inline = !fenced.is_empty();
                loop {
                    let mut guard = OpenTransaction(Some(&mut conn));
                    let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new("BEGIN IMMEDIATE");
                    if inline {
                        qb.push(";\n");
                        push_fence_update(&mut qb, &fenced, &fences.holder);
                    } else if !fenced.is_empty() {
                        qb.push(";\n");
                        push_lease_check(&mut qb, &fenced, "");
                        let rows = qb
                            .build()
                            .persistent(false)
                            .fetch_all(&mut **guard.conn())
                            .await;
                        let found = match rows {
                            Ok(rows) => stale_runs(&rows, &fenced, &fences.holder),
                            Err(e) => Err(q("check leases")(e)),
                        };
                        let found = match found {
                            Ok(f) => f,
                            Err(e) => {
                                if sqlx::query("ROLLBACK")
                                    .execute(&mut **guard.conn())
                                    .await
                                    .is_ok()
                                {
                                    guard.0 = None;
                                }
                                return Err(e);
                            }
                        };
                        batch.drop_runs(&found);
                        stale.extend(found);
                        qb = QueryBuilder::new("SELECT 1");
                    }
                    let mut queued = 0;
                    let result: Result<(), StoreError> = async {
                        for_each_statement!(
                            batch,
                            now,
                            qb,
                            {
                                qb.push(";\n");
                            },
                            {
                                queued += 1;
                                if queued == STATEMENTS_PER_CALL {
                                    qb.build()
                                        .persistent(false)
                                        .execute(&mut **guard.conn())
                                        .await
                                        .map_err(q("write batch"))?;
                                    qb = QueryBuilder::new("");
                                    queued = 0;
                                }
                            }
                        );
                        if !qb.sql().is_empty() {
                            qb.push(";\n");
                        }
                        qb.push("COMMIT");
                        // Small batches repeat the same text (a chain writes the same shape
                        // every step), so their prepared statements are worth caching; large
                        // ones are not.
                        let cache = qb.sql().len() <= CACHED_SQL;
                        qb.build()
                            .persistent(cache)
                            .execute(&mut **guard.conn())
                            .await
                            .map_err(q("commit"))?;
                        Ok(())
                    }
                    .await;
                    let clean = match &result {
                        Ok(()) => true,
                        Err(_) => sqlx::query("ROLLBACK")
                            .execute(&mut **guard.conn())
                            .await
                            .is_ok(),
                    };
                    if clean {
                        guard.0 = None;
                    }
                    drop(guard);
                    match result {
                        Err(e) if inline && clean && is_fence_failure(&e) => inline = false,
                        other => {
                            other?;
                            break;
                        }
                    }
                }
            }
            Store::Postgres(p) => {
                let mut tx = p.begin().await.map_err(q("begin write"))?;
                if !fenced.is_empty() {
                    // FOR SHARE: a claim (FOR UPDATE) of these leases waits for this commit.
                    let mut qb: QueryBuilder<sqlx::Postgres> = QueryBuilder::new("");
                    push_lease_check(&mut qb, &fenced, " FOR SHARE");
                    let rows = qb
                        .build()
                        .persistent(false)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(q("check leases"))?;
                    let found = stale_runs(&rows, &fenced, &fences.holder)?;
                    batch.drop_runs(&found);
                    stale.extend(found);
                }
                let mut qb: QueryBuilder<sqlx::Postgres> = QueryBuilder::new("");
                for_each_statement!(
                    batch,
                    now,
                    qb,
                    {
                        qb = QueryBuilder::new("");
                    },
                    {
                        qb.build()
                            .persistent(false)
                            .execute(&mut *tx)
                            .await
                            .map_err(q("write batch"))?;
                    }
                );
                drop(qb);
                tx.commit().await.map_err(q("commit"))?;
            }
        }
        Ok(())
    }
}

fn push_lease_check<DB: sqlx::Database>(
    qb: &mut QueryBuilder<'_, DB>,
    fenced: &[(RunId, i64)],
    lock: &str,
) where
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    qb.push("SELECT run_id, holder, token FROM leases WHERE run_id IN (");
    let mut sep = qb.separated(", ");
    for (r, _) in fenced {
        sep.push_bind(r.to_string());
    }
    // Locks are taken in run id order, as a renewal takes them: no deadlock between the two.
    qb.push(") ORDER BY run_id");
    qb.push(lock);
}

/// SQLite: sets the `fence` row's `held` to whether every fenced lease still names `holder`
/// with its token; its CHECK fails the transaction otherwise.
fn push_fence_update(
    qb: &mut QueryBuilder<'_, sqlx::Sqlite>,
    fenced: &[(RunId, i64)],
    holder: &str,
) {
    qb.push("UPDATE fence SET held = ((SELECT COUNT(*) FROM leases WHERE holder = ");
    qb.push_bind(holder.to_string());
    qb.push(" AND (");
    for (i, (run, token)) in fenced.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        qb.push("(run_id = ")
            .push_bind(run.to_string())
            .push(" AND token = ")
            .push_bind(*token)
            .push(")");
    }
    qb.push(")) = ");
    qb.push_bind(fenced.len() as i64);
    qb.push(")");
}

fn is_fence_failure(e: &StoreError) -> bool {
    matches!(e, StoreError::Query { source: sqlx::Error::Database(d), .. } if d.message().contains("fence_held"))
}

/// The fenced runs whose lease no longer names `holder` with the token it was granted (or
/// has no row at all).
fn stale_runs<R: Row>(
    rows: &[R],
    fenced: &[(RunId, i64)],
    holder: &str,
) -> Result<HashSet<RunId>, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut current: HashMap<String, (String, i64)> = HashMap::new();
    for r in rows {
        let run: String = r.try_get("run_id").map_err(q("check leases"))?;
        let h: String = r.try_get("holder").map_err(q("check leases"))?;
        let t: i64 = r.try_get("token").map_err(q("check leases"))?;
        current.insert(run, (h, t));
    }
    Ok(fenced
        .iter()
        .filter(|(run, token)| current.get(&run.to_string()) != Some(&(holder.to_string(), *token)))
        .map(|(run, _)| *run)
        .collect())
}
