//! A task's way through the run, as events and rows: ready, handed to the supervisor with
//! its inputs resolved, started by an agent, then succeeded (its dependents become ready),
//! retried, failed (its dependents skipped) or cancelled. What changes is decided by
//! `state.rs`; this turns it into the run's log.

use super::state::AfterFailure;
use super::{After, Coordinator, Mode};
use crate::domain::event::{payload, EventData};
use crate::domain::graph::TaskGraph;
use crate::domain::plan::{Decompose, Form};
use crate::domain::reference;
use crate::domain::time::now_ms;
use crate::domain::{FailureKind, RunStatus, TaskStatus};
use crate::models::Caller;
use crate::runtime::messages::{AttemptError, Delegate, TaskAttempted, TaskStarted};
use crate::runtime::model_sink::TaskSink;
use crate::runtime::scoring::TaskNeeds;
use crate::store::StoredBlob;
use crate::tools::decompose::{Decomposer, Planning, Step};
use crate::tools::{Link, ModelAccess, Tool, ToolOutput};
use actix::prelude::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

impl Coordinator {
    pub(super) fn make_ready(&mut self, i: usize, ctx: &mut Context<Self>) {
        if !self.set_status(i, TaskStatus::Ready) {
            return;
        }
        self.state.task_mut(i).ready_at = Some(Instant::now());
        self.emit(Some(i), EventData::TaskReady(payload::TaskReady {}));
        self.write_row(i);
        self.dispatch(i, ctx);
    }

    /// Makes task `i` ready now, or once the write budget allows.
    pub(super) fn ready_or_defer(&mut self, i: usize, ctx: &mut Context<Self>) {
        if self.over_budget() {
            self.deferred.push_back(i);
        } else {
            self.make_ready(i, ctx);
        }
    }

    pub(super) fn dispatch(&mut self, i: usize, ctx: &mut Context<Self>) {
        let t = self.state.task(i);
        if self.mode != Mode::Running || t.status != TaskStatus::Ready || t.dispatched {
            return;
        }
        if self.over_budget() {
            self.deferred.push_back(i);
            return;
        }
        let graph = self.state.graph().clone();
        let spec = graph.task(i);
        let refs = self.state.refs(&self.s.inputs);
        let inputs = match reference::resolve_map(graph.inputs(i), &refs, reference::all) {
            Ok(v) => v,
            Err(e) => {
                return self.fail(i, AttemptError::new(FailureKind::Input, e.to_string()), ctx)
            }
        };
        let tool: Arc<dyn Tool> = match graph.decompose(i) {
            Some(d) => {
                if let Some(chain) = repeated_decomposition(&graph, i, d) {
                    let msg = format!(
                        "delegation_cycle: `{}` repeats the decomposition of its ancestor `{}` ({chain})",
                        spec.key,
                        chain.split(" -> ").next().unwrap_or_default()
                    );
                    return self.fail(i, AttemptError::new(FailureKind::DelegationCycle, msg), ctx);
                }
                let step = match d.form() {
                    Ok(Form::Planner { goal }) => {
                        let limit = self.s.shared.options.limits.max_subtasks;
                        Step::Plan(Box::new(Planning {
                            parent: spec.key.to_string(),
                            goal: goal.to_string(),
                            plan: graph.plan().clone(),
                            inputs: self.s.inputs.clone(),
                            names: self.scope_names(i, false),
                            most: d.max_subtasks.map_or(limit, |m| m.min(limit)),
                        }))
                    }
                    _ => Step::Accept,
                };
                Arc::new(Decomposer { step })
            }
            None => {
                if let Some(problems) = self.s.shared.tools.input_errors(&spec.tool, &inputs) {
                    if let Some((pointer, message)) = problems.into_iter().next() {
                        let msg = format!(
                            "inputs of tool `{}` are invalid at `{pointer}`: {message}",
                            spec.tool
                        );
                        return self.fail(i, AttemptError::new(FailureKind::Input, msg), ctx);
                    }
                }
                match self.s.shared.tools.get(&spec.tool) {
                    Some(tool) => tool,
                    None => {
                        let msg = format!("unknown tool `{}`", spec.tool);
                        return self.fail(i, AttemptError::new(FailureKind::Input, msg), ctx);
                    }
                }
            }
        };
        // A subtask's parent agent is the agent that decomposed its parent; a task of the
        // plan's, the agent of its first dependency.
        let parent_agent = match spec.parent {
            Some(p) => self.state.task(p).agent.clone(),
            None => spec
                .deps
                .first()
                .and_then(|&d| self.state.task(d).agent.clone()),
        };
        let cancel = CancellationToken::new();
        let attempt = self.state.begin_attempt(i, cancel.clone());
        // The attempt number is committed before the attempt starts, so a crash never makes
        // two attempts with one number.
        self.write_row(i);
        let sink = self.task_sink(i, ctx);
        self.delegates.push(Delegate {
            corr: self.corr(Some(i)),
            index: i,
            attempt,
            tool,
            inputs,
            timeout: spec.timeout,
            cancel,
            workspace: self.s.workspace.clone(),
            idempotency_key: format!("nofx-{}-{}", self.s.run, spec.key),
            priority: spec.priority,
            needs: TaskNeeds {
                capabilities: spec.capabilities.clone(),
                complexity: spec.complexity,
                parent_agent,
            },
            models: ModelAccess::new(
                self.s.shared.models.clone(),
                self.caller(i, &spec.tool),
                sink.clone(),
            ),
            link: Link(sink),
            reply: self.reply.clone(),
        });
    }

    /// Task `i`'s link to this run (its model calls report there; its loop journals there).
    pub(super) fn task_sink(&self, i: usize, ctx: &Context<Self>) -> Arc<TaskSink> {
        Arc::new(TaskSink {
            coordinator: ctx.address().recipient(),
            corr: self.corr(Some(i)),
            index: i,
            shared: self.s.shared.clone(),
            workspace: self.s.workspace.clone(),
        })
    }

    /// Model access for task `i` calling as `tool`.
    pub(super) fn model_access(&self, i: usize, tool: &str, ctx: &Context<Self>) -> ModelAccess {
        ModelAccess::new(
            self.s.shared.models.clone(),
            self.caller(i, tool),
            self.task_sink(i, ctx),
        )
    }

    /// Who calls models for task `i` as `tool`.
    fn caller(&self, i: usize, tool: &str) -> Caller {
        let spec = self.state.graph().task(i);
        let agent = self.state.task(i).agent.clone();
        Caller {
            run: Some(self.s.run),
            task: Some(self.state.key(i).clone()),
            correlation: self.s.corr.clone(),
            tool: tool.to_string(),
            role: agent
                .as_ref()
                .and_then(|a| self.s.shared.agents.iter().find(|s| &s.id == a))
                .map(|s| s.role),
            agent,
            priority: spec.priority,
            capabilities: spec.capabilities.clone(),
            project: self.s.project.clone(),
        }
    }

    /// Whether new work should wait: too many rows wait for a commit, or a checkpoint is
    /// reading the workspace.
    pub(super) fn over_budget(&self) -> bool {
        self.pausing || self.out.over_budget()
    }

    /// Takes up work held back by the write budget: tasks to mark ready, attempts to dispatch.
    pub(super) fn pump_deferred(&mut self, ctx: &mut Context<Self>) {
        let mut sent = false;
        while !self.over_budget() {
            let Some(i) = self.deferred.pop_front() else {
                break;
            };
            match self.state.task(i).status {
                TaskStatus::Pending => self.make_ready(i, ctx),
                _ => self.dispatch(i, ctx),
            }
            sent = true;
        }
        if sent {
            self.flush(ctx, None);
        }
    }

    /// Records the metrics row of the attempt that just ended (if one ran).
    pub(super) fn record_attempt(&mut self, i: usize, failure: Option<FailureKind>) {
        let Some((duration_ms, ended_at)) = self.state.task_mut(i).attempt_ms.take() else {
            return;
        };
        self.out.attempt_metric(
            self.state.graph().task(i),
            self.state.task(i),
            duration_ms,
            failure,
            ended_at,
        );
    }

    pub(super) fn push_artifacts(&mut self, i: usize, artifacts: Vec<(String, StoredBlob)>) {
        let key = self.state.key(i).clone();
        self.out.artifacts(&key, artifacts, now_ms());
    }

    pub(super) fn succeed(&mut self, i: usize, output: ToolOutput, ctx: &mut Context<Self>) {
        let unblocked = match self.state.succeed(i, output.outputs, now_ms()) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(parent: &self.span, task = %self.state.key(i), error = %e, "ignored transition");
                return;
            }
        };
        self.record_attempt(i, None);
        let t = self.state.task(i);
        let data = EventData::TaskSucceeded(payload::TaskSucceeded {
            attempt: t.attempt,
            agent: t.agent.clone(),
        });
        self.push_artifacts(i, output.artifacts);
        self.emit(Some(i), data);
        self.write_row(i);
        self.write_skipped(unblocked.skipped);
        // An automatic checkpoint due now sees the workspace as this task left it: what
        // becomes ready waits (as for the write budget) until the files are read.
        let every = self.s.checkpoints.every as usize;
        let step = self.state.succeeded();
        if every > 0
            && self.state.open() > 0
            && self.mode == Mode::Running
            && step >= self.checkpointed_at + every
        {
            self.checkpointed_at = step;
            self.checkpoint_due = Some(i);
            self.pausing = true;
        }
        // Dependents that this success makes ready are written in the same transaction; they
        // are handed to agents only once it commits (with the success).
        if self.mode == Mode::Running {
            for d in unblocked.ready {
                self.ready_or_defer(d, ctx);
            }
        }
        self.flush(ctx, Some(After::TaskDone(i, true)));
    }

    /// Fails the task, or schedules a retry when its policy allows one.
    pub(super) fn fail(&mut self, i: usize, err: AttemptError, ctx: &mut Context<Self>) {
        let attempt = self.state.task(i).attempt;
        self.state.task_mut(i).dispatched = false;
        self.record_attempt(i, Some(err.kind));
        if !err.outputs.is_empty() {
            self.state.task_mut(i).outputs = Some(Value::Object(err.outputs.clone()));
        }
        self.push_artifacts(i, err.artifacts.clone());
        let running = self.mode == Mode::Running;
        if let AfterFailure::Retry { backoff_ms } = self.state.after_failure(i, err.kind, running) {
            self.state.retry(i, &err.message, now_ms());
            self.emit(
                Some(i),
                EventData::TaskRetrying(payload::TaskRetrying {
                    attempt,
                    error: err.message.clone(),
                    error_type: err.kind,
                    backoff_ms,
                }),
            );
            self.write_row(i);
            self.flush(ctx, None);
            ctx.run_later(Duration::from_millis(backoff_ms), move |act, ctx| {
                act.dispatch(i, ctx);
                act.flush(ctx, None);
            });
            return;
        }
        // While the run stops, an attempt that ends (the stop reached it, or it failed on its
        // own meanwhile) ends as cancelled.
        if matches!(self.mode, Mode::Stopping { .. }) {
            self.cancel_task(i);
            self.flush(ctx, Some(After::TaskDone(i, false)));
            return;
        }
        let unblocked = match self.state.fail(i, &err.message, now_ms()) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(parent: &self.span, task = %self.state.key(i), error = %e, "ignored transition");
                return;
            }
        };
        self.emit(
            Some(i),
            EventData::TaskFailed(payload::TaskFailed {
                attempt,
                error: err.message.clone(),
                error_type: err.kind,
            }),
        );
        self.write_row(i);
        self.write_skipped(unblocked.skipped);
        // A task that runs when a dependency failed (an undo) is ready now.
        if self.mode == Mode::Running {
            for d in unblocked.ready {
                self.ready_or_defer(d, ctx);
            }
        }
        self.flush(ctx, Some(After::TaskDone(i, false)));
        if err.kind == FailureKind::BudgetExceeded {
            // The next model call would pass a budget: nothing else of this run may spend.
            self.stop_run(RunStatus::Failed, "budget_exceeded".into(), ctx);
        }
    }

    /// The events and rows of tasks a task's end skipped.
    fn write_skipped(&mut self, skipped: Vec<(usize, String)>) {
        for (d, reason) in skipped {
            self.emit(Some(d), EventData::TaskSkipped(payload::Reason { reason }));
            self.write_row(d);
        }
    }

    pub(super) fn cancel_task(&mut self, i: usize) {
        let reason = match &self.mode {
            Mode::Stopping { reason, .. } => reason.clone(),
            _ => "cancelled".to_string(),
        };
        if self.state.cancel(i, &reason, now_ms()) {
            self.emit(
                Some(i),
                EventData::TaskCancelled(payload::Reason { reason }),
            );
            self.write_row(i);
        }
    }

    /// Whether an agent's report is about the attempt in flight of task `i` of this run,
    /// found in `status`: reports of older attempts, or after the run halted, are dropped.
    fn reports_current(
        &self,
        corr: &crate::domain::Correlation,
        i: usize,
        attempt: u32,
        status: TaskStatus,
    ) -> bool {
        if !self.owns(corr, i) {
            return false;
        }
        let t = self.state.task(i);
        self.mode != Mode::Halted && t.attempt == attempt && t.status == status
    }
}

impl Handler<TaskStarted> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: TaskStarted, ctx: &mut Context<Self>) {
        let i = msg.index;
        if !self.reports_current(&msg.corr, i, msg.attempt, TaskStatus::Ready) {
            return;
        }
        if self.state.started(i, &msg.agent, now_ms()).is_err() {
            return;
        }
        let attempt = msg.attempt;
        self.emit(
            Some(i),
            EventData::TaskDelegated(payload::TaskDelegated {
                agent: msg.agent.clone(),
                attempt,
                candidates: msg.candidates,
            }),
        );
        self.emit(
            Some(i),
            EventData::TaskStarted(payload::TaskStarted {
                agent: msg.agent,
                attempt,
            }),
        );
        self.write_row(i);
        // The attempt number is already committed; these events can wait a moment, so a
        // quick task's start and result go to the store together.
        self.flush_soon(ctx);
    }
}

impl Handler<TaskAttempted> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: TaskAttempted, ctx: &mut Context<Self>) {
        let i = msg.index;
        if !self.reports_current(&msg.corr, i, msg.attempt, TaskStatus::Running) {
            return;
        }
        self.state.task_mut(i).attempt_ms = Some((msg.duration_ms, msg.ended_at));
        if let Some(s) = self.suspensions.remove(&i) {
            if s.attempt == msg.attempt && self.mode == Mode::Running {
                return self.suspend(i, s, ctx);
            }
        }
        let graph = self.state.graph().clone();
        match msg.result {
            Err(e) => self.fail(i, e, ctx),
            Ok(output) if graph.decompose(i).is_some() && !self.state.is_decomposed(i) => {
                self.decompose(i, output, ctx)
            }
            Ok(output) if graph.task(i).gates.is_empty() => self.succeed(i, output, ctx),
            Ok(output) => self.check_gates(i, output, ctx),
        }
    }
}

/// When decomposed task `i` asks for the same sub-plan (with the same inputs) as a task on
/// its ancestor chain: the chain from that ancestor down to `i`.
fn repeated_decomposition(graph: &TaskGraph, i: usize, d: &Decompose) -> Option<String> {
    let chain: Vec<usize> = graph.ancestry(i).collect();
    let at = chain.iter().skip(1).position(|&a| {
        graph
            .decompose(a)
            .is_some_and(|other| other.same_work(d) && graph.inputs(a) == graph.inputs(i))
    })?;
    let names: Vec<&str> = chain[..at + 2]
        .iter()
        .rev()
        .map(|&a| graph.task(a).key.as_str())
        .collect();
    Some(names.join(" -> "))
}
