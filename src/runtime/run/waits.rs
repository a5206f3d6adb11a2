//! Approvals of one run: a task's result held for a person's decision (the wait row, the
//! waiting task row and `approval.requested` commit together), deadlines that decide by the
//! gate's `on_timeout`, decisions read from the store and applied, and the run's `waiting`
//! status while nothing else of it can run.

use super::{After, Coordinator, Mode};
use crate::domain::approval::{ApprovalDecision, WaitKind};
use crate::domain::event::{payload, EventData};
use crate::domain::plan::GateSpec;
use crate::domain::time::{from_ms, now_ms};
use crate::domain::WaitId;
use crate::domain::{FailureKind, RunStatus, TaskStatus};
use crate::runtime::messages::AttemptError;
use crate::store::{RunUpdate, WaitRow};
use crate::tools::ToolOutput;
use actix::prelude::*;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

impl Coordinator {
    /// Holds task `i`'s result for a person's decision: the wait row, the task row (waiting,
    /// with its outputs) and `approval.requested` commit together.
    pub(super) fn request_approval(
        &mut self,
        i: usize,
        gate_number: usize,
        gate: &GateSpec,
        output: ToolOutput,
        ctx: &mut Context<Self>,
    ) {
        let GateSpec::Manual {
            approvers,
            timeout_s,
            on_timeout,
        } = gate
        else {
            return;
        };
        let now = now_ms();
        let id = WaitId::new();
        let attempt = match self.state.hold(i, output.outputs, id.clone(), now) {
            Ok(attempt) => attempt,
            Err(e) => {
                tracing::warn!(parent: &self.span, task = %self.state.key(i), error = %e, "ignored transition");
                return;
            }
        };
        self.has_waits = true;
        self.record_attempt(i, None);
        self.push_artifacts(i, output.artifacts);
        let deadline = timeout_s.map(|s| now + (s * 1000.0).round() as i64);
        self.out.batch().waits.push(WaitRow {
            id: id.clone(),
            run_id: self.s.run,
            task_id: self.state.key(i).to_string(),
            attempt: i64::from(attempt),
            kind: WaitKind::Approval,
            approvers: approvers.clone(),
            deadline_at: deadline,
            on_timeout: *on_timeout,
            requested_at: now,
            decision: None,
            decided_by: None,
            reason: None,
            decided_at: None,
            question: None,
        });
        self.emit(
            Some(i),
            EventData::ApprovalRequested(payload::ApprovalRequested {
                wait_id: id,
                gate: gate_number,
                attempt,
                approvers: approvers.clone(),
                deadline: deadline.map(from_ms),
                on_timeout: *on_timeout,
                outputs: self.state.task(i).outputs.clone(),
            }),
        );
        self.write_row(i);
        self.flush(ctx, Some(After::Waiting(i, deadline)));
    }

    /// Task `i`'s attempt stopped to wait for a person (a decision on one of its agent's
    /// tool calls, answers to its questions): the wait rows, their events and the waiting
    /// task row commit together; once settled the task runs again and reads the outcome.
    pub(super) fn suspend(
        &mut self,
        i: usize,
        s: crate::tools::Suspension,
        ctx: &mut Context<Self>,
    ) {
        let Some(first) = s.waits.iter().find(|w| w.is_open()).or(s.waits.first()) else {
            return;
        };
        let (id, deadline) = (first.id.clone(), first.deadline_at);
        let questions = first.kind == WaitKind::Question;
        if let Err(e) = self.state.hold(i, s.outputs, id, now_ms()) {
            tracing::warn!(parent: &self.span, task = %self.state.key(i), error = %e, "ignored transition");
            return;
        }
        self.has_waits = true;
        self.record_attempt(i, None);
        for data in s.events {
            self.emit(Some(i), data);
        }
        self.out.batch().waits.extend(s.waits);
        self.write_row(i);
        let after = if questions {
            After::Asked
        } else {
            After::Waiting(i, deadline)
        };
        self.flush(ctx, Some(after));
    }

    /// At a question's deadline its default answers it, unless someone answered first (the
    /// store keeps whichever answer came first); then the run's waits are read again.
    fn arm_question(&mut self, w: &WaitRow, ctx: &mut Context<Self>) {
        let Some(at) = w.deadline_at else {
            return;
        };
        if !self.armed.insert(w.id.clone()) {
            return;
        }
        let left = Duration::from_millis((at - now_ms()).max(0) as u64);
        let (id, task) = (w.id.clone(), w.task_id.clone());
        let scope = w
            .question
            .as_ref()
            .map(|q| q.scope.clone())
            .unwrap_or_default();
        ctx.run_later(left, move |act, ctx| {
            act.armed.remove(&id);
            if act.mode != Mode::Running {
                return;
            }
            let store = act.s.shared.store.clone();
            let run = act.s.run;
            let fut = async move {
                let rows = store.asked(run, &task, &scope).await?;
                let Some(row) = rows.iter().find(|r| r.id == id && r.is_open()) else {
                    return Ok(false);
                };
                let settled = crate::runtime::questions::by_default(row, &rows, "timeout", true);
                store.answer_question(&id, &settled, now_ms()).await
            };
            ctx.spawn(fut.into_actor(act).map(|res: Result<bool, crate::store::StoreError>, act, ctx| {
                if let Err(e) = res {
                    tracing::warn!(parent: &act.span, error = %e, "could not record a question's timeout; reading the waits again");
                }
                act.check_waits(ctx);
            }));
        });
    }

    /// Task `i` waits on questions (`rows`, its question waits): announces each answer not
    /// yet announced (its event and its note commit together), arms the deadlines of the
    /// open ones, and once none is open has the task run again to read the answers.
    fn settle_questions(&mut self, i: usize, rows: Vec<WaitRow>, ctx: &mut Context<Self>) {
        let mut open = 0;
        for w in rows {
            let Some(q) = w.question.as_deref() else {
                continue;
            };
            if w.is_open() {
                open += 1;
                self.arm_question(&w, ctx);
                continue;
            }
            if q.noted
                || q.status == crate::domain::question::QuestionStatus::Skipped
                || self.announced.contains(&w.id)
            {
                continue;
            }
            if let Some(data) = crate::store::waits::settled_event(&w) {
                self.emit(Some(i), data);
                self.announced.insert(w.id.clone());
                self.out
                    .batch()
                    .noted_waits
                    .push((self.s.run, w.id.clone()));
            }
        }
        if open == 0 {
            self.run_again(i, ctx);
        }
    }

    /// At the deadline the wait's `on_timeout` decides, unless someone decided first (the
    /// store keeps whichever decision came first); then the decision is applied.
    pub(super) fn arm_deadline(
        &mut self,
        i: usize,
        wait: WaitId,
        at: i64,
        ctx: &mut Context<Self>,
    ) {
        let left = Duration::from_millis((at - now_ms()).max(0) as u64);
        ctx.run_later(left, move |act, ctx| {
            let t = act.state.task(i);
            if t.status != TaskStatus::Waiting || t.wait.as_ref() != Some(&wait) {
                return;
            }
            let store = act.s.shared.store.clone();
            let Some((decision, after)) =
                act.state.graph().task(i).gates.iter().find_map(|g| match g {
                    GateSpec::Manual {
                        on_timeout,
                        timeout_s,
                        ..
                    } => Some((*on_timeout, *timeout_s)),
                    _ => None,
                })
            else {
                return;
            };
            let reason = format!(
                "no decision within {}s",
                after.map(|s| s.to_string()).unwrap_or_default()
            );
            let fut = async move {
                store
                    .decide_wait(&wait, decision.into(), "timeout", Some(&reason), now_ms())
                    .await
            };
            ctx.spawn(fut.into_actor(act).map(|res, act, ctx| {
                if let Err(e) = res {
                    tracing::warn!(parent: &act.span, error = %e, "could not record a wait's timeout; retrying");
                }
                act.check_waits(ctx);
            }));
        });
    }

    /// Reads the run's waits and applies every decision to its waiting task; arms the
    /// deadline of the open ones; a waiting task without a wait row runs again.
    pub(super) fn check_waits(&mut self, ctx: &mut Context<Self>) {
        let store = self.s.shared.store.clone();
        let run = self.s.run;
        let fut = async move { store.waits(run).await };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            let rows = match res {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(parent: &act.span, error = %e, "reading waits failed; retrying in a second");
                    ctx.run_later(Duration::from_secs(1), |act, ctx| act.check_waits(ctx));
                    return;
                }
            };
            if act.mode != Mode::Running {
                return;
            }
            let mut of_task: HashMap<String, Vec<WaitRow>> = HashMap::new();
            for w in rows {
                of_task.entry(w.task_id.clone()).or_default().push(w);
            }
            for i in 0..act.state.len() {
                if act.state.task(i).status != TaskStatus::Waiting {
                    continue;
                }
                let mut waits = of_task.remove(act.state.key(i).as_str()).unwrap_or_default();
                match waits.last() {
                    None => {
                        act.run_again(i, ctx);
                    }
                    Some(w) if w.kind == WaitKind::Question => {
                        // The questions of the task's last ask: the rows of its scope.
                        let scope = w.question.as_ref().map(|q| q.scope.clone());
                        waits.retain(|w| {
                            w.kind == WaitKind::Question
                                && w.question.as_ref().map(|q| &q.scope) == scope.as_ref()
                        });
                        act.settle_questions(i, waits, ctx);
                    }
                    Some(w) if w.decision.is_some() => {
                        let w = waits.pop().expect("a last wait");
                        act.decided(i, w, ctx)
                    }
                    Some(w) => {
                        if act.state.task(i).wait.as_ref() != Some(&w.id) {
                            act.state.task_mut(i).wait = Some(w.id.clone());
                            if let Some(at) = w.deadline_at {
                                act.arm_deadline(i, w.id.clone(), at, ctx);
                            }
                        }
                    }
                }
            }
            act.flush(ctx, None);
        }));
    }

    /// Waiting task `i` runs again (its wait is over, or it has none): ready, written,
    /// dispatched.
    fn run_again(&mut self, i: usize, ctx: &mut Context<Self>) {
        self.state.task_mut(i).wait = None;
        self.set_status(i, TaskStatus::Ready);
        self.state.task_mut(i).ready_at = Some(Instant::now());
        self.write_row(i);
        self.dispatch(i, ctx);
    }

    /// Applies a decision: approved, the task succeeds with its held outputs; rejected, it
    /// fails (no retry).
    fn decided(&mut self, i: usize, w: WaitRow, ctx: &mut Context<Self>) {
        let Some(decision) = w.decision else {
            return;
        };
        if w.kind == WaitKind::ToolCall {
            // The agent's loop reads the decision (and logs it) when the task runs again.
            self.run_again(i, ctx);
            return;
        }
        let by = w.decided_by.clone().unwrap_or_default();
        self.state.task_mut(i).wait = None;
        self.emit(
            Some(i),
            EventData::ApprovalDecided(payload::ApprovalDecided {
                wait_id: w.id,
                decision,
                by: by.clone(),
                reason: w.reason.clone(),
                attempt: w.attempt,
            }),
        );
        if decision == ApprovalDecision::Approve {
            let outputs = match self.state.task(i).outputs.clone() {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            let output = ToolOutput {
                outputs,
                artifacts: Vec::new(),
            };
            self.succeed(i, output, ctx);
        } else {
            let why = match &w.reason {
                Some(r) if !r.is_empty() => format!("rejected by {by}: {r}"),
                _ => format!("rejected by {by}"),
            };
            self.fail(i, AttemptError::new(FailureKind::Rejected, why), ctx);
        }
    }

    /// Writes the run's status when its waits change it: `waiting` while a task waits for
    /// a decision and nothing else of the run can run, else `running`.
    pub(super) fn sync_run_status(&mut self) {
        if self.mode != Mode::Running {
            return;
        }
        let (want, waiting) = self.state.executing_status(!self.deferred.is_empty());
        if want == self.run_status {
            return;
        }
        self.run_status = want;
        self.out.batch().run_updates.push(RunUpdate {
            id: self.s.run,
            status: want,
            reason: None,
            started_at: None,
            finished_at: None,
            deadline_at: None,
        });
        if want == RunStatus::Waiting {
            self.emit(
                None,
                EventData::RunWaiting(payload::RunWaiting { tasks: waiting }),
            );
        }
    }
}
