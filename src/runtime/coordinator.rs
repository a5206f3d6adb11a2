//! Coordinator: one actor per run. It owns the run's `TaskGraph` and readiness counters,
//! hands ready tasks to the supervisor, runs gates on results, and decides when the run has
//! succeeded, failed or been cancelled. Every state change goes to the persistence actor; a
//! task counts as finished (and its dependents become ready) only once its commit returns.

use super::gate::{CheckGate, GateActor, Verdict};
use super::model_sink::TaskSink;
use super::node::{Node, RunEnded};
use super::persistence::{Persist, Persistence};
use super::scoring::{Candidate, TaskNeeds};
use super::supervisor::{Delegate, Supervisor, Withdraw};
use super::Shared;
use crate::domain::event::EventType;
use crate::domain::graph::TaskGraph;
use crate::domain::plan::GateSpec;
use crate::domain::reference::{self, Lookup};
use crate::domain::{Correlation, CorrelationId, Event, RunId, RunStatus, TaskKey, TaskStatus};
use crate::models::Caller;
use crate::store::{ArtifactRow, Batch, MetricRow, RunUpdate, StoredBlob, TaskRow, WaitRow};
use crate::tools::{ModelAccess, ToolError, ToolOutput};
use actix::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Rows sent to the persistence actor and not yet committed above which the coordinator stops
/// dispatching new tasks until commits catch up (backpressure on the write path).
const MAX_PENDING_ROWS: usize = 4_000;

/// How long start events may wait to share a commit with the task's result.
const START_LINGER: Duration = Duration::from_millis(20);

/// An agent started an attempt.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TaskStarted {
    /// Run, task and correlation id.
    pub corr: Correlation,
    /// Task index.
    pub index: usize,
    /// Attempt.
    pub attempt: u32,
    /// The agent.
    pub agent: String,
    /// Every eligible agent's score.
    pub candidates: Vec<Candidate>,
}

/// Why an attempt failed.
#[derive(Debug, Clone)]
pub struct AttemptError {
    /// `tool`, `gate`, `timeout`, `cancelled`, `input`, `policy`, `io`.
    pub kind: &'static str,
    /// What went wrong.
    pub message: String,
    /// Outputs produced anyway.
    pub outputs: Map<String, Value>,
    /// Artifacts produced anyway.
    pub artifacts: Vec<(String, StoredBlob)>,
}

impl AttemptError {
    /// An error without outputs.
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            outputs: Map::new(),
            artifacts: Vec::new(),
        }
    }
}

impl From<ToolError> for AttemptError {
    fn from(e: ToolError) -> Self {
        let kind = e.kind();
        match e {
            ToolError::Failed {
                message,
                outputs,
                artifacts,
            } => Self {
                kind,
                message,
                outputs,
                artifacts,
            },
            other => Self::new(kind, other.to_string()),
        }
    }
}

/// An agent finished an attempt.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TaskAttempted {
    /// Run, task and correlation id.
    pub corr: Correlation,
    /// Task index.
    pub index: usize,
    /// Attempt.
    pub attempt: u32,
    /// Wall time.
    pub duration_ms: i64,
    /// What the tool returned.
    pub result: Result<ToolOutput, AttemptError>,
}

/// What a task's model call reports: an event for the run's log, or a usage row.
#[derive(Message)]
#[rtype(result = "()")]
pub enum ModelActivity {
    /// An event (`model.routed`, `model.fallback`, `model.completed`, `cost.alert`).
    Event {
        /// Run, task and correlation id.
        corr: Correlation,
        /// Task index.
        index: usize,
        /// What happened.
        kind: EventType,
        /// Details.
        data: Value,
    },
    /// A usage row (one per HTTP call).
    Usage {
        /// Run, task and correlation id.
        corr: Correlation,
        /// The row.
        row: crate::store::ModelCallRow,
    },
}

/// Cancels the run: stop dispatching, stop tasks in flight, end as `status` with `reason`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelRun {
    /// Why (shown as the run's reason).
    pub reason: String,
}

/// Stops executing without ending the run (shutdown, Ctrl-C): in-flight tasks are stopped and
/// the run stays resumable. `done` is told once the interruption is committed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Interrupt(pub Option<oneshot::Sender<()>>);

/// Someone decided on a wait of this run (the decision is in the store): read and apply it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecheckWaits;

/// Stops at once, writing nothing: another process owns the run now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Abandon;

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
    /// Its graph.
    pub graph: Arc<TaskGraph>,
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
    /// Actors.
    pub supervisor: Addr<Supervisor>,
    /// Actors.
    pub persistence: Addr<Persistence>,
    /// Gate actors by kind.
    pub gates: Arc<HashMap<&'static str, Addr<GateActor>>>,
    /// Actors.
    pub node: Addr<Node>,
    /// The project billed for model calls.
    pub project: String,
    /// When to checkpoint without being asked.
    pub checkpoints: crate::domain::plan::CheckpointPolicy,
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

#[derive(Default)]
struct TaskState {
    status: TaskStatus,
    attempt: u32,
    agent: Option<String>,
    outputs: Option<Value>,
    error: Option<String>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    cancel: Option<CancellationToken>,
    ready_at: Option<Instant>,
    /// True while an attempt is with the supervisor or an agent.
    dispatched: bool,
    /// Wall time of the last attempt's tool run, once it has reported.
    attempt_ms: Option<i64>,
    /// The checkpoint its result was restored from.
    restored_from: Option<String>,
    /// The wait it is held by, while waiting for a decision.
    wait: Option<String>,
}

enum After {
    /// Hand these attempts to the supervisor: their attempt numbers are committed.
    Dispatch(Vec<Delegate>),
    TaskDone(usize, bool),
    /// The task's wait (and its event) is committed: checkpoint, arm the deadline.
    Waiting(usize, Option<i64>),
    RunDone,
    Interrupted(Option<oneshot::Sender<()>>),
}

/// The coordinator actor.
pub struct Coordinator {
    s: Setup,
    tasks: Vec<TaskState>,
    remaining: Vec<u32>,
    seq: i64,
    mode: Mode,
    open: usize,
    first_failure: Option<String>,
    outbox: Batch,
    /// Attempts waiting for their attempt number to be committed.
    delegates: Vec<Delegate>,
    /// What to do once the next flush commits.
    afters: Vec<After>,
    /// A flush is scheduled for the end of this burst of messages.
    flush_scheduled: bool,
    /// A lingering flush (for start events) is scheduled.
    linger_scheduled: bool,
    pending_rows: usize,
    deferred: VecDeque<usize>,
    latencies: Vec<f32>,
    span: tracing::Span,
    /// Succeeded tasks of the run (kept as they change: counting them on each success made
    /// a run's cost per task grow with its size).
    succeeded: usize,
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
}

struct Refs<'a> {
    inputs: &'a Map<String, Value>,
    graph: &'a TaskGraph,
    tasks: &'a [TaskState],
}

impl Lookup for Refs<'_> {
    fn input(&self, name: &str) -> Option<&Value> {
        self.inputs.get(name)
    }
    fn outputs(&self, task: &str) -> Option<&Value> {
        let i = self.graph.index_of(task)?;
        let t = &self.tasks[i];
        (t.status == TaskStatus::Succeeded)
            .then_some(t.outputs.as_ref())
            .flatten()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Coordinator {
    /// A coordinator for a run.
    pub fn new(s: Setup) -> Self {
        let n = s.graph.len();
        let rows: HashMap<String, TaskRow> = match &s.start {
            Start::Fresh => HashMap::new(),
            Start::Resume(rows) | Start::CancelOnly(rows, _) => rows
                .iter()
                .map(|r| (r.task_id.to_string(), r.clone()))
                .collect(),
        };
        let tasks: Vec<TaskState> = s
            .graph
            .tasks()
            .iter()
            .map(|t| match rows.get(t.key.as_str()) {
                Some(r) => TaskState {
                    // Nothing runs here yet: what was in flight in the last process is ready
                    // to run again (with the next attempt number); a task waiting for a
                    // decision keeps waiting (its wait row says for what).
                    status: match r.status {
                        TaskStatus::Running => TaskStatus::Ready,
                        s => s,
                    },
                    attempt: r.attempt as u32,
                    agent: r.agent.clone(),
                    outputs: r.outputs.clone(),
                    error: r.error.clone(),
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                    restored_from: r.restored_from.clone(),
                    ..TaskState::default()
                },
                None => TaskState::default(),
            })
            .collect();
        let mut remaining = s.graph.in_degrees();
        for (i, t) in s.graph.tasks().iter().enumerate() {
            remaining[i] = t
                .deps
                .iter()
                .filter(|&&d| tasks[d].status != TaskStatus::Succeeded)
                .count() as u32;
        }
        let open = tasks.iter().filter(|t| !t.status.is_terminal()).count();
        let has_waits = tasks.iter().any(|t| t.status == TaskStatus::Waiting);
        let succeeded = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Succeeded)
            .count();
        let span = tracing::info_span!("run", corr = %s.corr, run = %s.run);
        let seq = s.last_seq;
        debug_assert_eq!(tasks.len(), n);
        Self {
            s,
            tasks,
            remaining,
            seq,
            mode: Mode::Running,
            open,
            first_failure: None,
            outbox: Batch::default(),
            delegates: Vec::new(),
            afters: Vec::new(),
            flush_scheduled: false,
            linger_scheduled: false,
            pending_rows: 0,
            deferred: VecDeque::new(),
            latencies: Vec::new(),
            span,
            succeeded,
            checkpointed_at: 0,
            checkpoint_due: None,
            pausing: false,
            has_waits,
            run_status: RunStatus::Running,
        }
    }

    /// Whether a message about task `index` is for this run (a message for another run is
    /// logged and dropped; it would be a routing bug).
    fn owns(&self, corr: &Correlation, index: usize) -> bool {
        let ok = corr.run == self.s.run
            && index < self.tasks.len()
            && corr.task.as_ref() == Some(self.key(index));
        if !ok {
            tracing::error!(parent: &self.span, msg_run = %corr.run, index, "message for another run or task dropped");
        }
        ok
    }

    fn key(&self, i: usize) -> &TaskKey {
        &self.s.graph.task(i).key
    }

    fn corr(&self, i: Option<usize>) -> Correlation {
        Correlation {
            run: self.s.run,
            task: i.map(|i| self.key(i).clone()),
            id: self.s.corr.clone(),
        }
    }

    fn emit(&mut self, kind: EventType, task: Option<usize>, data: Value) {
        self.seq += 1;
        let task_id = task.map(|i| self.key(i).clone());
        self.outbox.events.push(Event {
            seq: self.seq,
            kind,
            at: crate::domain::event::from_ms(now_ms()),
            run_id: self.s.run,
            task_id,
            correlation_id: self.s.corr.clone(),
            data,
        });
    }

    fn write_row(&mut self, i: usize) {
        let t = &self.tasks[i];
        let spec = self.s.graph.task(i);
        self.outbox.tasks.push(TaskRow {
            run_id: self.s.run,
            task_id: spec.key.clone(),
            idx: i as i64,
            tool: spec.tool.clone(),
            status: t.status,
            attempt: i64::from(t.attempt),
            agent: t.agent.clone(),
            outputs: t.outputs.clone(),
            error: t.error.clone(),
            started_at: t.started_at,
            finished_at: t.finished_at,
            restored_from: t.restored_from.clone(),
        });
    }

    fn set_status(&mut self, i: usize, to: TaskStatus) -> bool {
        match self.tasks[i].status.transition(to) {
            Ok(s) => {
                let was_open = !self.tasks[i].status.is_terminal();
                if s == TaskStatus::Succeeded && self.tasks[i].status != TaskStatus::Succeeded {
                    self.succeeded += 1;
                }
                self.tasks[i].status = s;
                if was_open && s.is_terminal() {
                    self.open -= 1;
                    self.tasks[i].finished_at = Some(now_ms());
                    self.tasks[i].cancel = None;
                }
                true
            }
            Err(e) => {
                tracing::warn!(parent: &self.span, task = %self.key(i), error = %e, "ignored transition");
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
            || (self.outbox.is_empty() && self.afters.is_empty() && self.delegates.is_empty())
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
        if self.has_waits {
            self.sync_run_status();
        }
        let mut after = std::mem::take(&mut self.afters);
        if !self.delegates.is_empty() {
            after.insert(0, After::Dispatch(std::mem::take(&mut self.delegates)));
        }
        let batch = std::mem::take(&mut self.outbox);
        let rows = batch.len();
        self.pending_rows += rows;
        let (tx, rx) = oneshot::channel();
        self.s.persistence.do_send(Persist {
            batch,
            ack: Some(tx),
        });
        ctx.spawn(rx.into_actor(self).map(move |res, act, ctx| {
            act.pending_rows -= rows;
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
        self.halt(ctx);
        self.s.node.do_send(RunEnded {
            run: self.s.run,
            latencies: None,
            error: Some(why),
        });
        ctx.stop();
    }

    fn halt(&mut self, _ctx: &mut Context<Self>) {
        self.mode = Mode::Halted;
        self.s.supervisor.do_send(Withdraw(self.s.run));
        for t in &self.tasks {
            if let Some(c) = &t.cancel {
                c.cancel();
            }
        }
    }

    fn after_commit(&mut self, after: After, ctx: &mut Context<Self>) {
        match after {
            After::Dispatch(delegates) => {
                for d in delegates {
                    let t = &self.tasks[d.index];
                    if self.mode == Mode::Running
                        && t.status == TaskStatus::Ready
                        && t.attempt == d.attempt
                    {
                        self.s.supervisor.do_send(d);
                    }
                }
            }
            After::TaskDone(i, success) => {
                if success {
                    if let Some(at) = self.tasks[i].ready_at {
                        self.latencies.push(at.elapsed().as_secs_f32() * 1000.0);
                    }
                    if self.checkpoint_due == Some(i) {
                        self.checkpoint_due = None;
                        let step = self.succeeded();
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
                    let key = self.key(i).clone();
                    self.auto_checkpoint(
                        format!("automatic, before the approval of task {key}"),
                        ctx,
                    );
                }
                if let (Some(at), Some(wait)) = (deadline, self.tasks[i].wait.clone()) {
                    self.arm_deadline(i, wait, at, ctx);
                }
            }
            After::RunDone => {
                let latencies = std::mem::take(&mut self.latencies);
                self.s.node.do_send(RunEnded {
                    run: self.s.run,
                    latencies: Some(latencies),
                    error: None,
                });
                ctx.stop();
            }
            After::Interrupted(done) => {
                self.s.node.do_send(RunEnded {
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

    fn make_ready(&mut self, i: usize, ctx: &mut Context<Self>) {
        if !self.set_status(i, TaskStatus::Ready) {
            return;
        }
        self.tasks[i].ready_at = Some(Instant::now());
        self.emit(EventType::TaskReady, Some(i), json!({}));
        self.write_row(i);
        self.dispatch(i, ctx);
    }

    fn dispatch(&mut self, i: usize, ctx: &mut Context<Self>) {
        if self.mode != Mode::Running
            || self.tasks[i].status != TaskStatus::Ready
            || self.tasks[i].dispatched
        {
            return;
        }
        if self.over_budget() {
            self.deferred.push_back(i);
            return;
        }
        let graph = self.s.graph.clone();
        let spec = graph.task(i);
        let refs = Refs {
            inputs: &self.s.inputs,
            graph: &graph,
            tasks: &self.tasks,
        };
        let inputs = match reference::resolve_map(graph.inputs(i), &refs, reference::all) {
            Ok(v) => v,
            Err(e) => return self.fail(i, AttemptError::new("input", e.to_string()), ctx),
        };
        if let Some(problems) = self.s.shared.tools.input_errors(&spec.tool, &inputs) {
            if let Some((pointer, message)) = problems.into_iter().next() {
                let msg = format!(
                    "inputs of tool `{}` are invalid at `{pointer}`: {message}",
                    spec.tool
                );
                return self.fail(i, AttemptError::new("input", msg), ctx);
            }
        }
        let Some(tool) = self.s.shared.tools.get(&spec.tool) else {
            return self.fail(
                i,
                AttemptError::new("input", format!("unknown tool `{}`", spec.tool)),
                ctx,
            );
        };
        let parent_agent = spec.deps.first().and_then(|&d| self.tasks[d].agent.clone());
        let cancel = CancellationToken::new();
        let t = &mut self.tasks[i];
        t.attempt += 1;
        t.cancel = Some(cancel.clone());
        t.dispatched = true;
        // The attempt number is committed before the attempt starts, so a crash never makes
        // two attempts with one number.
        self.write_row(i);
        self.delegates.push(Delegate {
            corr: self.corr(Some(i)),
            index: i,
            attempt: self.tasks[i].attempt,
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
            models: self.model_access(i, &spec.tool, ctx),
            coordinator: ctx.address(),
        });
    }

    /// Model access for task `i` calling as `tool`.
    fn model_access(&self, i: usize, tool: &str, ctx: &Context<Self>) -> ModelAccess {
        let spec = self.s.graph.task(i);
        let corr = self.corr(Some(i));
        let caller = Caller {
            run: Some(self.s.run),
            task: corr.task.clone(),
            correlation: self.s.corr.clone(),
            tool: tool.to_string(),
            agent: self.tasks[i].agent.clone(),
            role: self.tasks[i]
                .agent
                .as_ref()
                .and_then(|a| self.s.shared.agents.iter().find(|s| &s.id == a))
                .map(|s| s.role),
            priority: spec.priority,
            capabilities: spec.capabilities.clone(),
            project: self.s.project.clone(),
        };
        let sink = TaskSink {
            coordinator: ctx.address(),
            corr,
            index: i,
            hub: self.s.shared.hub.clone(),
        };
        ModelAccess::new(self.s.shared.models.clone(), caller, Arc::new(sink))
    }

    /// Whether enough rows wait for a commit that new work should wait too.
    fn over_budget(&self) -> bool {
        self.pausing || self.pending_rows + self.outbox.len() > MAX_PENDING_ROWS
    }

    /// Takes up work held back by the write budget: tasks to mark ready, attempts to dispatch.
    fn pump_deferred(&mut self, ctx: &mut Context<Self>) {
        let mut sent = false;
        while !self.over_budget() {
            let Some(i) = self.deferred.pop_front() else {
                break;
            };
            match self.tasks[i].status {
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
    fn record_attempt(&mut self, i: usize, error_type: Option<&str>) {
        let Some(duration_ms) = self.tasks[i].attempt_ms.take() else {
            return;
        };
        let spec = self.s.graph.task(i);
        self.outbox.metrics.push(MetricRow {
            run_id: self.s.run,
            task_id: spec.key.clone(),
            tool: spec.tool.clone(),
            agent: self.tasks[i].agent.clone(),
            attempt: i64::from(self.tasks[i].attempt),
            duration_ms,
            success: error_type.is_none(),
            error_type: error_type.map(str::to_string),
            at: now_ms(),
        });
    }

    fn succeed(&mut self, i: usize, output: ToolOutput, ctx: &mut Context<Self>) {
        if !self.set_status(i, TaskStatus::Succeeded) {
            return;
        }
        self.record_attempt(i, None);
        let t = &mut self.tasks[i];
        t.outputs = Some(Value::Object(output.outputs));
        t.error = None;
        t.dispatched = false;
        let data = json!({"attempt": t.attempt, "agent": t.agent});
        self.push_artifacts(i, output.artifacts);
        self.emit(EventType::TaskSucceeded, Some(i), data);
        self.write_row(i);
        // An automatic checkpoint due now sees the workspace as this task left it: what
        // becomes ready waits (as for the write budget) until the files are read.
        let every = self.s.checkpoints.every as usize;
        let step = self.succeeded();
        if every > 0
            && self.open > 0
            && self.mode == Mode::Running
            && step >= self.checkpointed_at + every
        {
            self.checkpointed_at = step;
            self.checkpoint_due = Some(i);
            self.pausing = true;
        }
        // Dependents that this success makes ready are written in the same transaction; they
        // are handed to agents only once it commits (with the success).
        let graph = self.s.graph.clone();
        let mut ready: Vec<usize> = Vec::new();
        for d in graph.dependents(i) {
            self.remaining[d] = self.remaining[d].saturating_sub(1);
            if self.remaining[d] == 0 && self.tasks[d].status == TaskStatus::Pending {
                ready.push(d);
            }
        }
        if self.mode == Mode::Running {
            ready.sort_unstable();
            for d in ready {
                if self.over_budget() {
                    self.deferred.push_back(d);
                } else {
                    self.make_ready(d, ctx);
                }
            }
        }
        self.flush(ctx, Some(After::TaskDone(i, true)));
    }

    fn push_artifacts(&mut self, i: usize, artifacts: Vec<(String, StoredBlob)>) {
        let now = now_ms();
        for (name, blob) in artifacts {
            if blob.hash.is_empty() {
                continue;
            }
            self.outbox.artifacts.push(ArtifactRow {
                run_id: self.s.run,
                task_id: self.key(i).clone(),
                name,
                hash: blob.hash,
                size: blob.size,
                created_at: now,
            });
        }
    }

    /// Fails the task, or schedules a retry when its policy allows one.
    fn fail(&mut self, i: usize, err: AttemptError, ctx: &mut Context<Self>) {
        let retry = self.s.graph.task(i).retry;
        let attempt = self.tasks[i].attempt;
        let retryable = !matches!(
            err.kind,
            "input" | "policy" | "cancelled" | "budget_exceeded" | "unavailable" | "rejected"
        );
        self.tasks[i].dispatched = false;
        self.record_attempt(i, Some(err.kind));
        if !err.outputs.is_empty() {
            self.tasks[i].outputs = Some(Value::Object(err.outputs.clone()));
        }
        self.push_artifacts(i, err.artifacts.clone());
        if retryable && self.mode == Mode::Running && attempt <= retry.max {
            if self.tasks[i].status == TaskStatus::Running {
                self.set_status(i, TaskStatus::Ready);
            }
            self.tasks[i].error = Some(err.message.clone());
            self.emit(
                EventType::TaskRetrying,
                Some(i),
                json!({"attempt": attempt, "error": err.message, "errorType": err.kind, "backoffMs": retry.backoff_ms}),
            );
            self.write_row(i);
            self.flush(ctx, None);
            ctx.run_later(Duration::from_millis(retry.backoff_ms), move |act, ctx| {
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
        if !self.set_status(i, TaskStatus::Failed) {
            return;
        }
        let key = self.key(i).clone();
        self.tasks[i].error = Some(err.message.clone());
        if self.first_failure.is_none() {
            self.first_failure = Some(format!("task `{key}` failed: {}", err.message));
        }
        self.emit(
            EventType::TaskFailed,
            Some(i),
            json!({"attempt": attempt, "error": err.message, "errorType": err.kind}),
        );
        self.write_row(i);
        self.skip_dependents(i);
        self.flush(ctx, Some(After::TaskDone(i, false)));
        if err.kind == "budget_exceeded" {
            // The next model call would pass a budget: nothing else of this run may spend.
            self.stop_run(RunStatus::Failed, "budget_exceeded".into(), ctx);
        }
    }

    fn skip_dependents(&mut self, failed: usize) {
        let graph = self.s.graph.clone();
        let mut stack = vec![failed];
        while let Some(i) = stack.pop() {
            let cause = self.key(i).clone();
            let verb = if i == failed { "failed" } else { "was skipped" };
            for d in graph.dependents(i) {
                if self.tasks[d].status == TaskStatus::Pending
                    && self.set_status(d, TaskStatus::Skipped)
                {
                    let reason = format!("dependency `{cause}` {verb}");
                    self.tasks[d].error = Some(reason.clone());
                    self.emit(EventType::TaskSkipped, Some(d), json!({"reason": reason}));
                    self.write_row(d);
                    stack.push(d);
                }
            }
        }
    }

    fn cancel_task(&mut self, i: usize) {
        if let Some(c) = &self.tasks[i].cancel {
            c.cancel();
        }
        let reason = match &self.mode {
            Mode::Stopping { reason, .. } => reason.clone(),
            _ => "cancelled".to_string(),
        };
        if self.set_status(i, TaskStatus::Cancelled) {
            self.tasks[i].dispatched = false;
            self.tasks[i].error = Some(reason.clone());
            self.emit(EventType::TaskCancelled, Some(i), json!({"reason": reason}));
            self.write_row(i);
        }
    }

    /// Stops the run: pending and waiting tasks are cancelled now, running ones are told to
    /// stop and are cancelled when their agent reports back.
    fn stop_run(&mut self, status: RunStatus, reason: String, ctx: &mut Context<Self>) {
        if self.mode != Mode::Running {
            return;
        }
        tracing::info!(parent: &self.span, %status, %reason, "stopping run");
        self.mode = Mode::Stopping { status, reason };
        self.s.supervisor.do_send(Withdraw(self.s.run));
        self.deferred.clear();
        for i in 0..self.tasks.len() {
            match self.tasks[i].status {
                TaskStatus::Running => {
                    if let Some(c) = &self.tasks[i].cancel {
                        c.cancel();
                    }
                }
                s if !s.is_terminal() => self.cancel_task(i),
                _ => {}
            }
        }
        self.flush(ctx, None);
        self.maybe_finish(ctx);
    }

    fn maybe_finish(&mut self, ctx: &mut Context<Self>) {
        if self.open > 0 || matches!(self.mode, Mode::Finishing | Mode::Halted) {
            return;
        }
        let (status, reason) = match std::mem::replace(&mut self.mode, Mode::Finishing) {
            Mode::Stopping { status, reason } => (status, Some(reason)),
            _ => match &self.first_failure {
                Some(f) => (RunStatus::Failed, Some(f.clone())),
                None => (RunStatus::Succeeded, None),
            },
        };
        let kind = match status {
            RunStatus::Succeeded => EventType::RunSucceeded,
            RunStatus::Cancelled => EventType::RunCancelled,
            _ => EventType::RunFailed,
        };
        let counts = self.counts();
        self.emit(kind, None, json!({"reason": reason, "tasks": counts}));
        self.outbox.run_updates.push(RunUpdate {
            id: self.s.run,
            status,
            reason,
            started_at: None,
            finished_at: Some(now_ms()),
            deadline_at: None,
        });
        tracing::info!(parent: &self.span, %status, "run ended");
        self.flush(ctx, Some(After::RunDone));
    }

    /// Holds task `i`'s result for a person's decision: the wait row, the task row (waiting,
    /// with its outputs) and `approval.requested` commit together.
    fn request_approval(
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
        if !self.set_status(i, TaskStatus::Waiting) {
            return;
        }
        self.has_waits = true;
        self.record_attempt(i, None);
        self.push_artifacts(i, output.artifacts);
        let now = now_ms();
        let deadline = timeout_s.map(|s| now + (s * 1000.0).round() as i64);
        let id = format!("wait-{}", uuid::Uuid::now_v7());
        let t = &mut self.tasks[i];
        t.outputs = Some(Value::Object(output.outputs));
        t.dispatched = false;
        t.wait = Some(id.clone());
        let attempt = t.attempt;
        self.outbox.waits.push(WaitRow {
            id: id.clone(),
            run_id: self.s.run,
            task_id: self.key(i).to_string(),
            attempt: i64::from(attempt),
            kind: "approval".into(),
            approvers: approvers.clone(),
            deadline_at: deadline,
            on_timeout: on_timeout.as_str().into(),
            requested_at: now,
            decision: None,
            decided_by: None,
            reason: None,
            decided_at: None,
        });
        self.emit(
            EventType::ApprovalRequested,
            Some(i),
            json!({
                "waitId": id,
                "gate": gate_number,
                "attempt": attempt,
                "approvers": approvers,
                "deadline": deadline.map(|d| crate::domain::event::from_ms(d).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                "onTimeout": on_timeout.as_str(),
                "outputs": self.tasks[i].outputs,
            }),
        );
        self.write_row(i);
        self.flush(ctx, Some(After::Waiting(i, deadline)));
    }

    /// At the deadline the wait's `on_timeout` decides, unless someone decided first (the
    /// store keeps whichever decision came first); then the decision is applied.
    fn arm_deadline(&mut self, i: usize, wait: String, at: i64, ctx: &mut Context<Self>) {
        let left = Duration::from_millis((at - now_ms()).max(0) as u64);
        ctx.run_later(left, move |act, ctx| {
            if act.tasks[i].status != TaskStatus::Waiting
                || act.tasks[i].wait.as_deref() != Some(wait.as_str())
            {
                return;
            }
            let store = act.s.shared.store.clone();
            let on_timeout = match act.s.graph.task(i).gates.iter().find_map(|g| match g {
                GateSpec::Manual {
                    on_timeout,
                    timeout_s,
                    ..
                } => Some((*on_timeout, *timeout_s)),
                _ => None,
            }) {
                Some(x) => x,
                None => return,
            };
            let (decision, after) = on_timeout;
            let reason = format!(
                "no decision within {}s",
                after.map(|s| s.to_string()).unwrap_or_default()
            );
            let fut = async move {
                store
                    .decide_wait(&wait, decision.as_str(), "timeout", Some(&reason), now_ms())
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
    fn check_waits(&mut self, ctx: &mut Context<Self>) {
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
            let mut last: HashMap<String, WaitRow> = HashMap::new();
            for w in rows {
                last.insert(w.task_id.clone(), w);
            }
            for i in 0..act.tasks.len() {
                if act.tasks[i].status != TaskStatus::Waiting {
                    continue;
                }
                match last.remove(act.key(i).as_str()) {
                    None => {
                        act.set_status(i, TaskStatus::Ready);
                        act.tasks[i].ready_at = Some(Instant::now());
                        act.write_row(i);
                        act.dispatch(i, ctx);
                    }
                    Some(w) if w.decision.is_some() => act.decided(i, w, ctx),
                    Some(w) => {
                        if act.tasks[i].wait.as_deref() != Some(w.id.as_str()) {
                            act.tasks[i].wait = Some(w.id.clone());
                            if let Some(at) = w.deadline_at {
                                act.arm_deadline(i, w.id, at, ctx);
                            }
                        }
                    }
                }
            }
            act.flush(ctx, None);
        }));
    }

    /// Applies a decision: approved, the task succeeds with its held outputs; rejected, it
    /// fails (no retry).
    fn decided(&mut self, i: usize, w: WaitRow, ctx: &mut Context<Self>) {
        let decision = w.decision.clone().unwrap_or_default();
        let by = w.decided_by.clone().unwrap_or_default();
        self.tasks[i].wait = None;
        self.emit(
            EventType::ApprovalDecided,
            Some(i),
            json!({"waitId": w.id, "decision": decision, "by": by, "reason": w.reason, "attempt": w.attempt}),
        );
        if decision == "approve" {
            let outputs = match self.tasks[i].outputs.clone() {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            self.succeed(
                i,
                ToolOutput {
                    outputs,
                    artifacts: Vec::new(),
                },
                ctx,
            );
        } else {
            let why = match &w.reason {
                Some(r) if !r.is_empty() => format!("rejected by {by}: {r}"),
                _ => format!("rejected by {by}"),
            };
            self.fail(i, AttemptError::new("rejected", why), ctx);
        }
    }

    /// Writes the run's status when its waits change it: `waiting` while a task waits for
    /// a decision and nothing else of the run can run, else `running`.
    fn sync_run_status(&mut self) {
        if self.mode != Mode::Running {
            return;
        }
        let waiting: Vec<String> = self
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.status == TaskStatus::Waiting)
            .map(|(i, _)| self.key(i).to_string())
            .collect();
        let busy = !self.deferred.is_empty()
            || self
                .tasks
                .iter()
                .any(|t| matches!(t.status, TaskStatus::Ready | TaskStatus::Running));
        let want = if !waiting.is_empty() && !busy {
            RunStatus::Waiting
        } else {
            RunStatus::Running
        };
        if want == self.run_status {
            return;
        }
        self.run_status = want;
        self.outbox.run_updates.push(RunUpdate {
            id: self.s.run,
            status: want,
            reason: None,
            started_at: None,
            finished_at: None,
            deadline_at: None,
        });
        if want == RunStatus::Waiting {
            self.emit(EventType::RunWaiting, None, json!({"tasks": waiting}));
        }
    }

    fn succeeded(&self) -> usize {
        self.succeeded
    }

    /// Checkpoints the run as committed now; tasks that became ready meanwhile wait until
    /// the workspace has been read, then go on (the row is written after).
    fn auto_checkpoint(&mut self, description: String, ctx: &mut Context<Self>) {
        let shared = self.s.shared.clone();
        let run = self.s.run;
        let snap = async move {
            super::lineage::snapshot(&shared.store, &shared.data_dir, run, Some(description)).await
        };
        ctx.spawn(snap.into_actor(self).map(|res, act, ctx| {
            act.pausing = false;
            match res {
                Ok(row) => {
                    tracing::info!(parent: &act.span, checkpoint = %row.id, step = row.step, "checkpoint");
                    act.s.persistence.do_send(Persist {
                        batch: Batch {
                            checkpoints: vec![row],
                            ..Batch::default()
                        },
                        ack: None,
                    });
                }
                Err(e) => {
                    tracing::warn!(parent: &act.span, error = %e, "automatic checkpoint failed")
                }
            }
            act.pump_deferred(ctx);
        }));
    }

    fn counts(&self) -> Value {
        let mut m: HashMap<&'static str, usize> = HashMap::new();
        for t in &self.tasks {
            *m.entry(t.status.as_str()).or_default() += 1;
        }
        json!(m)
    }

    fn gates_done(
        &mut self,
        i: usize,
        output: ToolOutput,
        verdicts: Vec<Verdict>,
        ctx: &mut Context<Self>,
    ) {
        let all = &self.s.graph.task(i).gates;
        // Gate numbers in events are positions in the plan's list.
        let (numbers, gates): (Vec<usize>, Vec<GateSpec>) = all
            .iter()
            .enumerate()
            .filter(|(_, g)| !matches!(g, GateSpec::Manual { .. }))
            .map(|(n, g)| (n, g.clone()))
            .unzip();
        let manual = all
            .iter()
            .enumerate()
            .find(|(_, g)| matches!(g, GateSpec::Manual { .. }))
            .map(|(n, g)| (n + 1, g.clone()));
        let mut failed = None;
        for (g, v) in verdicts.iter().enumerate() {
            let kind = if v.passed {
                EventType::GatePassed
            } else {
                EventType::GateFailed
            };
            self.emit(
                kind,
                Some(i),
                json!({"gate": numbers[g] + 1, "kind": gates[g].kind(), "reason": v.reason, "detail": v.detail, "attempt": self.tasks[i].attempt}),
            );
            if !v.passed {
                failed = Some((
                    format!(
                        "gate #{} ({}) failed: {}",
                        numbers[g] + 1,
                        gates[g].kind(),
                        v.reason
                    ),
                    v.error_type.unwrap_or("gate"),
                ));
            }
        }
        match failed {
            None if manual.is_some() => {
                if let Some((number, gate)) = manual {
                    self.request_approval(i, number, &gate, output, ctx);
                }
            }
            None => self.succeed(i, output, ctx),
            Some((message, kind)) => {
                let err = AttemptError {
                    kind,
                    message,
                    outputs: output.outputs,
                    artifacts: output.artifacts,
                };
                self.fail(i, err, ctx);
            }
        }
    }

    fn start_run(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let resumed = self.s.status != RunStatus::Pending;
        let deadline = self
            .s
            .deadline_at
            .or_else(|| self.s.timeout.map(|t| now + t.as_millis() as i64));
        self.outbox.run_updates.push(RunUpdate {
            id: self.s.run,
            status: RunStatus::Running,
            reason: None,
            started_at: Some(now),
            finished_at: None,
            deadline_at: deadline,
        });
        self.emit(
            EventType::RunStarted,
            None,
            json!({"resumed": resumed, "tasks": self.tasks.len()}),
        );
        // Tasks that were ready, running or retrying when the last process stopped run again.
        let mut again = Vec::new();
        let mut fresh = Vec::new();
        for i in 0..self.tasks.len() {
            let st = self.tasks[i].status;
            if matches!(st, TaskStatus::Ready | TaskStatus::Running) {
                self.tasks[i].status = TaskStatus::Ready;
                self.tasks[i].ready_at = Some(Instant::now());
                self.write_row(i);
                again.push(i);
            } else if st == TaskStatus::Pending && self.remaining[i] == 0 {
                fresh.push(i);
            }
        }
        for i in again {
            self.dispatch(i, ctx);
        }
        for i in fresh {
            if self.over_budget() {
                self.deferred.push_back(i);
            } else {
                self.make_ready(i, ctx);
            }
        }
        if let Some(d) = deadline {
            let left = Duration::from_millis((d - now).max(0) as u64);
            ctx.run_later(left, |act, ctx| {
                act.stop_run(RunStatus::Failed, "timeout".into(), ctx);
            });
        }
        if self.has_waits {
            self.check_waits(ctx);
        }
        self.flush(ctx, None);
        self.maybe_finish(ctx);
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match std::mem::replace(&mut self.s.start, Start::Fresh) {
            Start::CancelOnly(_, reason) => {
                self.emit(
                    EventType::RunStarted,
                    None,
                    json!({"resumed": true, "tasks": self.tasks.len(), "cancelOnly": true}),
                );
                self.stop_run(RunStatus::Cancelled, reason, ctx);
            }
            _ => self.start_run(ctx),
        }
    }
}

impl Handler<TaskStarted> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: TaskStarted, ctx: &mut Context<Self>) {
        if !self.owns(&msg.corr, msg.index) {
            return;
        }
        let i = msg.index;
        if self.mode == Mode::Halted
            || self.tasks[i].attempt != msg.attempt
            || self.tasks[i].status != TaskStatus::Ready
        {
            return;
        }
        self.set_status(i, TaskStatus::Running);
        let t = &mut self.tasks[i];
        t.agent = Some(msg.agent.clone());
        t.started_at.get_or_insert_with(now_ms);
        let attempt = t.attempt;
        self.emit(
            EventType::TaskDelegated,
            Some(i),
            json!({"agent": msg.agent, "attempt": attempt, "candidates": msg.candidates}),
        );
        self.emit(
            EventType::TaskStarted,
            Some(i),
            json!({"agent": msg.agent, "attempt": attempt}),
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
        if !self.owns(&msg.corr, msg.index) {
            return;
        }
        let i = msg.index;
        if self.mode == Mode::Halted
            || self.tasks[i].attempt != msg.attempt
            || self.tasks[i].status != TaskStatus::Running
        {
            return;
        }
        self.tasks[i].attempt_ms = Some(msg.duration_ms);
        let spec = self.s.graph.task(i);
        match msg.result {
            Err(e) => self.fail(i, e, ctx),
            Ok(output) if spec.gates.is_empty() => self.succeed(i, output, ctx),
            Ok(output) => {
                // A manual gate is decided by a person after the others have passed.
                let gates: Vec<GateSpec> = spec
                    .gates
                    .iter()
                    .filter(|g| !matches!(g, GateSpec::Manual { .. }))
                    .cloned()
                    .collect();
                let actors = self.s.gates.clone();
                let corr = self.corr(Some(i));
                let workspace = self.s.workspace.clone();
                let cancel = self.tasks[i].cancel.clone().unwrap_or_default();
                let outputs = output.outputs.clone();
                let attempt = msg.attempt;
                let models = self.model_access(i, "gate", ctx);
                let fut = async move {
                    let mut verdicts = Vec::with_capacity(gates.len());
                    for gate in gates {
                        let kind = gate.kind();
                        let verdict = match actors.get(kind) {
                            None => Verdict {
                                passed: false,
                                reason: format!("no gate actor for `{kind}`"),
                                detail: Value::Null,
                                error_type: None,
                            },
                            Some(a) => a
                                .send(CheckGate {
                                    models: models.clone(),
                                    corr: corr.clone(),
                                    gate,
                                    outputs: outputs.clone(),
                                    workspace: workspace.clone(),
                                    attempt,
                                    cancel: cancel.clone(),
                                })
                                .await
                                .unwrap_or_else(|e| Verdict {
                                    passed: false,
                                    reason: format!("gate actor failed: {e}"),
                                    detail: Value::Null,
                                    error_type: None,
                                }),
                        };
                        let passed = verdict.passed;
                        verdicts.push(verdict);
                        if !passed {
                            break;
                        }
                    }
                    verdicts
                };
                ctx.spawn(fut.into_actor(self).map(move |verdicts, act, ctx| {
                    if act.mode == Mode::Halted || act.tasks[i].status != TaskStatus::Running {
                        return;
                    }
                    act.gates_done(i, output, verdicts, ctx);
                }));
                self.flush(ctx, None);
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
                self.outbox.model_calls.push(row);
                self.flush(ctx, None);
            }
            ModelActivity::Event {
                corr,
                index,
                kind,
                data,
            } => {
                if !self.owns(&corr, index) || self.mode == Mode::Halted {
                    return;
                }
                self.emit(kind, Some(index), data);
                self.flush_soon(ctx);
            }
        }
    }
}

impl Handler<CancelRun> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: CancelRun, ctx: &mut Context<Self>) {
        self.stop_run(RunStatus::Cancelled, msg.reason, ctx);
    }
}

impl Handler<Interrupt> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: Interrupt, ctx: &mut Context<Self>) {
        if matches!(self.mode, Mode::Halted | Mode::Finishing) {
            if let Some(d) = msg.0 {
                let _ = d.send(());
            }
            return;
        }
        self.halt(ctx);
        self.emit(EventType::RunInterrupted, None, json!({"reason": "the process executing the run stopped; resume it with `nofx resume`"}));
        self.flush(ctx, Some(After::Interrupted(msg.0)));
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

impl Handler<Abandon> for Coordinator {
    type Result = ();

    fn handle(&mut self, _: Abandon, ctx: &mut Context<Self>) {
        tracing::warn!(parent: &self.span, "lease lost to another process; stopping without writing");
        self.halt(ctx);
        ctx.stop();
    }
}
