//! Every message the runtime's actors send each other, and the values they answer with.
//! Actors address each other through these types (and `Recipient`s of them) rather than
//! through each other's modules, so no actor module imports another: the node wires them.

use super::scoring::{Candidate, TaskNeeds};
use super::RuntimeError;
use crate::domain::event::EventData;
use crate::domain::plan::ValidatedPlan;
use crate::domain::{
    Correlation, CorrelationId, FailureKind, GateSpec, Priority, RunId, RunStatus,
};
use crate::store::{Batch, Claim, LeaseInfo, StoreError, StoredBlob, TaskRow};
use crate::tools::{ModelAccess, Tool, ToolError, ToolOutput};
use actix::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

// ---- To a run's coordinator

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
    /// Its kind (whether it may be retried follows from it).
    pub kind: FailureKind,
    /// What went wrong.
    pub message: String,
    /// Outputs produced anyway.
    pub outputs: Map<String, Value>,
    /// Artifacts produced anyway.
    pub artifacts: Vec<(String, StoredBlob)>,
}

impl AttemptError {
    /// An error without outputs.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
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
    /// Wall time of the tool run.
    pub duration_ms: i64,
    /// When the tool run ended (ms since the epoch).
    pub ended_at: i64,
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
        data: EventData,
    },
    /// A usage row (one per HTTP call).
    Usage {
        /// Run, task and correlation id.
        corr: Correlation,
        /// The row.
        row: crate::store::ModelCallRow,
    },
    /// Journal rows of a reasoning loop with their events, committed at once; `ack` is told
    /// once they are (dropped unanswered when they cannot be: the run stopped here).
    Journal {
        /// Run, task and correlation id.
        corr: Correlation,
        /// Task index.
        index: usize,
        /// Loop, turn and tool-call rows (boxed: a batch is large).
        rows: Box<Batch>,
        /// Their events, in order.
        events: Vec<EventData>,
        /// Told once committed.
        ack: oneshot::Sender<()>,
    },
    /// An attempt stops to wait for a person (a decision on one of its agent's tool calls,
    /// answers to its questions): once it reports, the task waits on the suspension's
    /// waits instead of failing. `ack` is told once the coordinator has it.
    Suspend {
        /// Run, task and correlation id.
        corr: Correlation,
        /// Task index.
        index: usize,
        /// The attempt, its waits, their events, what the task shows meanwhile.
        suspension: crate::tools::Suspension,
        /// Told once received.
        ack: oneshot::Sender<()>,
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

/// Stops at once, writing nothing: another process owns the run now, or may soon (its lease
/// could not be renewed). Says which.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Abandon(pub &'static str);

// ---- To the supervisor
/// Where an agent reports an attempt of a task: its run's coordinator.
#[derive(Clone)]
pub struct Reply {
    /// The attempt started.
    pub started: Recipient<TaskStarted>,
    /// The attempt ended.
    pub attempted: Recipient<TaskAttempted>,
}

/// A ready task handed to the supervisor by its run's coordinator.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Delegate {
    /// Run, task and correlation id.
    pub corr: Correlation,
    /// Index of the task in its plan.
    pub index: usize,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// The tool to run.
    pub tool: Arc<dyn Tool>,
    /// Inputs with every reference resolved.
    pub inputs: Value,
    /// Deadline of the attempt.
    pub timeout: Option<Duration>,
    /// Cancelled on run cancel or shutdown.
    pub cancel: CancellationToken,
    /// The run workspace.
    pub workspace: PathBuf,
    /// Stable across attempts of this task in this run.
    pub idempotency_key: String,
    /// Priority.
    pub priority: Priority,
    /// What scoring needs.
    pub needs: TaskNeeds,
    /// Where the agent reports the attempt.
    pub reply: Reply,
    /// Models, bound to this task (the agent adds itself).
    pub models: crate::tools::ModelAccess,
    /// The task's link to its run and runtime.
    pub(crate) link: crate::tools::Link,
}

/// An agent finished an attempt; its slot is free.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SlotFreed(pub usize);

/// Drops every waiting task of a run (cancel, shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Withdraw(pub RunId);

/// Asks for the queue's state (health checks, `agents ls`).
#[derive(Message)]
#[rtype(result = "QueueReport")]
pub struct QueueStats;

/// The queue's state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueReport {
    /// Tasks waiting for an agent.
    pub waiting: usize,
    /// Tasks in flight on all agents.
    pub in_flight: u32,
    /// Per agent: id, tasks in flight, max_concurrency.
    pub agents: Vec<AgentLoad>,
}

/// One agent's load.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentLoad {
    /// Agent id.
    pub id: String,
    /// Tasks in flight.
    pub in_flight: u32,
    /// Its limit.
    pub max_concurrency: u32,
}

// ---- To an agent

/// Runs one attempt of a task.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunTask {
    /// The task.
    pub delegate: Delegate,
    /// This agent's index at the supervisor.
    pub agent: usize,
    /// Every eligible agent's score.
    pub candidates: Vec<Candidate>,
}

// ---- To a gate actor

/// Checks one gate.
#[derive(Message)]
#[rtype(result = "Verdict")]
pub struct CheckGate {
    /// Run, task and correlation id.
    pub corr: Correlation,
    /// The gate.
    pub gate: GateSpec,
    /// The task's outputs.
    pub outputs: Map<String, Value>,
    /// The run workspace (command gates run there).
    pub workspace: PathBuf,
    /// Idempotency key and attempt for the command's environment.
    pub attempt: u32,
    /// Cancelled on run cancel or shutdown.
    pub cancel: CancellationToken,
    /// Models, for `llm_judge`.
    pub models: ModelAccess,
}

/// A gate's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether the outputs pass.
    pub passed: bool,
    /// Why, in one sentence.
    pub reason: String,
    /// Details (errors, exit code, …).
    pub detail: Value,
    /// The failure's kind when the gate could not judge (e.g. `budget_exceeded`); else a
    /// failed verdict fails its task as `gate`.
    pub error_type: Option<FailureKind>,
}

// ---- To the node

/// Stores a validated plan as a new run; unless `detach`, starts executing it.
#[derive(Message)]
#[rtype(result = "Result<RunId, RuntimeError>")]
pub struct Submit {
    /// The plan.
    pub plan: ValidatedPlan,
    /// Correlation id of the run.
    pub corr: CorrelationId,
    /// Store only.
    pub detach: bool,
    /// The run's id, when the caller chose it (the planner bills its calls to it).
    pub id: Option<RunId>,
    /// Events to log right after `run.created` (the planner's).
    pub prelude: Vec<EventData>,
    /// The project, when the caller decides it (the API key's); else the plan's.
    pub project: Option<String>,
    /// The template the run is made from (owner project, id).
    pub template: Option<(String, String)>,
    /// What a restored or forked run starts with.
    pub restore: Option<Restore>,
    /// Refuse a plan that runs commands (the caller lacks the `shell` scope).
    pub no_commands: bool,
    /// An existing directory to work in instead of a new workspace.
    pub workspace: Option<std::path::PathBuf>,
    /// The run it was made from.
    pub parent: Option<RunId>,
}

/// What a restored or forked run starts with: its lineage, the tasks restored as succeeded
/// and their artifacts (shared by hash). Its workspace is already rebuilt.
pub struct Restore {
    /// Parent run, checkpoint, fork point.
    pub lineage: crate::store::Lineage,
    /// Succeeded task rows (their run id is set here).
    pub tasks: Vec<TaskRow>,
    /// Artifact rows of the restored tasks (their run id is set here).
    pub artifacts: Vec<crate::store::ArtifactRow>,
    /// Decompositions it starts with (already in the plan's graph).
    pub decompositions: Vec<crate::store::DecompositionRow>,
}

/// Commits rows written outside any run's coordinator (planner usage rows, checkpoints);
/// resolves once they are committed.
#[derive(Message)]
#[rtype(result = "Result<(), RuntimeError>")]
pub struct WriteBatch(pub Batch);

/// Claims and executes a stored, unfinished run.
#[derive(Message)]
#[rtype(result = "Result<Resumed, RuntimeError>")]
pub struct Resume {
    /// The run.
    pub run: RunId,
    /// The token of its lease when this process holds it already (the fleet claimed the
    /// run); else the lease is claimed first.
    pub granted: Option<i64>,
}

/// What `Resume` did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resumed {
    /// This process now executes it.
    Started,
    /// This process already executes it.
    AlreadyRunning,
    /// It had already ended.
    Finished(RunStatus),
}

/// Cancels a run, wherever it executes.
#[derive(Message)]
#[rtype(result = "Result<Cancelled, RuntimeError>")]
pub struct Cancel {
    /// The run.
    pub run: RunId,
    /// Shown as the run's reason.
    pub reason: String,
}

/// What `Cancel` did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancelled {
    /// This process is stopping it.
    Stopping,
    /// Another live process executes it; a command row asks it to stop.
    Requested(LeaseInfo),
    /// It had already ended.
    Finished(RunStatus),
}

/// A decision on one of the run's waits is in the store: its coordinator (here, or in the
/// process that owns the run, through a command row) applies it.
#[derive(Message)]
#[rtype(result = "Result<(), RuntimeError>")]
pub struct Wake(pub RunId);

/// A coordinator ended (the run finished, was interrupted, or stopped on a store error).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunEnded {
    /// The run.
    pub run: RunId,
    /// Task latencies (ready → committed, ms) when the run finished.
    pub latencies: Option<Vec<f32>>,
    /// The store error that stopped it, if any.
    pub error: Option<String>,
}

/// Interrupts every run and stops the actor system.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Takes the recorded latencies of a finished run.
#[derive(Message)]
#[rtype(result = "Option<Vec<f32>>")]
pub struct TakeLatencies(pub RunId);

/// Runs this process executes now.
#[derive(Message)]
#[rtype(result = "Vec<RunId>")]
pub struct ActiveRuns;

// ---- To the persistence actor

/// Acknowledgement of a write: `Ok` once committed.
pub type Ack = oneshot::Sender<Result<(), Arc<StoreError>>>;

/// Queue a batch; `ack` (when given) learns the outcome of its commit.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Persist {
    /// Rows to write.
    pub batch: Batch,
    /// Told after the commit.
    pub ack: Option<Ack>,
}

/// Claims a run's lease for this process.
#[derive(Message)]
#[rtype(result = "Result<Claim, StoreError>")]
pub struct ClaimLease(pub RunId);

/// This process holds a run's lease with this token, claimed outside the persistence actor
/// (the fleet's claim): the run's writes are fenced with it from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AdoptLease(pub RunId, pub i64);

/// Renews every lease of this process; returns the runs still held.
#[derive(Message)]
#[rtype(result = "Result<Vec<RunId>, StoreError>")]
pub struct RenewLeases;

/// Gives a lease up.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseLease(pub RunId);

/// The runtime is stopping: commits everything queued, waits for the lease operations in
/// flight, then closes the store's connections and resolves. Later writes are refused and
/// later lease operations do nothing, so no store call outlives the actor system.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close(pub oneshot::Sender<()>);
