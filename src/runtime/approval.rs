//! Decisions on manual approvals. A decision is recorded on the task's wait row (the first
//! one wins, exactly once), then the run's coordinator — here, or in the process that owns
//! the run — applies it.

use super::{messages, RunHandle, Runtime, RuntimeError};
use crate::domain::approval::WaitKind;
use crate::domain::plan::OnTimeout;
use crate::domain::time::rfc3339;
use crate::domain::{ApprovalDecision, RunId, TaskStatus, WaitId};
use crate::store::WaitRow;
use serde::Serialize;

/// A task's wait for a person's decision, as decided: the same document for
/// `POST /runs/{id}/tasks/{task}/approval` and `nofx approve --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Approval {
    /// Id, `wait-…`.
    pub id: WaitId,
    /// The run.
    pub run_id: RunId,
    /// The task.
    pub task_id: String,
    /// The attempt whose outputs waited for the decision.
    pub attempt: i64,
    /// What it waited for.
    pub kind: WaitKind,
    /// Who may decide (anyone when empty).
    pub approvers: Vec<String>,
    /// When `on_timeout` decides (RFC 3339).
    pub deadline_at: Option<String>,
    /// The decision taken at the deadline.
    pub on_timeout: OnTimeout,
    /// When the wait began (RFC 3339).
    pub requested_at: String,
    /// The decision.
    pub decision: Option<ApprovalDecision>,
    /// Who decided (`timeout` for the deadline's default).
    pub decided_by: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// When (RFC 3339).
    pub decided_at: Option<String>,
}

impl From<WaitRow> for Approval {
    fn from(w: WaitRow) -> Self {
        Self {
            id: w.id,
            run_id: w.run_id,
            task_id: w.task_id,
            attempt: w.attempt,
            kind: w.kind,
            approvers: w.approvers,
            deadline_at: w.deadline_at.map(rfc3339),
            on_timeout: w.on_timeout,
            requested_at: rfc3339(w.requested_at),
            decision: w.decision,
            decided_by: w.decided_by,
            reason: w.reason,
            decided_at: w.decided_at.map(rfc3339),
        }
    }
}

/// A person's decision on a task waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Approve (the task succeeds with its outputs) or reject (it fails).
    pub approve: bool,
    /// Who decides; must be one of the gate's approvers when it names any.
    pub by: String,
    /// Why.
    pub reason: Option<String>,
}

impl Runtime {
    /// Records a decision on task `task` of `run`, which must be waiting for approval, and
    /// has the run's owner apply it. Returns the decided wait.
    ///
    /// # Errors
    /// `NoSuchTask` (unknown run or task); `NotWaiting` when the task is not waiting or the
    /// wait was already decided; `NotApprover` when `by` may not decide; store failures.
    ///
    /// # Cancel safety
    /// Once the decision is recorded it stands; the owner also finds it when it next reads
    /// the run's waits (on resume).
    pub async fn decide(
        &self,
        run: RunId,
        task: &str,
        decision: Decision,
    ) -> Result<Approval, RuntimeError> {
        let by = decision.by.trim();
        if by.is_empty() {
            return Err(RuntimeError::NotApprover(
                "a decision needs the name of who decides".into(),
            ));
        }
        let store = self.store();
        let record = store.run(run).await?;
        if !store.has_task(&record, task).await? {
            return Err(RuntimeError::NoSuchTask(format!(
                "run {run} has no task `{task}`"
            )));
        }
        let row = store.task(run, task).await?;
        let status = row.map_or(TaskStatus::Pending, |t| t.status);
        let wait = store.last_wait(run, task).await?;
        let decided = |w: &WaitRow| {
            RuntimeError::NotWaiting(format!(
                "task `{task}` of run {run} was already decided: {} by {}",
                w.decision.as_deref().unwrap_or("?"),
                w.decided_by.as_deref().unwrap_or("?")
            ))
        };
        let wait = match wait {
            Some(w) if w.kind == WaitKind::Question => {
                return Err(RuntimeError::NotWaiting(format!(
                    "task `{task}` of run {run} waits for answers to its questions, not for a decision (nofx answer)"
                )))
            }
            Some(w) if w.decision.is_some() => return Err(decided(&w)),
            Some(w) if status == TaskStatus::Waiting && !record.status.is_terminal() => w,
            _ => {
                return Err(RuntimeError::NotWaiting(format!(
                    "task `{task}` of run {run} is not waiting for approval (it is {status})"
                )))
            }
        };
        if !wait.may_decide(by) {
            return Err(RuntimeError::NotApprover(format!(
                "{by} may not decide on task `{task}`; its approvers: {}",
                wait.approvers.join(", ")
            )));
        }
        let what = if decision.approve {
            ApprovalDecision::Approve
        } else {
            ApprovalDecision::Reject
        };
        let now = crate::domain::time::now_ms();
        let reason = decision.reason.as_deref().filter(|r| !r.trim().is_empty());
        if !store.decide_wait(&wait.id, what, by, reason, now).await? {
            let w = store.last_wait(run, task).await?.unwrap_or(wait);
            return Err(decided(&w));
        }
        self.inner
            .node
            .send(messages::Wake(run))
            .await
            .map_err(|_| RuntimeError::Stopped)??;
        Ok(Approval::from(WaitRow {
            decision: Some(what),
            decided_by: Some(by.into()),
            reason: reason.map(str::to_string),
            decided_at: Some(now),
            ..wait
        }))
    }
}

impl RunHandle {
    /// Approves task `task`, waiting on a manual gate, as `by`.
    ///
    /// # Errors
    /// As [`Runtime::decide`].
    pub async fn approve(
        &self,
        task: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Approval, RuntimeError> {
        self.decide(task, true, by, reason).await
    }

    /// Rejects task `task`, waiting on a manual gate, as `by`: the task fails.
    ///
    /// # Errors
    /// As [`Runtime::decide`].
    pub async fn reject(
        &self,
        task: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Approval, RuntimeError> {
        self.decide(task, false, by, reason).await
    }

    async fn decide(
        &self,
        task: &str,
        approve: bool,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Approval, RuntimeError> {
        let decision = Decision {
            approve,
            by: by.to_string(),
            reason: reason.map(str::to_string),
        };
        self.rt.decide(self.id(), task, decision).await
    }
}
