//! Rows as the store reads and writes them.

use crate::domain::{CheckpointId, CorrelationId, Plan, RunId, RunStatus, TaskKey, TaskStatus};
use serde_json::{Map, Value};

/// A run as stored.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// Id.
    pub id: RunId,
    /// Plan name.
    pub name: String,
    /// Status.
    pub status: RunStatus,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// Correlation id.
    pub correlation_id: CorrelationId,
    /// The plan as submitted (shared, never copied: plans can be large).
    pub plan: std::sync::Arc<Plan>,
    /// Resolved plan inputs.
    pub inputs: Map<String, Value>,
    /// Absolute path of the run workspace.
    pub workspace: String,
    /// Creation time (ms).
    pub created_at: i64,
    /// First start (ms).
    pub started_at: Option<i64>,
    /// End (ms).
    pub finished_at: Option<i64>,
    /// Deadline from the plan's `timeout_s` (ms), fixed at first start.
    pub deadline_at: Option<i64>,
    /// The project it belongs to (budgets, API visibility).
    pub project: String,
    /// Where a restored or forked run comes from.
    pub lineage: Option<Lineage>,
}

#[cfg(any(test, feature = "cli"))]
impl RunRecord {
    /// A run of an empty plan named `name`, started at `now` in `workspace`, in the default
    /// project: what the store's own benchmark and tests write to have a run to write for.
    pub(crate) fn started(
        id: RunId,
        name: &str,
        correlation_id: CorrelationId,
        workspace: String,
        now: i64,
    ) -> Self {
        Self {
            id,
            name: name.to_string(),
            status: RunStatus::Running,
            reason: None,
            correlation_id,
            plan: std::sync::Arc::new(Plan::new(name)),
            inputs: Map::new(),
            workspace,
            created_at: now,
            started_at: Some(now),
            finished_at: None,
            deadline_at: None,
            project: "default".into(),
            lineage: None,
        }
    }
}

/// Where a restored or forked run comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// The run it was restored or forked from.
    pub parent_run_id: RunId,
    /// The checkpoint it starts from (none for a run made from another's result, such as
    /// the plan a gathering run made).
    pub checkpoint_id: Option<CheckpointId>,
    /// The task a fork starts at (none for a restore).
    pub forked_at: Option<String>,
}

/// A change to a run's row.
#[derive(Debug, Clone)]
pub struct RunUpdate {
    /// The run.
    pub id: RunId,
    /// New status.
    pub status: RunStatus,
    /// New reason (kept when `None`).
    pub reason: Option<String>,
    /// Set `started_at` when not yet set.
    pub started_at: Option<i64>,
    /// Set `finished_at`.
    pub finished_at: Option<i64>,
    /// Set `deadline_at` when not yet set.
    pub deadline_at: Option<i64>,
}

/// A task's row.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    /// The run.
    pub run_id: RunId,
    /// The task id.
    pub task_id: TaskKey,
    /// Position in the plan.
    pub idx: i64,
    /// Tool.
    pub tool: String,
    /// Status.
    pub status: TaskStatus,
    /// Attempts started so far.
    pub attempt: i64,
    /// The agent of the last attempt.
    pub agent: Option<String>,
    /// Outputs of the last attempt.
    pub outputs: Option<Value>,
    /// Why it failed, was skipped or was cancelled.
    pub error: Option<String>,
    /// First start (ms).
    pub started_at: Option<i64>,
    /// End (ms).
    pub finished_at: Option<i64>,
    /// The checkpoint its result was restored from (it did not run in this run).
    pub restored_from: Option<CheckpointId>,
}

/// One task attempt's metrics.
#[derive(Debug, Clone)]
pub struct MetricRow {
    /// The run.
    pub run_id: RunId,
    /// The task.
    pub task_id: TaskKey,
    /// Tool.
    pub tool: String,
    /// Agent.
    pub agent: Option<String>,
    /// Attempt number (1-based).
    pub attempt: i64,
    /// Wall time of the attempt's tool run.
    pub duration_ms: i64,
    /// Whether it succeeded (gates included).
    pub success: bool,
    /// Kind of failure: `tool`, `gate`, `timeout`, `cancelled`, `input`.
    pub error_type: Option<String>,
    /// When its tool run ended (ms); it started `duration_ms` before.
    pub at: i64,
}

/// An artifact row; the bytes are a content-addressed file under the data directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRow {
    /// The run.
    pub run_id: RunId,
    /// The task (`task` in documents, as in checkpoints).
    #[serde(rename = "task")]
    pub task_id: TaskKey,
    /// Name, e.g. `stdout`.
    pub name: String,
    /// sha256, hex (`sha256` in documents).
    #[serde(rename = "sha256")]
    pub hash: String,
    /// Bytes.
    pub size: i64,
    /// When stored (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub created_at: i64,
}
