//! Waits on people: a manual approval is a row naming who may answer and until when; the
//! first decision fills it, exactly once, whoever makes it (a person, or the deadline).

use super::{q, with_pool, Store, StoreError};
use crate::domain::approval::{ApprovalDecision, WaitKind};
use crate::domain::plan::OnTimeout;
use crate::domain::{RunId, WaitId};
use serde::Serialize;
use sqlx::Row;

/// A wait row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitRow {
    /// Id, `wait-…`.
    pub id: WaitId,
    /// The run.
    pub run_id: RunId,
    /// The task.
    pub task_id: String,
    /// The attempt whose outputs wait for the decision.
    pub attempt: i64,
    /// What it waits for.
    pub kind: WaitKind,
    /// Who may decide (anyone when empty).
    pub approvers: Vec<String>,
    /// When `on_timeout` decides (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::opt_ms")]
    pub deadline_at: Option<i64>,
    /// The decision taken at the deadline.
    pub on_timeout: OnTimeout,
    /// When the wait began (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub requested_at: i64,
    /// The decision, once decided.
    pub decision: Option<ApprovalDecision>,
    /// Who decided (`timeout` for the deadline's default).
    pub decided_by: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// When (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::opt_ms")]
    pub decided_at: Option<i64>,
}

impl WaitRow {
    /// Whether `name` may decide.
    pub fn may_decide(&self, name: &str) -> bool {
        self.approvers.is_empty() || self.approvers.iter().any(|a| a == name)
    }
}

const COLUMNS: &str = "id, run_id, task_id, attempt, kind, approvers, deadline_at, on_timeout, \
                       requested_at, decision, decided_by, reason, decided_at";

macro_rules! wait_from_row {
    ($r:expr) => {{
        let r = $r;
        let run: String = r.try_get("run_id").map_err(q("read wait"))?;
        let approvers: String = r.try_get("approvers").map_err(q("read wait"))?;
        let corrupt = |what: &'static str| move |why: String| StoreError::Corrupt { what, why };
        let kind: String = r.try_get("kind").map_err(q("read wait"))?;
        let on_timeout: String = r.try_get("on_timeout").map_err(q("read wait"))?;
        let decision: Option<String> = r.try_get("decision").map_err(q("read wait"))?;
        WaitRow {
            id: WaitId::from(r.try_get::<String, _>("id").map_err(q("read wait"))?),
            run_id: run.parse().map_err(|_| StoreError::Corrupt {
                what: "wait run id",
                why: run.clone(),
            })?,
            task_id: r.try_get("task_id").map_err(q("read wait"))?,
            attempt: r.try_get("attempt").map_err(q("read wait"))?,
            kind: WaitKind::parse(&kind).map_err(corrupt("wait kind"))?,
            approvers: serde_json::from_str(&approvers).map_err(|e| StoreError::Corrupt {
                what: "wait approvers",
                why: e.to_string(),
            })?,
            deadline_at: r.try_get("deadline_at").map_err(q("read wait"))?,
            on_timeout: OnTimeout::parse(&on_timeout).map_err(corrupt("wait on_timeout"))?,
            requested_at: r.try_get("requested_at").map_err(q("read wait"))?,
            decision: decision
                .map(|d| ApprovalDecision::parse(&d))
                .transpose()
                .map_err(corrupt("wait decision"))?,
            decided_by: r.try_get("decided_by").map_err(q("read wait"))?,
            reason: r.try_get("reason").map_err(q("read wait"))?,
            decided_at: r.try_get("decided_at").map_err(q("read wait"))?,
        }
    }};
}

impl Store {
    /// The waits of a run, oldest first.
    ///
    /// # Errors
    /// Query failures.
    pub async fn waits(&self, run: RunId) -> Result<Vec<WaitRow>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM waits WHERE run_id = $1 ORDER BY requested_at, id");
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(&sql)
                .bind(run.to_string())
                .fetch_all(p)
                .await
                .map_err(q("list waits"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(wait_from_row!(r));
            }
            Ok(out)
        })
    }

    /// The latest wait of a task, decided or not.
    ///
    /// # Errors
    /// Query failures.
    pub async fn last_wait(&self, run: RunId, task: &str) -> Result<Option<WaitRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM waits WHERE run_id = $1 AND task_id = $2 \
             ORDER BY requested_at DESC, id DESC LIMIT 1"
        );
        with_pool!(self, |p, _b| {
            match sqlx::query(&sql)
                .bind(run.to_string())
                .bind(task)
                .fetch_optional(p)
                .await
                .map_err(q("read wait"))?
            {
                Some(r) => Ok(Some(wait_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Records a decision on an undecided wait. Returns false when the wait was already
    /// decided (the first decision stands).
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn decide_wait(
        &self,
        id: &WaitId,
        decision: ApprovalDecision,
        by: &str,
        reason: Option<&str>,
        at: i64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE waits SET decision = $1, decided_by = $2, reason = $3, decided_at = $4 \
                   WHERE id = $5 AND decided_at IS NULL";
        with_pool!(self, |p, _b| {
            let done = sqlx::query(sql)
                .bind(decision.as_str())
                .bind(by)
                .bind(reason)
                .bind(at)
                .bind(id.as_str())
                .execute(p)
                .await
                .map_err(q("decide wait"))?;
            Ok(done.rows_affected() == 1)
        })
    }
}
