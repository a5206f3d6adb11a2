//! Group commit: many state changes from many runs written in one transaction, one multi-row
//! statement per table.

use super::{
    q, with_pool, ArtifactRow, MetricRow, RunRecord, RunUpdate, Store, StoreError, TaskRow,
};
use crate::domain::Event;
use sqlx::QueryBuilder;
use std::collections::HashMap;

/// Rows per multi-row statement (well under both backends' bind-parameter limits).
const CHUNK: usize = 256;

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
    /// Commands to record: (run, kind, reason).
    pub new_commands: Vec<(crate::domain::RunId, String, Option<String>)>,
    /// Command ids to mark handled.
    pub handled_commands: Vec<i64>,
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
            && self.new_commands.is_empty()
            && self.handled_commands.is_empty()
    }

    /// Number of rows it writes.
    pub fn len(&self) -> usize {
        self.new_runs.len()
            + self.run_updates.len()
            + self.tasks.len()
            + self.events.len()
            + self.metrics.len()
            + self.artifacts.len()
            + self.new_commands.len()
            + self.handled_commands.len()
    }

    /// Moves every write of `other` into this batch.
    pub fn append(&mut self, mut other: Batch) {
        self.new_runs.append(&mut other.new_runs);
        self.run_updates.append(&mut other.run_updates);
        self.tasks.append(&mut other.tasks);
        self.events.append(&mut other.events);
        self.metrics.append(&mut other.metrics);
        self.artifacts.append(&mut other.artifacts);
        self.new_commands.append(&mut other.new_commands);
        self.handled_commands.append(&mut other.handled_commands);
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

fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

impl Store {
    /// Writes a batch in one transaction; when this returns `Ok`, every row is committed.
    ///
    /// # Errors
    /// Any failed statement; then nothing of the batch is written.
    ///
    /// # Cancel safety
    /// Dropping the future rolls the transaction back.
    pub async fn write(&self, batch: &mut Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        batch.dedup_tasks();
        let now = super::now_ms();
        with_pool!(self, |p, begin| {
            let mut tx = p.begin_with(begin).await.map_err(q("begin write"))?;
            for chunk in batch.new_runs.chunks(CHUNK) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO runs (id, name, status, reason, correlation_id, plan, inputs, workspace, \
                     created_at, started_at, finished_at, deadline_at) ",
                );
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(r.id.to_string())
                        .push_bind(r.name.clone())
                        .push_bind(r.status.as_str())
                        .push_bind(r.reason.clone())
                        .push_bind(r.correlation_id.to_string())
                        .push_bind(serde_json::to_string(&r.plan).unwrap_or_default())
                        .push_bind(serde_json::Value::Object(r.inputs.clone()).to_string())
                        .push_bind(r.workspace.clone())
                        .push_bind(r.created_at)
                        .push_bind(r.started_at)
                        .push_bind(r.finished_at)
                        .push_bind(r.deadline_at);
                });
                qb.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(q("insert runs"))?;
            }
            for u in &batch.run_updates {
                sqlx::query(
                    "UPDATE runs SET status = $2, reason = COALESCE($3, reason), \
                     started_at = COALESCE(started_at, $4), finished_at = COALESCE($5, finished_at), \
                     deadline_at = COALESCE(deadline_at, $6) WHERE id = $1",
                )
                .bind(u.id.to_string())
                .bind(u.status.as_str())
                .bind(u.reason.clone())
                .bind(u.started_at)
                .bind(u.finished_at)
                .bind(u.deadline_at)
                .execute(&mut *tx)
                .await
                .map_err(q("update run"))?;
            }
            for chunk in batch.tasks.chunks(CHUNK) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO tasks (run_id, task_id, idx, tool, status, attempt, agent, outputs, \
                     error, started_at, finished_at) ",
                );
                qb.push_values(chunk, |mut b, t| {
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
                        .push_bind(t.finished_at);
                });
                qb.push(
                    " ON CONFLICT (run_id, task_id) DO UPDATE SET status = excluded.status, \
                     attempt = excluded.attempt, agent = excluded.agent, outputs = excluded.outputs, \
                     error = excluded.error, started_at = excluded.started_at, \
                     finished_at = excluded.finished_at",
                );
                qb.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(q("write tasks"))?;
            }
            for chunk in batch.events.chunks(CHUNK) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO events (run_id, seq, type, at, task_id, correlation_id, data) ",
                );
                qb.push_values(chunk, |mut b, e| {
                    b.push_bind(e.run_id.to_string())
                        .push_bind(e.seq)
                        .push_bind(e.kind.as_str())
                        .push_bind(e.at.timestamp_millis())
                        .push_bind(e.task_id.as_ref().map(|t| t.to_string()))
                        .push_bind(e.correlation_id.to_string())
                        .push_bind(json_text(&e.data));
                });
                qb.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(q("append events"))?;
            }
            for chunk in batch.metrics.chunks(CHUNK) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO metrics (run_id, task_id, tool, agent, attempt, duration_ms, success, \
                     error_type, at) ",
                );
                qb.push_values(chunk, |mut b, m| {
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
                qb.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(q("write metrics"))?;
            }
            for chunk in batch.artifacts.chunks(CHUNK) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO artifacts (run_id, task_id, name, hash, size, created_at) ",
                );
                qb.push_values(chunk, |mut b, a| {
                    b.push_bind(a.run_id.to_string())
                        .push_bind(a.task_id.to_string())
                        .push_bind(a.name.clone())
                        .push_bind(a.hash.clone())
                        .push_bind(a.size)
                        .push_bind(a.created_at);
                });
                qb.push(
                    " ON CONFLICT (run_id, task_id, name) DO UPDATE SET hash = excluded.hash, \
                     size = excluded.size, created_at = excluded.created_at",
                );
                qb.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(q("write artifacts"))?;
            }
            for (run, kind, reason) in &batch.new_commands {
                sqlx::query("INSERT INTO run_commands (run_id, kind, reason, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(run.to_string())
                    .bind(kind.clone())
                    .bind(reason.clone())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("insert command"))?;
            }
            for id in &batch.handled_commands {
                sqlx::query("UPDATE run_commands SET handled_at = $2 WHERE id = $1")
                    .bind(*id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("mark command handled"))?;
            }
            tx.commit().await.map_err(q("commit"))?;
        });
        Ok(())
    }
}
