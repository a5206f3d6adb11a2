//! A run's coordinator: one actor per run. It owns the run's task states (`state.rs`, pure),
//! hands ready tasks to the supervisor, has gates check results (`gates.rs`), holds results
//! for people's decisions (`waits.rs`), and decides when the run has succeeded, failed or
//! been cancelled. Every change goes through its outbox (`outbox.rs`) to the persistence
//! actor; a task counts as finished (and its dependents become ready) only once its commit
//! returns. `lifecycle.rs` starts, stops, interrupts and ends the run and takes its
//! automatic checkpoints. This file is the actor: its state, commit scheduling and the
//! handlers of model activity and decisions.

mod gates;
mod hierarchy;
mod lifecycle;
mod merge;
mod outbox;
mod replan;
mod state;
mod tasks;
mod waits;

use super::gate::GateActor;
use super::messages::{Delegate, ModelActivity, Persist, RecheckWaits, Reply, RunEnded, Withdraw};
use super::persistence::Persistence;
use super::Shared;
use crate::domain::event::EventData;
use crate::domain::graph::TaskGraph;
use crate::domain::plan::CheckpointPolicy;
use crate::domain::time::now_ms;
use crate::domain::{Correlation, CorrelationId, RunId, RunStatus, TaskStatus};
use crate::store::{Batch, TaskRow};
use actix::prelude::*;
use outbox::Outbox;
use serde_json::{Map, Value};
use state::RunState;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

pub(crate) use hierarchy::replay;

/// How long start events may wait to share a commit with the task's result.
const START_LINGER: Duration = Duration::from_millis(20);

/// How a coordinator starts.
pub enum Start {
    /// A run that has not started: every task is pending.
    Fresh,
    /// A run that was executing when its process stopped: these are its stored task rows.
    Resume(Vec<TaskRow>),
    /// A run to cancel without executing anything (its owner is gone).
    CancelOnly(Vec<TaskRow>, String),
}

/// What a coordinator is told at start.
pub struct Setup {
    /// Shared services.
    pub shared: Arc<Shared>,
    /// The run.
    pub run: RunId,
    /// Its correlation id.
    pub corr: CorrelationId,
    /// Resolved plan inputs.
    pub inputs: Map<String, Value>,
    /// Workspace.
    pub workspace: PathBuf,
    /// Highest event seq already stored.
    pub last_seq: i64,
    /// Status in the store.
    pub status: RunStatus,
    /// Deadline (ms) when already fixed.
    pub deadline_at: Option<i64>,
    /// Plan timeout.
    pub timeout: Option<Duration>,
    /// How to start.
    pub start: Start,
    /// Where ready tasks go (the supervisor).
    pub delegate: Recipient<Delegate>,
    /// Where a stopping run withdraws its waiting tasks (the supervisor).
    pub withdraw: Recipient<Withdraw>,
    /// The writer.
    pub persistence: Addr<Persistence>,
    /// Gate actors by kind.
    pub gates: Arc<HashMap<&'static str, Addr<GateActor>>>,
    /// Told when the coordinator ends (the node).
    pub ended: Recipient<RunEnded>,
    /// The project billed for model calls.
    pub project: String,
    /// When to checkpoint without being asked.
    pub checkpoints: CheckpointPolicy,
}

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Running,
    /// Ending as `status` with `reason` once in-flight tasks stop.
    Stopping {
        status: RunStatus,
        reason: String,
    },
    /// The run's end is being committed.
    Finishing,
    /// Interrupted or abandoned: nothing more is written.
    Halted,
}

enum After {
    /// Hand these attempts to the supervisor: their attempt numbers are committed.
    Dispatch(Vec<Delegate>),
    TaskDone(usize, bool),
    /// The task's wait (and its event) is committed: checkpoint, arm the deadline.
    Waiting(usize, Option<i64>),
    /// A task's questions (and their events) are committed: arm their deadlines.
    Asked,
    RunDone,
    Interrupted(Option<oneshot::Sender<()>>),
    /// Tell a reasoning loop its journal rows are committed.
    Ack(oneshot::Sender<()>),
}

/// The coordinator actor.
pub struct Coordinator {
    s: Setup,
    state: RunState,
    out: Outbox,
    mode: Mode,
    /// Attempts waiting for their attempt number to be committed.
    delegates: Vec<Delegate>,
    /// What to do once the next flush commits.
    afters: Vec<After>,
    /// A flush is scheduled for the end of this burst of messages.
    flush_scheduled: bool,
    /// A lingering flush (for start events) is scheduled.
    linger_scheduled: bool,
    /// Tasks held back by the write budget or a checkpoint: to mark ready or to dispatch.
    deferred: VecDeque<usize>,
    latencies: Vec<f32>,
    span: tracing::Span,
    /// Succeeded tasks at the last automatic checkpoint.
    checkpointed_at: usize,
    /// The task whose committed success is to be checkpointed.
    checkpoint_due: Option<usize>,
    /// A checkpoint is reading the workspace: tasks that become ready wait.
    pausing: bool,
    /// A task of this run has waited for a decision (the run's status follows its waits).
    has_waits: bool,
    /// The status last written for the run while it executes (`running` or `waiting`).
    run_status: RunStatus,
    /// Where agents report this run's attempts.
    reply: Reply,
    /// Attempts that stop to wait for a decision on a tool call, by task: (attempt, wait,
    /// outputs while waiting).
    suspensions: HashMap<usize, crate::tools::Suspension>,
    /// Question waits whose deadline is armed.
    armed: std::collections::HashSet<crate::domain::WaitId>,
    /// Answered questions whose event is emitted (their note commits with it).
    announced: std::collections::HashSet<crate::domain::WaitId>,
    /// Decomposed tasks whose sub-plan is being made and checked (no attempt in flight).
    decomposing: std::collections::HashSet<usize>,
}

impl Coordinator {
    /// A coordinator for a run; `reply` is where agents report to it (its own address).
    fn new(mut s: Setup, graph: TaskGraph, reply: Reply) -> Self {
        let rows = match &mut s.start {
            Start::Fresh => Vec::new(),
            Start::Resume(rows) | Start::CancelOnly(rows, _) => std::mem::take(rows),
        };
        let state = RunState::new(Arc::new(graph), &rows);
        let has_waits = state.any_waiting();
        let span = tracing::info_span!("run", corr = %s.corr, run = %s.run);
        let out = Outbox::new(s.run, s.corr.clone(), s.last_seq);
        Self {
            s,
            state,
            out,
            mode: Mode::Running,
            delegates: Vec::new(),
            afters: Vec::new(),
            flush_scheduled: false,
            linger_scheduled: false,
            deferred: VecDeque::new(),
            latencies: Vec::new(),
            span,
            checkpointed_at: 0,
            checkpoint_due: None,
            pausing: false,
            has_waits,
            run_status: RunStatus::Running,
            reply,
            suspensions: HashMap::new(),
            armed: std::collections::HashSet::new(),
            announced: std::collections::HashSet::new(),
            decomposing: std::collections::HashSet::new(),
        }
    }

    /// Starts the coordinator of a run over its graph (the plan's, with the run's
    /// decompositions so far).
    pub fn launch(s: Setup, graph: TaskGraph) -> Addr<Self> {
        Self::create(|ctx| {
            let me = ctx.address();
            let reply = Reply {
                started: me.clone().recipient(),
                attempted: me.recipient(),
            };
            Self::new(s, graph, reply)
        })
    }

    /// Whether a message about task `index` is for this run (a message for another run is
    /// logged and dropped; it would be a routing bug).
    fn owns(&self, corr: &Correlation, index: usize) -> bool {
        let ok = corr.run == self.s.run
            && index < self.state.len()
            && corr.task.as_ref() == Some(self.state.key(index));
        if !ok {
            tracing::error!(parent: &self.span, msg_run = %corr.run, index, "message for another run or task dropped");
        }
        ok
    }

    fn corr(&self, i: Option<usize>) -> Correlation {
        Correlation {
            run: self.s.run,
            task: i.map(|i| self.state.key(i).clone()),
            id: self.s.corr.clone(),
        }
    }

    fn emit(&mut self, task: Option<usize>, data: EventData) {
        let key = task.map(|i| self.state.key(i).clone());
        self.out.emit(key, data, now_ms());
    }

    fn write_row(&mut self, i: usize) {
        self.out
            .task_row(self.state.graph().task(i), self.state.task(i));
    }

    /// Moves task `i` to `to`; an illegal move is logged and ignored.
    fn set_status(&mut self, i: usize, to: TaskStatus) -> bool {
        match self.state.set_status(i, to, now_ms()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(parent: &self.span, task = %self.state.key(i), error = %e, "ignored transition");
                false
            }
        }
    }

    /// Queues `after` for the next commit and schedules a flush at the end of the current
    /// burst of messages, so the writes of many handlers go to the store as one.
    fn flush(&mut self, ctx: &mut Context<Self>, after: Option<After>) {
        if let Some(a) = after {
            self.afters.push(a);
        }
        if self.flush_scheduled
            || (self.out.is_empty()
                && self.afters.is_empty()
                && self.delegates.is_empty()
                && !self.state.has_unsettled())
        {
            return;
        }
        self.flush_scheduled = true;
        ctx.spawn(fut::ready(()).map(|_, act: &mut Self, ctx| {
            act.flush_scheduled = false;
            act.flush_now(ctx);
        }));
    }

    /// Flushes within `START_LINGER` unless something flushes sooner.
    fn flush_soon(&mut self, ctx: &mut Context<Self>) {
        if self.linger_scheduled {
            return;
        }
        self.linger_scheduled = true;
        ctx.run_later(START_LINGER, |act, ctx| {
            act.linger_scheduled = false;
            act.flush(ctx, None);
        });
    }

    /// Sends what the outbox holds; once it is committed, the attempts it numbered go to the
    /// supervisor and the queued follow-ups run.
    fn flush_now(&mut self, ctx: &mut Context<Self>) {
        if self.mode == Mode::Halted && self.afters.is_empty() {
            return;
        }
        // Decomposed tasks whose subtasks ended settle in this commit (what they write joins
        // it rather than asking for another).
        self.flush_scheduled = true;
        self.settle_groups(ctx);
        self.flush_scheduled = false;
        if self.has_waits {
            self.sync_run_status();
        }
        let mut after = std::mem::take(&mut self.afters);
        if !self.delegates.is_empty() {
            after.insert(0, After::Dispatch(std::mem::take(&mut self.delegates)));
        }
        let (batch, rows) = self.out.take();
        let (tx, rx) = oneshot::channel();
        self.s.persistence.do_send(Persist {
            batch,
            ack: Some(tx),
        });
        ctx.spawn(rx.into_actor(self).map(move |res, act, ctx| {
            act.out.committed(rows);
            match res {
                Ok(Ok(())) => {
                    for a in after {
                        act.after_commit(a, ctx);
                    }
                    act.pump_deferred(ctx);
                }
                Ok(Err(e)) => act.halt_on_store_error(e.to_string(), ctx),
                Err(_) => act.halt_on_store_error("the persistence actor stopped".into(), ctx),
            }
        }));
    }

    fn halt_on_store_error(&mut self, why: String, ctx: &mut Context<Self>) {
        if self.mode == Mode::Halted {
            return;
        }
        tracing::error!(parent: &self.span, error = %why, "store write failed; the run stops here and stays resumable");
        self.halt();
        self.s.ended.do_send(RunEnded {
            run: self.s.run,
            latencies: None,
            error: Some(why),
        });
        ctx.stop();
    }

    fn halt(&mut self) {
        self.mode = Mode::Halted;
        self.s.withdraw.do_send(Withdraw(self.s.run));
        for t in self.state.tasks() {
            if let Some(c) = &t.cancel {
                c.cancel();
            }
        }
    }

    fn after_commit(&mut self, after: After, ctx: &mut Context<Self>) {
        match after {
            After::Dispatch(delegates) => {
                for d in delegates {
                    let t = self.state.task(d.index);
                    if self.mode == Mode::Running
                        && t.status == TaskStatus::Ready
                        && t.attempt == d.attempt
                    {
                        self.s.delegate.do_send(d);
                    }
                }
            }
            After::TaskDone(i, success) => {
                if success {
                    if let Some(at) = self.state.task(i).ready_at {
                        self.latencies.push(at.elapsed().as_secs_f32() * 1000.0);
                    }
                    if self.checkpoint_due == Some(i) {
                        self.checkpoint_due = None;
                        let step = self.state.succeeded();
                        self.auto_checkpoint(
                            format!("automatic, after {step} succeeded task(s)"),
                            ctx,
                        );
                    }
                }
                self.maybe_finish(ctx);
            }
            After::Waiting(i, deadline) => {
                if self.s.checkpoints.before_approval && self.mode == Mode::Running {
                    self.pausing = true;
                    let key = self.state.key(i).clone();
                    self.auto_checkpoint(
                        format!("automatic, before the approval of task {key}"),
                        ctx,
                    );
                }
                if let (Some(at), Some(wait)) = (deadline, self.state.task(i).wait.clone()) {
                    self.arm_deadline(i, wait, at, ctx);
                }
            }
            After::Asked => self.check_waits(ctx),
            After::RunDone => {
                let latencies = std::mem::take(&mut self.latencies);
                self.s.ended.do_send(RunEnded {
                    run: self.s.run,
                    latencies: Some(latencies),
                    error: None,
                });
                ctx.stop();
            }
            After::Ack(ack) => {
                let _ = ack.send(());
            }
            After::Interrupted(done) => {
                self.s.ended.do_send(RunEnded {
                    run: self.s.run,
                    latencies: None,
                    error: None,
                });
                if let Some(d) = done {
                    let _ = d.send(());
                }
                ctx.stop();
            }
        }
    }
}

impl Handler<ModelActivity> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: ModelActivity, ctx: &mut Context<Self>) {
        match msg {
            ModelActivity::Usage { corr, row } => {
                if corr.run != self.s.run {
                    return;
                }
                if self.mode == Mode::Halted {
                    // Money spent is recorded even when the run's log is closed here.
                    let mut batch = Batch::default();
                    batch.model_calls.push(row);
                    self.s.persistence.do_send(Persist { batch, ack: None });
                    return;
                }
                self.out.batch().model_calls.push(row);
                self.flush(ctx, None);
            }
            ModelActivity::Event { corr, index, data } => {
                if !self.owns(&corr, index) || self.mode == Mode::Halted {
                    return;
                }
                self.emit(Some(index), data);
                self.flush_soon(ctx);
            }
            ModelActivity::Journal {
                corr,
                index,
                rows,
                events,
                ack,
            } => {
                // Halted: nothing more is written for this run; the unanswered ack tells the
                // loop so.
                if !self.owns(&corr, index) || self.mode == Mode::Halted {
                    return;
                }
                for data in events {
                    self.emit(Some(index), data);
                }
                self.out.batch().append(*rows);
                self.flush(ctx, Some(After::Ack(ack)));
            }
            ModelActivity::Suspend {
                corr,
                index,
                suspension,
                ack,
            } => {
                if !self.owns(&corr, index) || self.mode == Mode::Halted {
                    return;
                }
                self.suspensions.insert(index, suspension);
                let _ = ack.send(());
            }
        }
    }
}

impl Handler<RecheckWaits> for Coordinator {
    type Result = ();

    fn handle(&mut self, _: RecheckWaits, ctx: &mut Context<Self>) {
        if self.mode == Mode::Running {
            self.check_waits(ctx);
        }
    }
}
