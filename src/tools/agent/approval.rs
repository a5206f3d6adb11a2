//! Tool calls that wait for a person: a call the agent's `require_approval` covers is
//! committed `waiting` with its wait id (and `tool.approval.requested`) in its turn's
//! commit; the attempt then stops and the task waits on that id, as a manual gate's does,
//! surviving restarts. Once someone decides, the task runs again, its loop is rebuilt from
//! the journal and the decision applied: approved, the call runs; declined, the model is
//! told "the call was declined: REASON".

use super::offers::covers;
use super::{Loop, LoopState};
use crate::domain::approval::{ApprovalDecision, WaitKind};
use crate::domain::event::payload::{ToolApprovalDecided, ToolApprovalRequested};
use crate::domain::plan::OnTimeout;
use crate::domain::EventData;
use crate::store::{CallRecord, CallStatus, WaitRow};
use crate::tools::ToolError;
use serde_json::{json, Map};

impl Loop<'_> {
    /// Whether a call of `tool` waits for a person's decision.
    pub(super) fn needs_approval(&self, tool: &str) -> bool {
        self.spec.require_approval.iter().any(|p| covers(p, tool))
    }

    pub(super) fn approval_requested(&self, c: &CallRecord) -> EventData {
        EventData::ToolApprovalRequested(ToolApprovalRequested {
            of: self.of.clone(),
            wait_id: c.wait_id.clone().unwrap_or_default(),
            call_id: c.call_id.clone(),
            tool: c.tool.clone().unwrap_or_else(|| c.name.clone()),
            input: super::event_value(&c.input),
        })
    }

    /// Applies the decision on the first call of the last turn still waiting; with none
    /// yet, stops the attempt so the task waits for it. Returns whether a call was settled.
    pub(super) async fn settle_waiting(&self, st: &mut LoopState) -> Result<bool, ToolError> {
        let Some(mut c) = st
            .pending()
            .find(|c| c.status == CallStatus::Waiting)
            .cloned()
        else {
            return Ok(false);
        };
        let Some(wait_id) = c.wait_id.clone() else {
            return Ok(false);
        };
        let link = &self.ctx.link.0;
        let waits = link
            .store()
            .waits(st.rec.run_id)
            .await
            .map_err(|e| ToolError::Io(e.to_string()))?;
        let decided = waits
            .into_iter()
            .find(|w| w.id == wait_id)
            .filter(|w| w.decision.is_some());
        let Some(w) = decided else {
            return Err(self.suspend(st, &c).await);
        };
        let decision = w.decision.unwrap_or(ApprovalDecision::Reject);
        let by = w.decided_by.clone().unwrap_or_default();
        let mut events = vec![EventData::ToolApprovalDecided(ToolApprovalDecided {
            of: self.of.clone(),
            wait_id,
            call_id: c.call_id.clone(),
            tool: c.tool.clone().unwrap_or_else(|| c.name.clone()),
            decision,
            by: by.clone(),
            reason: w.reason.clone(),
        })];
        let now = crate::domain::time::now_ms();
        let mut rows = crate::store::Batch::default();
        if decision == ApprovalDecision::Approve {
            c.status = CallStatus::Started;
            c.started_at = Some(now);
            events.push(self.called(&c, false));
            rows.tool_calls.push(c.clone());
            self.commit(rows, events).await?;
            st.record(c.clone());
            self.run_calls(st, vec![c]).await?;
        } else {
            c.duration_ms = Some(0);
            let why = format!(
                "the call was declined: {}",
                w.reason
                    .as_deref()
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or("no reason given")
            );
            let c = super::calls::ended(c, CallStatus::Declined, why);
            events.push(self.returned(&c));
            rows.tool_calls.push(c.clone());
            self.commit(rows, events).await?;
            st.record(c);
        }
        Ok(true)
    }

    /// Has the task wait on the call's wait id once this attempt ends; the error ends it.
    async fn suspend(&self, st: &LoopState, c: &CallRecord) -> ToolError {
        let tool = c.tool.clone().unwrap_or_else(|| c.name.clone());
        let wait = WaitRow {
            id: c.wait_id.clone().unwrap_or_default(),
            run_id: st.rec.run_id,
            task_id: st.rec.task_id.clone(),
            attempt: i64::from(self.ctx.attempt),
            kind: WaitKind::ToolCall,
            approvers: Vec::new(),
            deadline_at: None,
            on_timeout: OnTimeout::Reject,
            requested_at: crate::domain::time::now_ms(),
            decision: None,
            decided_by: None,
            reason: None,
            decided_at: None,
            question: None,
        };
        let mut outputs = Map::new();
        outputs.insert(
            "approval".into(),
            json!({"tool": tool, "callId": c.call_id, "input": super::event_value(&c.input), "waitId": wait.id}),
        );
        let _ = self
            .ctx
            .link
            .0
            .suspend(crate::tools::Suspension {
                attempt: self.ctx.attempt,
                waits: vec![wait],
                events: Vec::new(),
                outputs,
            })
            .await;
        ToolError::Io(format!(
            "the agent's call of `{tool}` waits for a person's decision (nofx approve|reject)"
        ))
    }
}
