//! Decisions on manual approvals. A decision is recorded on the task's wait row (the first
//! one wins, exactly once), then the run's coordinator — here, or in the process that owns
//! the run — applies it.

use super::{messages, RunHandle, Runtime, RuntimeError};
use crate::domain::{ApprovalDecision, RunId, TaskStatus};
use crate::store::WaitRow;

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
    ) -> Result<WaitRow, RuntimeError> {
        let by = decision.by.trim();
        if by.is_empty() {
            return Err(RuntimeError::NotApprover(
                "a decision needs the name of who decides".into(),
            ));
        }
        let store = self.store();
        let record = store.run(run).await?;
        if !record.plan.tasks.iter().any(|t| t.id == task) {
            return Err(RuntimeError::NoSuchTask(format!(
                "run {run} has no task `{task}`"
            )));
        }
        let row = store
            .tasks(run)
            .await?
            .into_iter()
            .find(|t| t.task_id.as_str() == task);
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
        Ok(WaitRow {
            decision: Some(what),
            decided_by: Some(by.into()),
            reason: reason.map(str::to_string),
            decided_at: Some(now),
            ..wait
        })
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
    ) -> Result<WaitRow, RuntimeError> {
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
    ) -> Result<WaitRow, RuntimeError> {
        self.decide(task, false, by, reason).await
    }

    async fn decide(
        &self,
        task: &str,
        approve: bool,
        by: &str,
        reason: Option<&str>,
    ) -> Result<WaitRow, RuntimeError> {
        let decision = Decision {
            approve,
            by: by.to_string(),
            reason: reason.map(str::to_string),
        };
        self.rt.decide(self.id(), task, decision).await
    }
}
