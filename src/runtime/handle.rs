//! `RunHandle`: a run as the embedding program sees it: its ids, a gap-free stream of its
//! events, cancel, and the outcome with every task's outputs.

use super::{Cancelled, Runtime, RuntimeError};
use crate::domain::{
    CheckpointId, CorrelationId, Delta, Event, RunId, RunStatus, TaskKey, TaskStatus,
};
use futures::stream::{self, Stream};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// A submitted run: its events, status, cancel, approvals and outcome. Made by
/// [`Runtime::submit`] (and its variants) or [`Runtime::run`] for any stored run; cheap to
/// clone.
///
/// ```
/// use futures::StreamExt;
/// use nofx::plan::{Plan, Task};
/// use nofx::{EventType, RunStatus, Runtime};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), nofx::RuntimeError> {
/// let rt = Runtime::builder().memory_store().build().await?;
/// let run = rt
///     .submit(Plan::new("p").task(Task::new("a", "shell").input("argv", serde_json::json!(["sleep", "30"]))), Default::default())
///     .await?;
/// // Cancel once the task runs: its process is killed and the run ends `cancelled`.
/// let mut events = Box::pin(run.subscribe());
/// while let Some(e) = events.next().await {
///     if e?.kind == EventType::TaskStarted {
///         run.cancel().await?;
///     }
/// }
/// assert_eq!(run.wait().await?.status, RunStatus::Cancelled);
/// rt.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RunHandle {
    pub(super) rt: Runtime,
    id: RunId,
    corr: CorrelationId,
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("id", &self.id)
            .field("correlation_id", &self.corr)
            .finish_non_exhaustive()
    }
}

/// One task in an outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutcome {
    /// Task id.
    pub id: TaskKey,
    /// Final status.
    pub status: TaskStatus,
    /// Outputs of its last attempt.
    pub outputs: Option<Value>,
    /// Why it failed, was skipped or cancelled.
    pub error: Option<String>,
    /// Attempts made.
    pub attempts: i64,
    /// Agent of the last attempt.
    pub agent: Option<String>,
    /// The checkpoint its result was restored from (it did not run in this run).
    pub restored_from: Option<CheckpointId>,
    /// The task it is a subtask of (its id is `PARENT.CHILD`).
    pub parent_task_id: Option<TaskKey>,
    /// 0 for a task of the plan, its parent's depth + 1 for a subtask.
    pub depth: u32,
}

impl TaskOutcome {
    pub(crate) fn of(t: crate::store::TaskRow) -> Self {
        Self {
            status: t.status,
            outputs: t.outputs,
            error: t.error,
            attempts: t.attempt,
            agent: t.agent,
            restored_from: t.restored_from,
            parent_task_id: t.task_id.parent(),
            depth: t.task_id.depth(),
            id: t.task_id,
        }
    }

    pub(crate) fn pending(id: TaskKey) -> Self {
        Self {
            status: TaskStatus::Pending,
            outputs: None,
            error: None,
            attempts: 0,
            agent: None,
            restored_from: None,
            parent_task_id: id.parent(),
            depth: id.depth(),
            id,
        }
    }
}

/// The live process executing a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: i64,
    /// Until when its lease lasts without a heartbeat (RFC 3339).
    pub lease_expires_at: String,
}

/// Whether an unfinished run is executed by a live process, and by which.
async fn liveness(
    store: &crate::store::Store,
    r: &crate::store::RunRecord,
) -> Result<(bool, Option<Owner>), RuntimeError> {
    if r.status.is_terminal() {
        return Ok((false, None));
    }
    Ok(match store.live_owner(r.id).await? {
        Some(l) => (
            false,
            Some(Owner {
                host: l.host,
                pid: l.pid,
                lease_expires_at: crate::domain::time::rfc3339(l.expires_at),
            }),
        ),
        None => (true, None),
    })
}

/// A run in a list: the same document for `nofx runs ls --json` and `GET /runs`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Run id.
    pub id: RunId,
    /// Plan name.
    pub name: String,
    /// Status.
    pub status: RunStatus,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// Unfinished and executed by no live process: [`crate::Runtime::resume`] takes it.
    pub resumable: bool,
    /// The project it belongs to.
    pub project: String,
    /// Correlation id.
    pub correlation_id: CorrelationId,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Duration from first start to end, in ms, when both are known.
    pub duration_ms: Option<i64>,
    /// Tasks in its plan.
    pub task_count: usize,
}

/// Which runs a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFilter {
    /// Every run.
    All,
    /// Runs with this status.
    Status(RunStatus),
    /// Unfinished runs no live process executes (`resumable`).
    Interrupted,
}

impl RunFilter {
    /// `pending`, `running`, `waiting`, `succeeded`, `failed`, `cancelled` or `interrupted`.
    ///
    /// # Errors
    /// A sentence listing what is accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "interrupted" {
            return Ok(Self::Interrupted);
        }
        RunStatus::parse(s).map(Self::Status).map_err(|_| {
            format!("must be pending, running, waiting, succeeded, failed, cancelled or interrupted, got `{s}`")
        })
    }

    /// The stored statuses to read for this filter.
    pub fn statuses(self) -> Vec<RunStatus> {
        match self {
            Self::All => Vec::new(),
            Self::Status(s) => vec![s],
            Self::Interrupted => vec![RunStatus::Pending, RunStatus::Running, RunStatus::Waiting],
        }
    }

    /// Whether a summary passes (status filters are applied by the query).
    pub fn keeps(self, s: &RunSummary) -> bool {
        self != Self::Interrupted || s.resumable
    }
}

impl RunSummary {
    /// The summary of a stored run (reads its lease when it is unfinished).
    ///
    /// # Errors
    /// Store failures.
    pub async fn of(
        store: &crate::store::Store,
        r: &crate::store::RunRecord,
    ) -> Result<Self, RuntimeError> {
        let (resumable, _) = liveness(store, r).await?;
        Ok(Self {
            id: r.id,
            name: r.name.clone(),
            status: r.status,
            reason: r.reason.clone(),
            resumable,
            project: r.project.clone(),
            correlation_id: r.correlation_id.clone(),
            created_at: crate::domain::time::rfc3339(r.created_at),
            duration_ms: r.started_at.zip(r.finished_at).map(|(s, f)| f - s),
            task_count: r.plan.tasks.len(),
        })
    }
}

/// A run as it stands in the store: status, reason, and every task with its outputs, in
/// plan order. The same document as `nofx runs show --json` and `GET /runs/{id}`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), nofx::RuntimeError> {
/// use nofx::plan::{Plan, Task};
/// use nofx::{RunStatus, TaskStatus};
/// let rt = nofx::Runtime::builder().memory_store().build().await?;
/// let plan = Plan::new("p")
///     .task(Task::new("ok", "test:echo").input("x", 1))
///     .task(Task::new("bad", "test:validate").input("data", 1).input("schema", serde_json::json!({"type": "string"})));
/// let outcome = rt.submit(plan, Default::default()).await?.wait().await?;
/// assert_eq!(outcome.status, RunStatus::Failed);
/// for task in &outcome.tasks {
///     match task.status {
///         TaskStatus::Succeeded => println!("{}: {:?}", task.id, task.outputs),
///         _ => println!("{}: {} ({:?})", task.id, task.status, task.error),
///     }
/// }
/// rt.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Run id.
    pub id: RunId,
    /// Plan name.
    pub name: String,
    /// Status.
    pub status: RunStatus,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// Unfinished and executed by no live process (it was interrupted: Ctrl-C, a kill, a
    /// service stopped past its grace): [`crate::Runtime::resume`] or
    /// [`crate::Runtime::resume_orphans`] of a runtime on the same store takes it.
    pub resumable: bool,
    /// The live process executing it, when one does.
    pub owner: Option<Owner>,
    /// The project it belongs to.
    pub project: String,
    /// Correlation id.
    pub correlation_id: CorrelationId,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Duration from first start to end, in ms, when both are known.
    pub duration_ms: Option<i64>,
    /// The run workspace.
    pub workspace: String,
    /// The run it was restored or forked from.
    pub parent_run_id: Option<RunId>,
    /// The checkpoint it started from.
    pub checkpoint_id: Option<CheckpointId>,
    /// The task a fork started at.
    pub forked_at: Option<String>,
    /// Every task, in plan order, each decomposed task followed by its subtasks.
    pub tasks: Vec<TaskOutcome>,
}

impl Outcome {
    /// Reads a run's current state.
    ///
    /// # Errors
    /// Unknown run, store failures.
    pub async fn load(store: &crate::store::Store, id: RunId) -> Result<Self, RuntimeError> {
        let r = store.run(id).await?;
        // Tasks without a row have not moved yet: they are pending (subtasks of an unfinished
        // run are listed by their decompositions). Subtasks follow their parent, in the order
        // they joined the run.
        let mut rows: HashMap<String, crate::store::TaskRow> = HashMap::new();
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        for t in store.tasks(id).await? {
            if let Some(p) = t.task_id.parent() {
                children
                    .entry(p.to_string())
                    .or_default()
                    .push(t.task_id.to_string());
            }
            rows.insert(t.task_id.to_string(), t);
        }
        if !r.status.is_terminal() {
            for d in store.decompositions(id).await? {
                let kids = children.entry(d.task_id.to_string()).or_default();
                for s in d.subtasks {
                    if !rows.contains_key(&s.id) {
                        kids.push(s.id);
                    }
                }
            }
            // Rows first (in index order), then those without one: in decomposition order.
            for kids in children.values_mut() {
                let order = |k: &String| rows.get(k).map_or(i64::MAX, |r| r.idx);
                kids.sort_by_key(order);
            }
        }
        let mut tasks: Vec<TaskOutcome> = Vec::with_capacity(rows.len().max(r.plan.tasks.len()));
        let mut stack: Vec<String> = r.plan.tasks.iter().rev().map(|t| t.id.clone()).collect();
        while let Some(key) = stack.pop() {
            if let Some(kids) = children.remove(&key) {
                stack.extend(kids.into_iter().rev());
            }
            tasks.push(match rows.remove(&key) {
                Some(t) => TaskOutcome::of(t),
                None => TaskOutcome::pending(TaskKey::from_trusted(key)),
            });
        }
        let (resumable, owner) = liveness(store, &r).await?;
        Ok(Self {
            id,
            name: r.name,
            status: r.status,
            reason: r.reason,
            resumable,
            owner,
            project: r.project,
            correlation_id: r.correlation_id,
            created_at: crate::domain::time::rfc3339(r.created_at),
            duration_ms: r.started_at.zip(r.finished_at).map(|(s, f)| f - s),
            workspace: r.workspace,
            parent_run_id: r.lineage.as_ref().map(|l| l.parent_run_id),
            checkpoint_id: r.lineage.as_ref().and_then(|l| l.checkpoint_id.clone()),
            forked_at: r.lineage.and_then(|l| l.forked_at),
            tasks,
        })
    }
}

impl RunHandle {
    pub(crate) fn new(rt: Runtime, id: RunId, corr: CorrelationId) -> Self {
        Self { rt, id, corr }
    }

    /// The run id.
    pub fn id(&self) -> RunId {
        self.id
    }

    /// The correlation id.
    pub fn correlation_id(&self) -> &CorrelationId {
        &self.corr
    }

    /// Every event of the run from the first, in order and without gaps, then live ones as
    /// they are committed; ends after the event that ends the run, or after a `run.interrupted`
    /// committed while following (the runtime executing it stopped).
    pub fn subscribe(&self) -> impl Stream<Item = Result<Event, RuntimeError>> + Send + 'static {
        self.subscribe_after(0)
    }

    /// Like [`RunHandle::subscribe`], starting after event `seq` (a client resuming a stream
    /// gets no gap and no repeat). A run that already ended yields its remaining events, then
    /// the stream ends.
    pub fn subscribe_after(
        &self,
        seq: i64,
    ) -> impl Stream<Item = Result<Event, RuntimeError>> + Send + 'static {
        super::follow::run_events(
            self.rt.store().clone(),
            Some(self.rt.hub().clone()),
            self.id,
            seq,
        )
    }

    /// Streamed model text (`model.delta`) of the run's model calls from now on, until the
    /// run's execution ends. While someone holds this stream, model calls of the run are
    /// made in streaming mode. Deltas are never stored and carry no sequence number: a
    /// subscriber that falls behind misses some, and the whole answer is in the stored
    /// `model.completed` event.
    pub fn deltas(&self) -> impl Stream<Item = Delta> + Send + 'static {
        let rx = self.rt.hub().subscribe_deltas(self.id);
        stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(d) => return Some((d, rx)),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                }
            }
        })
    }

    /// Cancels the run.
    ///
    /// # Errors
    /// Store failures, a stopped runtime.
    ///
    /// # Cancel safety
    /// Safe.
    pub async fn cancel(&self) -> Result<Cancelled, RuntimeError> {
        self.rt.cancel(self.id, "cancelled by the caller").await
    }

    /// Waits for the run to end and returns its outcome. It reads the run's status once and
    /// then only listens for the end, so waiting costs the store nothing while the run
    /// executes.
    ///
    /// # Errors
    /// [`RuntimeError::Interrupted`] when the runtime executing the run stops first, or when
    /// no live process executes the running run (it stopped midway and nothing resumed it); [`RuntimeError::Stopped`] when this handle's runtime has stopped; store failures.
    ///
    /// # Cancel safety
    /// Safe: dropping it only stops waiting.
    pub async fn wait(&self) -> Result<Outcome, RuntimeError> {
        self.wait_end().await?;
        Outcome::load(self.rt.store(), self.id)
            .await
            .map_err(|e| self.stopped().unwrap_or(e))
    }

    /// Like [`RunHandle::wait`], but returns only the run's status and reason (no task
    /// outputs are read, which matters for runs with very many tasks).
    ///
    /// # Errors
    /// As [`RunHandle::wait`].
    ///
    /// # Cancel safety
    /// Safe: dropping it only stops waiting.
    pub async fn wait_status(&self) -> Result<(RunStatus, Option<String>), RuntimeError> {
        self.wait_end().await?;
        self.rt
            .store()
            .run_status(self.id)
            .await
            .map_err(|e| self.or_stopped(e))
    }

    /// The run's status as stored now, without waiting. An unfinished run keeps the status
    /// it had (`running`, `waiting`) when the runtime executing it stops; [`RunHandle::wait`]
    /// then says [`RuntimeError::Interrupted`].
    ///
    /// # Errors
    /// [`RuntimeError::Interrupted`] or [`RuntimeError::Stopped`] once this handle's runtime
    /// has stopped (its store is closed); store failures.
    pub async fn status(&self) -> Result<RunStatus, RuntimeError> {
        if let Some(e) = self.stopped() {
            return Err(e);
        }
        Ok(self
            .rt
            .store()
            .run_status(self.id)
            .await
            .map_err(|e| self.or_stopped(e))?
            .0)
    }

    /// A store failure, or what a call says once the runtime has stopped (a read can meet
    /// the store closing under it).
    fn or_stopped(&self, e: crate::store::StoreError) -> RuntimeError {
        self.stopped().unwrap_or_else(|| e.into())
    }

    /// Once the runtime has stopped (its store is closed), what a call about the run says.
    fn stopped(&self) -> Option<RuntimeError> {
        if self.rt.hub().was_interrupted(self.id) {
            Some(RuntimeError::Interrupted { run: self.id })
        } else if self.rt.is_stopped() {
            Some(RuntimeError::Stopped)
        } else {
            None
        }
    }

    async fn wait_end(&self) -> Result<(), RuntimeError> {
        let mut rx = self.rt.hub().subscribe_end(self.id);
        let ended = self.wait_end_with(&mut rx).await.map_err(|e| match e {
            RuntimeError::Store(s) => self.or_stopped(s),
            other => other,
        });
        drop(rx);
        self.rt.hub().forget_if_unused(self.id);
        ended
    }

    async fn wait_end_with(
        &self,
        rx: &mut tokio::sync::broadcast::Receiver<Event>,
    ) -> Result<(), RuntimeError> {
        let ended = 'check: loop {
            if let Some(e) = self.stopped() {
                break 'check Err(e);
            }
            let status = self.rt.store().run_status(self.id).await?.0;
            if status.is_terminal() {
                break 'check Ok(());
            }
            // A running run that no live process executes (the process that ran it stopped
            // or died) would never end while waited for. (A pending run waits for a process
            // to take it, a waiting one for a decision.)
            let orphaned = status == RunStatus::Running
                && !self.rt.hub().is_local(self.id)
                && self.rt.store().live_owner(self.id).await?.is_none();
            if orphaned {
                // Unless it ended between the reads.
                if self.rt.store().run_status(self.id).await?.0.is_terminal() {
                    break 'check Ok(());
                }
                break 'check Err(RuntimeError::Interrupted { run: self.id });
            }
            loop {
                // A run executing in another process publishes nothing here: look at the
                // store again now and then.
                match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
                    Ok(Ok(e)) if e.kind.is_terminal() => break 'check Ok(()),
                    Ok(Ok(e)) if e.kind.ends_run() => {
                        break 'check Err(RuntimeError::Interrupted { run: self.id })
                    }
                    Ok(Ok(_)) => {}
                    // Missed events: the store says whether the end was among them.
                    Ok(Err(RecvError::Lagged(_))) | Err(_) => continue 'check,
                    Ok(Err(RecvError::Closed)) => return Err(RuntimeError::Stopped),
                }
            }
        };
        ended
    }
}
