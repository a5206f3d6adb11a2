//! Node-wide figures for `GET /metrics`: runs and tasks by status, the task-duration
//! histogram, and model calls, tokens and cost by model.

use super::{q, with_pool, Store, StoreError};
use sqlx::Row;

/// Upper bounds (seconds) of the task-duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 10] = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0];

/// What `GET /metrics` reports from the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Runs by status.
    pub runs: Vec<(String, i64)>,
    /// Task rows by status (tasks that have not moved yet have no row).
    pub tasks: Vec<(String, i64)>,
    /// Cumulative counts of attempts at or under each of [`DURATION_BUCKETS`].
    pub duration_buckets: Vec<i64>,
    /// Attempts, and their total seconds.
    pub duration_count: i64,
    /// Total seconds of all attempts.
    pub duration_sum: f64,
    /// Per model: calls, tokens, cost in micro-USD.
    pub models: Vec<(String, i64, i64, i64)>,
}

impl Store {
    /// Node-wide figures.
    ///
    /// # Errors
    /// Query failures.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        let buckets: Vec<String> = DURATION_BUCKETS
            .iter()
            .enumerate()
            .map(|(i, b)| {
                format!(
                    "CAST(COALESCE(SUM(CASE WHEN duration_ms <= {} THEN 1 ELSE 0 END), 0) AS BIGINT) AS b{i}",
                    (b * 1000.0) as i64
                )
            })
            .collect();
        let hist = format!(
            "SELECT {}, COUNT(*) AS n, CAST(COALESCE(SUM(duration_ms), 0) AS BIGINT) AS total FROM metrics",
            buckets.join(", ")
        );
        let mut s = Stats::default();
        with_pool!(self, |p, _b| {
            for (table, out) in [("runs", &mut s.runs), ("tasks", &mut s.tasks)] {
                let rows = sqlx::query(&format!(
                    "SELECT status, COUNT(*) AS n FROM {table} GROUP BY status ORDER BY status"
                ))
                .fetch_all(p)
                .await
                .map_err(q("count by status"))?;
                for r in rows {
                    out.push((
                        r.try_get("status").map_err(q("count by status"))?,
                        r.try_get("n").map_err(q("count by status"))?,
                    ));
                }
            }
            let h = sqlx::query(&hist)
                .fetch_one(p)
                .await
                .map_err(q("duration histogram"))?;
            for i in 0..DURATION_BUCKETS.len() {
                s.duration_buckets.push(
                    h.try_get(format!("b{i}").as_str())
                        .map_err(q("duration histogram"))?,
                );
            }
            s.duration_count = h.try_get("n").map_err(q("duration histogram"))?;
            s.duration_sum = h
                .try_get::<i64, _>("total")
                .map_err(q("duration histogram"))? as f64
                / 1000.0;
            let rows = sqlx::query(
                "SELECT model, COUNT(*) AS calls, \
                 CAST(COALESCE(SUM(input_tokens + output_tokens), 0) AS BIGINT) AS tokens, \
                 CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT) AS cost \
                 FROM model_calls GROUP BY model ORDER BY model",
            )
            .fetch_all(p)
            .await
            .map_err(q("model totals"))?;
            for r in rows {
                s.models.push((
                    r.try_get("model").map_err(q("model totals"))?,
                    r.try_get("calls").map_err(q("model totals"))?,
                    r.try_get("tokens").map_err(q("model totals"))?,
                    r.try_get("cost").map_err(q("model totals"))?,
                ));
            }
        });
        Ok(s)
    }
}
