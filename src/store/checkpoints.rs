//! Checkpoint rows: what a run had done at one moment (succeeded tasks and their outputs,
//! artifacts, a manifest of its workspace), enough to start a new run from there.

use super::{q, with_pool, Store, StoreError};
use crate::domain::RunId;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

/// A checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointRow {
    /// Id, `cp-…`.
    pub id: String,
    /// The run.
    pub run_id: RunId,
    /// Free text.
    pub description: Option<String>,
    /// Succeeded tasks at the time.
    pub step: i64,
    /// `[{id, outputs, agent, attempts}]` of the succeeded tasks, in plan order.
    pub tasks: Value,
    /// `[{task, name, sha256, size}]`.
    pub artifacts: Value,
    /// `{path: sha256}` of every file of the workspace.
    pub manifest: Value,
    /// Creation time (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub created_at: i64,
}

const COLUMNS: &str = "id, run_id, description, step, tasks, artifacts, manifest, created_at";

macro_rules! checkpoint_from_row {
    ($r:expr) => {{
        let r = $r;
        let json = |col: &str| -> Result<Value, StoreError> {
            let text: String = r.try_get(col).map_err(q("read checkpoint"))?;
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                what: "checkpoint",
                why: e.to_string(),
            })
        };
        let run: String = r.try_get("run_id").map_err(q("read checkpoint"))?;
        CheckpointRow {
            id: r.try_get("id").map_err(q("read checkpoint"))?,
            run_id: run.parse().map_err(|_| StoreError::Corrupt {
                what: "checkpoint run id",
                why: run.clone(),
            })?,
            description: r.try_get("description").map_err(q("read checkpoint"))?,
            step: r.try_get("step").map_err(q("read checkpoint"))?,
            tasks: json("tasks")?,
            artifacts: json("artifacts")?,
            manifest: json("manifest")?,
            created_at: r.try_get("created_at").map_err(q("read checkpoint"))?,
        }
    }};
}

impl Store {
    /// The checkpoints of a run, oldest first.
    ///
    /// # Errors
    /// Query failures.
    pub async fn checkpoints(&self, run: RunId) -> Result<Vec<CheckpointRow>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM checkpoints WHERE run_id = $1 ORDER BY created_at, id");
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(&sql)
                .bind(run.to_string())
                .fetch_all(p)
                .await
                .map_err(q("list checkpoints"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(checkpoint_from_row!(r));
            }
            Ok(out)
        })
    }

    /// One checkpoint.
    ///
    /// # Errors
    /// `NoSuchCheckpoint`; query failures.
    pub async fn checkpoint(&self, id: &str) -> Result<CheckpointRow, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM checkpoints WHERE id = $1");
        with_pool!(self, |p, _b| {
            let r = sqlx::query(&sql)
                .bind(id)
                .fetch_optional(p)
                .await
                .map_err(q("read checkpoint"))?
                .ok_or_else(|| StoreError::NoSuchCheckpoint(id.to_string()))?;
            Ok(checkpoint_from_row!(r))
        })
    }
}
