//! Checkpoint rows: what a run had done at one moment (succeeded tasks and their outputs,
//! artifacts, a manifest of its workspace), enough to start a new run from there.

use super::{q, with_pool, Store, StoreError};
use crate::domain::{CheckpointId, RunId};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

/// A checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointRow {
    /// Id, `cp-…`.
    pub id: CheckpointId,
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
    /// `[{task, round, source, subtasks, replaced, reason}]`: the run's decompositions, in
    /// the order they joined its graph.
    pub decompositions: Value,
    /// Creation time (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, run_id, description, step, tasks, artifacts, manifest, decompositions, created_at";

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
            decompositions: {
                let text: Option<String> =
                    r.try_get("decompositions").map_err(q("read checkpoint"))?;
                match text {
                    None => Value::Array(Vec::new()),
                    Some(t) => serde_json::from_str(&t).map_err(|e| StoreError::Corrupt {
                        what: "checkpoint",
                        why: e.to_string(),
                    })?,
                }
            },
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
        let shown = super::shown(id);
        let exact = format!("SELECT {COLUMNS} FROM checkpoints WHERE id = $1");
        let found = with_pool!(self, |p, _b| {
            match sqlx::query(&exact)
                .bind(id)
                .fetch_optional(p)
                .await
                .map_err(q("read checkpoint"))?
            {
                Some(r) => Some(checkpoint_from_row!(r)),
                None => None,
            }
        });
        if let Some(cp) = found {
            return Ok(cp);
        }
        // A unique prefix of at least 4 characters names a checkpoint too.
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(StoreError::NoSuchCheckpoint(shown));
        }
        if id.chars().count() < 4 {
            return Err(StoreError::BadInput(format!(
                "checkpoint id prefix `{shown}` is too short: give at least 4 characters of the id"
            )));
        }
        let pattern = format!("{}%", id.replace('_', "\\_"));
        let like =
            format!("SELECT {COLUMNS} FROM checkpoints WHERE id LIKE $1 ESCAPE '\\' LIMIT 2");
        let mut rows = with_pool!(self, |p, _b| {
            let rows = sqlx::query(&like)
                .bind(&pattern)
                .fetch_all(p)
                .await
                .map_err(q("read checkpoint"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(checkpoint_from_row!(r));
            }
            out
        });
        match rows.len() {
            1 => Ok(rows.remove(0)),
            0 => Err(StoreError::NoSuchCheckpoint(shown)),
            _ => Err(StoreError::BadInput(format!(
                "`{shown}` matches several checkpoints; give more of the id"
            ))),
        }
    }
}
