//! Workspace snapshot rows: the manifest of a run's workspace before a PRP step first ran,
//! and whether (and how) the step was rolled back.

use super::{q, with_pool, Store, StoreError};
use crate::domain::RunId;
use crate::snapshot::Manifest;
use serde_json::Value;
use sqlx::Row;

/// A workspace snapshot of one task of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRow {
    /// The run.
    pub run_id: RunId,
    /// The task (the step) it was taken before.
    pub task_id: String,
    /// When (ms).
    pub taken_at: i64,
    /// Every file, link and directory the workspace had.
    pub manifest: Manifest,
    /// When the step was rolled back (ms).
    pub rolled_back_at: Option<i64>,
    /// What the rollback did.
    pub rollback: Option<Value>,
}

impl SnapshotRow {
    /// The hashes of the files it refers to.
    pub(crate) fn hashes(manifest: &Manifest) -> impl Iterator<Item = &str> {
        manifest.values().filter_map(|e| match e {
            crate::snapshot::Entry::File { sha256, .. } => Some(sha256.as_str()),
            _ => None,
        })
    }
}

macro_rules! snapshot_from_row {
    ($r:expr) => {{
        let r = $r;
        let corrupt = |why: String| StoreError::Corrupt {
            what: "workspace snapshot",
            why,
        };
        let run: String = r.try_get("run_id").map_err(q("read snapshot"))?;
        let manifest: String = r.try_get("manifest").map_err(q("read snapshot"))?;
        let rollback: Option<String> = r.try_get("rollback").map_err(q("read snapshot"))?;
        SnapshotRow {
            run_id: run.parse().map_err(|_| corrupt(run.clone()))?,
            task_id: r.try_get("task_id").map_err(q("read snapshot"))?,
            taken_at: r.try_get("taken_at").map_err(q("read snapshot"))?,
            manifest: serde_json::from_str(&manifest).map_err(|e| corrupt(e.to_string()))?,
            rolled_back_at: r.try_get("rolled_back_at").map_err(q("read snapshot"))?,
            rollback: rollback
                .map(|t| serde_json::from_str(&t).map_err(|e| corrupt(e.to_string())))
                .transpose()?,
        }
    }};
}

impl Store {
    /// The workspace snapshots of a run, in the order they were taken.
    ///
    /// # Errors
    /// Query failures and undecodable rows.
    pub async fn snapshots(&self, run: RunId) -> Result<Vec<SnapshotRow>, StoreError> {
        let sql = "SELECT run_id, task_id, taken_at, manifest, rolled_back_at, rollback \
                   FROM workspace_snapshots WHERE run_id = $1 ORDER BY taken_at, task_id";
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(sql)
                .bind(run.to_string())
                .fetch_all(p)
                .await
                .map_err(q("read snapshots"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(snapshot_from_row!(r));
            }
            Ok(out)
        })
    }
}
