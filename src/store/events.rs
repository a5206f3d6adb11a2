//! Reads of the event log.

use super::{q, with_pool, Store, StoreError};
use crate::domain::event::from_ms;
use crate::domain::{CorrelationId, Event, EventType, RunId, TaskKey};
use sqlx::Row;

macro_rules! event_from_row {
    ($r:expr, $run:expr) => {{
        let r = $r;
        let kind: String = r.try_get("type").map_err(q("read events"))?;
        let data: String = r.try_get("data").map_err(q("read events"))?;
        let task: Option<String> = r.try_get("task_id").map_err(q("read events"))?;
        Event {
            seq: r.try_get("seq").map_err(q("read events"))?,
            kind: EventType::parse(&kind).map_err(|why| StoreError::Corrupt {
                what: "event type",
                why,
            })?,
            at: from_ms(r.try_get("at").map_err(q("read events"))?),
            run_id: $run,
            task_id: task.map(TaskKey::from_trusted),
            correlation_id: CorrelationId::from_trusted(
                r.try_get("correlation_id").map_err(q("read events"))?,
            ),
            data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt {
                what: "event data",
                why: e.to_string(),
            })?,
        }
    }};
}

impl Store {
    /// Events of a run with `seq > after`, in order, at most `limit`.
    ///
    /// # Errors
    /// Query failures and undecodable rows.
    pub async fn events(
        &self,
        run: RunId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let sql = "SELECT seq, type, at, task_id, correlation_id, data FROM events \
                   WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(sql)
                .bind(run.to_string())
                .bind(after)
                .bind(limit)
                .fetch_all(p)
                .await
                .map_err(q("read events"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(event_from_row!(r, run));
            }
            Ok(out)
        })
    }

    /// Events of one task of a run, in order.
    ///
    /// # Errors
    /// Query failures and undecodable rows.
    pub async fn task_events(&self, run: RunId, task: &str) -> Result<Vec<Event>, StoreError> {
        let sql = "SELECT seq, type, at, task_id, correlation_id, data FROM events \
                   WHERE run_id = $1 AND task_id = $2 ORDER BY seq";
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(sql)
                .bind(run.to_string())
                .bind(task.to_string())
                .fetch_all(p)
                .await
                .map_err(q("read task events"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(event_from_row!(r, run));
            }
            Ok(out)
        })
    }

    /// The highest event sequence number of a run (0 when it has none).
    ///
    /// # Errors
    /// Query failures.
    pub async fn last_seq(&self, run: RunId) -> Result<i64, StoreError> {
        with_pool!(self, |p, _b| {
            let n: Option<i64> =
                sqlx::query_scalar("SELECT MAX(seq) FROM events WHERE run_id = $1")
                    .bind(run.to_string())
                    .fetch_one(p)
                    .await
                    .map_err(q("read last event"))?;
            Ok(n.unwrap_or(0))
        })
    }

    /// Run-level events ([`crate::domain::EventType::RUN_LEVEL`]) of `project`'s runs at or after `since` (ms), in
    /// time order, at most `limit`.
    ///
    /// # Errors
    /// Query failures and undecodable rows.
    pub async fn project_events(
        &self,
        project: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let kinds: Vec<String> = crate::domain::EventType::RUN_LEVEL
            .iter()
            .map(|k| format!("'{}'", k.as_str()))
            .collect();
        let sql = format!(
            "SELECT e.run_id, e.seq, e.type, e.at, e.task_id, e.correlation_id, e.data \
             FROM events e JOIN runs r ON r.id = e.run_id \
             WHERE r.project = $1 AND e.at >= $2 AND e.type IN ({}) \
             ORDER BY e.at, e.run_id, e.seq LIMIT $3",
            kinds.join(", ")
        );
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(&sql)
                .bind(project)
                .bind(since)
                .bind(limit)
                .fetch_all(p)
                .await
                .map_err(q("read project events"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let run: String = r.try_get("run_id").map_err(q("read events"))?;
                let run: RunId = run.parse().map_err(|_| StoreError::Corrupt {
                    what: "event run id",
                    why: run.clone(),
                })?;
                out.push(event_from_row!(r, run));
            }
            Ok(out)
        })
    }

    /// The last sequence number of `run`'s events before `at` (ms); 0 when none is.
    ///
    /// # Errors
    /// Query failures.
    pub async fn seq_before(&self, run: RunId, at: i64) -> Result<i64, StoreError> {
        with_pool!(self, |p, _b| {
            let n: Option<i64> =
                sqlx::query_scalar("SELECT MAX(seq) FROM events WHERE run_id = $1 AND at < $2")
                    .bind(run.to_string())
                    .bind(at)
                    .fetch_one(p)
                    .await
                    .map_err(q("read events"))?;
            Ok(n.unwrap_or(0))
        })
    }

    /// The runs of `project` that have not ended (pending, running or waiting) or ended at
    /// or after `ended_since` (ms).
    ///
    /// # Errors
    /// Query failures and undecodable ids.
    pub async fn live_project_runs(
        &self,
        project: &str,
        ended_since: i64,
    ) -> Result<Vec<RunId>, StoreError> {
        // Two reads the partial indexes of open and of finished runs answer, so the cost
        // follows the runs in flight, not a project's history; the project is picked here.
        let sql = "SELECT id, project FROM runs WHERE status IN ('pending', 'running', 'waiting') \
                   UNION ALL SELECT id, project FROM runs \
                   WHERE pruned_at IS NULL AND finished_at IS NOT NULL AND finished_at >= $1";
        with_pool!(self, |p, _b| {
            let rows: Vec<(String, String)> = sqlx::query_as(sql)
                .bind(ended_since)
                .fetch_all(p)
                .await
                .map_err(q("list live runs"))?;
            rows.iter()
                .filter(|(_, of)| of == project)
                .map(|(id, _)| {
                    id.parse().map_err(|_| StoreError::Corrupt {
                        what: "run id",
                        why: id.clone(),
                    })
                })
                .collect()
        })
    }
}
