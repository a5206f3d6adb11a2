//! Decompositions: each round of a decomposed task's sub-plan (the first, then each replan),
//! as the subtasks' specs with full ids, committed with their task rows and event before any
//! subtask starts. A resume rebuilds a run's graph from its plan and these rows.

use super::{q, with_pool, Store, StoreError};
use crate::domain::plan::{Source, TaskSpec};
use crate::domain::{RunId, TaskKey};
use sqlx::Row;

/// One round of a task's decomposition.
#[derive(Debug, Clone, PartialEq)]
pub struct DecompositionRow {
    /// The run.
    pub run_id: RunId,
    /// The decomposed task.
    pub task_id: TaskKey,
    /// 1 for the decomposition, 2, 3, … for replans.
    pub round: u32,
    /// The graph index of its first subtask (rows are replayed in this order).
    pub first_idx: i64,
    /// Where the sub-plan came from.
    pub source: Source,
    /// The subtasks: full ids, references and `depends_on` by full id.
    pub subtasks: Vec<TaskSpec>,
    /// Subtasks of earlier rounds this round replaces.
    pub replaced: Vec<String>,
    /// Why a replan was made.
    pub reason: Option<String>,
    /// When it was committed (ms).
    pub created_at: i64,
}

impl DecompositionRow {
    /// The row as a checkpoint keeps it (without its run).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "task": self.task_id,
            "round": self.round,
            "source": self.source.as_str(),
            "subtasks": self.subtasks,
            "replaced": self.replaced,
            "reason": self.reason,
        })
    }

    /// A row a checkpoint kept, for run `run`; `first_idx` and `created_at` are set when it
    /// joins that run.
    ///
    /// # Errors
    /// A value that is not such a row.
    pub fn from_json(run: RunId, v: &serde_json::Value) -> Result<Self, String> {
        let field = |k: &str| {
            v.get(k)
                .ok_or_else(|| format!("decomposition without `{k}`"))
        };
        Ok(Self {
            run_id: run,
            task_id: TaskKey::from_trusted(
                field("task")?
                    .as_str()
                    .ok_or("`task` is not text")?
                    .to_string(),
            ),
            round: field("round")?
                .as_u64()
                .and_then(|r| u32::try_from(r).ok())
                .ok_or("`round` is not a number")?,
            first_idx: 0,
            source: Source::parse(field("source")?.as_str().unwrap_or_default())?,
            subtasks: serde_json::from_value(field("subtasks")?.clone())
                .map_err(|e| e.to_string())?,
            replaced: serde_json::from_value(field("replaced")?.clone())
                .map_err(|e| e.to_string())?,
            reason: v.get("reason").and_then(|r| r.as_str()).map(str::to_string),
            created_at: 0,
        })
    }
}

impl Store {
    /// A run's decompositions, in the order their subtasks joined its graph.
    ///
    /// # Errors
    /// Query failures; rows that do not parse.
    pub async fn decompositions(&self, run: RunId) -> Result<Vec<DecompositionRow>, StoreError> {
        let sql = "SELECT task_id, round, first_idx, source, subtasks, replaced, reason, \
                   created_at FROM decompositions WHERE run_id = $1 ORDER BY first_idx";
        let corrupt = |why: String| StoreError::Corrupt {
            what: "decomposition",
            why,
        };
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(sql)
                .bind(run.to_string())
                .fetch_all(p)
                .await
                .map_err(q("read decompositions"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let source: String = r.try_get("source").map_err(q("read decompositions"))?;
                let subtasks: String = r.try_get("subtasks").map_err(q("read decompositions"))?;
                let replaced: String = r.try_get("replaced").map_err(q("read decompositions"))?;
                let round: i64 = r.try_get("round").map_err(q("read decompositions"))?;
                out.push(DecompositionRow {
                    run_id: run,
                    task_id: TaskKey::from_trusted(
                        r.try_get("task_id").map_err(q("read decompositions"))?,
                    ),
                    round: u32::try_from(round).map_err(|e| corrupt(e.to_string()))?,
                    first_idx: r.try_get("first_idx").map_err(q("read decompositions"))?,
                    source: Source::parse(&source).map_err(corrupt)?,
                    subtasks: serde_json::from_str(&subtasks)
                        .map_err(|e| corrupt(e.to_string()))?,
                    replaced: serde_json::from_str(&replaced)
                        .map_err(|e| corrupt(e.to_string()))?,
                    reason: r.try_get("reason").map_err(q("read decompositions"))?,
                    created_at: r.try_get("created_at").map_err(q("read decompositions"))?,
                });
            }
            Ok(out)
        })
    }
}
