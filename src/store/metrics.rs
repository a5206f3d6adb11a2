//! Reads of per-attempt metrics.

use super::{q, with_pool, MetricRow, Store, StoreError};
use crate::domain::{RunId, TaskKey};
use sqlx::Row;

impl Store {
    /// The metrics rows of a run, in the order they were written.
    ///
    /// # Errors
    /// Query failures.
    pub async fn metrics(&self, run: RunId) -> Result<Vec<MetricRow>, StoreError> {
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(
                "SELECT task_id, tool, agent, attempt, duration_ms, success, error_type, at FROM metrics \
                 WHERE run_id = $1 ORDER BY id",
            )
            .bind(run.to_string())
            .fetch_all(p)
            .await
            .map_err(q("read metrics"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(MetricRow {
                    run_id: run,
                    task_id: TaskKey::from_trusted(
                        r.try_get("task_id").map_err(q("read metrics"))?,
                    ),
                    tool: r.try_get("tool").map_err(q("read metrics"))?,
                    agent: r.try_get("agent").map_err(q("read metrics"))?,
                    attempt: r.try_get("attempt").map_err(q("read metrics"))?,
                    duration_ms: r.try_get("duration_ms").map_err(q("read metrics"))?,
                    success: r.try_get("success").map_err(q("read metrics"))?,
                    error_type: r.try_get("error_type").map_err(q("read metrics"))?,
                    at: r.try_get("at").map_err(q("read metrics"))?,
                });
            }
            Ok(out)
        })
    }
}
