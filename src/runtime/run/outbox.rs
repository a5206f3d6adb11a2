//! A run's outbox: the rows of its next commit. Events get the run's next sequence numbers
//! here; task, metrics and artifact rows are shaped from the run's state. The outbox also
//! keeps the write budget: rows sent and not yet committed, above which the coordinator
//! holds new work back until commits catch up (backpressure on the write path).

use super::state::Task;
use crate::domain::event::EventData;
use crate::domain::graph::Task as TaskSpec;
use crate::domain::{CorrelationId, FailureKind, PendingEvent, RunId, TaskKey};
use crate::store::{ArtifactRow, Batch, MetricRow, StoredBlob, TaskRow};

/// Rows sent to the persistence actor and not yet committed (plus those queued here) above
/// which new work waits.
pub(crate) const MAX_PENDING_ROWS: usize = 4_000;

/// The rows of a run's next commit.
pub(crate) struct Outbox {
    run: RunId,
    corr: CorrelationId,
    /// The last event's sequence number.
    seq: i64,
    batch: Batch,
    /// Rows sent and not yet committed.
    in_flight: usize,
}

impl Outbox {
    /// An outbox whose next event follows `last_seq`.
    pub fn new(run: RunId, corr: CorrelationId, last_seq: i64) -> Self {
        Self {
            run,
            corr,
            seq: last_seq,
            batch: Batch::default(),
            in_flight: 0,
        }
    }

    /// Logs an event of the run (of `task`, when given).
    pub fn emit(&mut self, task: Option<TaskKey>, data: EventData, now: i64) {
        self.seq += 1;
        self.batch.events.push(PendingEvent::new(
            self.seq,
            now,
            self.run,
            task,
            self.corr.clone(),
            data,
        ));
    }

    /// Writes task `spec`'s row as `t` stands.
    pub fn task_row(&mut self, spec: &TaskSpec, t: &Task) {
        self.batch.tasks.push(TaskRow {
            run_id: self.run,
            task_id: spec.key.clone(),
            idx: spec.index as i64,
            tool: spec.tool.clone(),
            status: t.status,
            attempt: i64::from(t.attempt),
            agent: t.agent.clone(),
            outputs: t.outputs.clone(),
            error: t.error.clone(),
            started_at: t.started_at,
            finished_at: t.finished_at,
            restored_from: t.restored_from.clone(),
        });
    }

    /// Records the metrics row of an attempt of `spec` that took `duration_ms`.
    pub fn attempt_metric(
        &mut self,
        spec: &TaskSpec,
        t: &Task,
        duration_ms: i64,
        failure: Option<FailureKind>,
        now: i64,
    ) {
        self.batch.metrics.push(MetricRow {
            run_id: self.run,
            task_id: spec.key.clone(),
            tool: spec.tool.clone(),
            agent: t.agent.clone(),
            attempt: i64::from(t.attempt),
            duration_ms,
            success: failure.is_none(),
            error_type: failure.map(|k| k.as_str().to_string()),
            at: now,
        });
    }

    /// Records the artifacts task `task` stored (an empty hash is no file).
    pub fn artifacts(&mut self, task: &TaskKey, artifacts: Vec<(String, StoredBlob)>, now: i64) {
        for (name, blob) in artifacts {
            if blob.hash.is_empty() {
                continue;
            }
            self.batch.artifacts.push(ArtifactRow {
                run_id: self.run,
                task_id: task.clone(),
                name,
                hash: blob.hash,
                size: blob.size,
                created_at: now,
            });
        }
    }

    /// The batch itself, for rows without a helper (run updates, waits, model calls).
    pub fn batch(&mut self) -> &mut Batch {
        &mut self.batch
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Whether rows in flight and queued are over the write budget.
    pub fn over_budget(&self) -> bool {
        self.in_flight + self.batch.len() > MAX_PENDING_ROWS
    }

    /// Takes the queued rows to send; they count as in flight until `committed`.
    pub fn take(&mut self) -> (Batch, usize) {
        let batch = std::mem::take(&mut self.batch);
        let rows = batch.len();
        self.in_flight += rows;
        (batch, rows)
    }

    /// `rows` taken earlier are committed (or failed).
    pub fn committed(&mut self, rows: usize) {
        self.in_flight -= rows;
    }
}
