//! The `Runtime` facade: submit, resume, cancel, decide, checkpoint, restore and fork runs;
//! read their state; shut down in order. Cheap to clone; every call is a message to the node
//! or a read of the store.

use super::hub::EventHub;
use super::{check, messages, node, supervisor};
use super::{Cancelled, QueueReport, Resumed, RunHandle};
use super::{RuntimeBuilder, RuntimeError, Shared};
use crate::domain::plan::PlanSource;
use crate::domain::plan::{PlanErrors, ValidatedPlan};
use crate::domain::{AgentSpec, CorrelationId, RunId};
use crate::store::Store;
use crate::tools::ToolRegistry;
use actix::prelude::*;
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// How a run is submitted.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// The caller's correlation id (default: a new one).
    pub correlation: Option<CorrelationId>,
    /// Only store the run, for another runtime on the store to execute (with
    /// [`Runtime::resume`]).
    pub detach: bool,
    /// The project the run belongs to (default: the plan's `project`, else `default`).
    pub project: Option<String>,
    /// The run's id, when the caller chose it (default: a new one).
    pub id: Option<RunId>,
    /// The template the run is made from: (owner project, id); its usage count goes up in
    /// the transaction that stores the run.
    pub template: Option<(String, String)>,
    /// Refuse the run (`Forbidden`, nothing stored) when its plan runs commands: `shell`
    /// tasks, `command` gates, or `agent` tasks an agent may do with `shell` (directly or
    /// through the agents it may ask). The API sets it for keys without the `shell` scope.
    pub no_commands: bool,
    /// Work in this existing directory instead of a new workspace under the data
    /// directory (nofx never deletes it); the run's tasks read and write it.
    pub workspace: Option<std::path::PathBuf>,
    /// The run this one was made from (its `parentRunId`; e.g. the gathering run whose plan
    /// it runs).
    pub parent: Option<RunId>,
}

/// The message that creates a run of `plan` as `opts` ask (a new correlation id unless one is
/// given); the caller adds what only it knows (planner events, what a restore starts with).
pub(super) fn submission(plan: ValidatedPlan, opts: SubmitOptions) -> messages::Submit {
    messages::Submit {
        plan,
        corr: opts.correlation.unwrap_or_else(CorrelationId::generate),
        detach: opts.detach,
        id: opts.id,
        prelude: Vec::new(),
        project: opts.project,
        template: opts.template,
        restore: None,
        no_commands: opts.no_commands,
        workspace: opts.workspace,
        parent: opts.parent,
    }
}

/// What every clone of a runtime shares.
pub(crate) struct Inner {
    pub(super) node: Addr<node::Node>,
    pub(super) supervisor: Addr<supervisor::Supervisor>,
    pub(super) shared: Arc<Shared>,
    pub(super) hub: EventHub,
    pub(super) thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The tool threads; they stop when the last handle of the runtime goes.
    pub(super) _pool: super::pool::ToolPool,
    /// The temporary data directory of a memory store, removed with the runtime.
    pub(super) _scratch: Option<Scratch>,
}

/// A directory removed when dropped.
pub(crate) struct Scratch(pub(crate) std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort when `shutdown` was not awaited: interrupt runs and stop the system.
        self.node.do_send(messages::Shutdown);
    }
}

/// What [`Runtime::resume_all`] did with one unfinished run.
pub struct Resumption {
    /// The run.
    pub run: RunId,
    /// Its plan's name.
    pub name: String,
    /// Its plan's number of tasks.
    pub tasks: usize,
    /// What resuming it gave.
    pub result: Result<(Resumed, RunHandle), RuntimeError>,
}

/// What [`Runtime::resume_orphans`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Orphans {
    /// The runs this runtime now executes, oldest first.
    pub resumed: Vec<RunId>,
    /// The unfinished runs it could not resume, and why; they stay as they are (resumable
    /// once the cause is fixed).
    pub not_resumed: Vec<(RunId, RuntimeError)>,
}

/// A running nofx runtime: made by [`Runtime::builder`], cheap to clone, usable from any
/// tokio runtime. Stop it with [`Runtime::shutdown`] (runs it executes stay resumable).
///
/// ```
/// use nofx::plan::{PlanSource, Format};
/// use nofx::{Runtime, RunStatus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), nofx::RuntimeError> {
/// let data = std::env::temp_dir().join(format!("nofx-doc-{}", std::process::id()));
/// let rt = Runtime::builder().data_dir(&data).build().await?; // SQLite in data/nofx.db
/// let plan = PlanSource::parse("name: hi\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n", Format::Yaml, None)?;
/// let run = rt.submit(&plan, Default::default()).await?;
/// assert_eq!(run.wait().await?.status, RunStatus::Succeeded);
/// rt.shutdown().await;
///
/// // A later runtime on the same data directory finds the run, and resumes what a
/// // stopped or killed one left unfinished.
/// let rt = Runtime::builder().data_dir(&data).build().await?;
/// let orphans = rt.resume_orphans().await?;
/// assert!(orphans.resumed.is_empty() && orphans.not_resumed.is_empty());
/// assert_eq!(rt.run(run.id()).await?.status().await?, RunStatus::Succeeded);
/// rt.shutdown().await;
/// # std::fs::remove_dir_all(&data).ok();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Runtime {
    pub(super) inner: Arc<Inner>,
}

// Both cross threads freely: a program may hold them in any task.
const _: fn() = || {
    fn shared<T: Send + Sync + Clone + 'static>() {}
    shared::<Runtime>();
    shared::<RunHandle>();
};

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::domain::plan::ToolCatalog;
        let shared = &self.inner.shared;
        f.debug_struct("Runtime")
            .field("store", &self.store().backend())
            .field("data_dir", &shared.data_dir)
            .field(
                "agents",
                &shared.agents.iter().map(|a| &a.id).collect::<Vec<_>>(),
            )
            .field("tools", &shared.tools.names())
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A builder with defaults: data directory `.nofx` (relative to the working directory)
    /// with the SQLite store `nofx.db` in it, built-in agents and tools, any command allowed.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// The store, for reads.
    pub fn store(&self) -> &Store {
        &self.inner.shared.store
    }

    /// The agents.
    pub fn agents(&self) -> &[AgentSpec] {
        &self.inner.shared.agents
    }

    /// The tools.
    pub fn tools(&self) -> &ToolRegistry {
        &self.inner.shared.tools
    }

    /// The task graph of run `run` as it stands: its plan's tasks and the subtasks of the
    /// decompositions made so far (what [`crate::domain::layout::Layout`] draws).
    ///
    /// # Errors
    /// An unknown run, store failures, a stored plan that no longer validates against this
    /// runtime's tools and agents.
    pub async fn graph(&self, run: RunId) -> Result<crate::domain::graph::TaskGraph, RuntimeError> {
        let shared = &self.inner.shared;
        let record = shared.store.run(run).await?;
        let decompositions = shared.store.decompositions(run).await?;
        node::rebuild(shared, &record, decompositions).map(|p| p.graph)
    }

    /// The data directory (absolute).
    pub fn data_dir(&self) -> &Path {
        &self.inner.shared.data_dir
    }

    /// Validates a plan against this runtime's tools and agents.
    ///
    /// # Errors
    /// Every problem, each naming its task and line.
    pub fn validate(
        &self,
        plan: &PlanSource,
        inputs: &Map<String, Value>,
    ) -> Result<ValidatedPlan, PlanErrors> {
        let shared = &self.inner.shared;
        check::check_plan(
            plan,
            inputs,
            &shared.tools,
            &shared.agents,
            &shared.policy,
            &shared.models,
        )
    }

    /// Validates and stores a plan, then executes it; returns once the run is committed.
    ///
    /// # Errors
    /// An invalid plan, a failed write, a stopped runtime.
    ///
    /// # Cancel safety
    /// If dropped after the run was committed, the run still executes.
    pub async fn submit(
        &self,
        plan: impl Into<PlanSource>,
        inputs: Map<String, Value>,
    ) -> Result<RunHandle, RuntimeError> {
        self.submit_with(plan, inputs, None, false).await
    }

    /// Like [`Runtime::submit`], with the caller's correlation id and the option to only
    /// store the run (`detach`), for another runtime on the store to execute.
    ///
    /// # Errors
    /// As `submit`.
    ///
    /// # Cancel safety
    /// As `submit`.
    pub async fn submit_with(
        &self,
        plan: impl Into<PlanSource>,
        inputs: Map<String, Value>,
        correlation: Option<CorrelationId>,
        detach: bool,
    ) -> Result<RunHandle, RuntimeError> {
        let opts = SubmitOptions {
            correlation,
            detach,
            ..SubmitOptions::default()
        };
        self.submit_opts(plan, inputs, opts).await
    }

    /// Like [`Runtime::submit`], with every option.
    ///
    /// # Errors
    /// As `submit`.
    ///
    /// # Cancel safety
    /// As `submit`.
    pub async fn submit_opts(
        &self,
        plan: impl Into<PlanSource>,
        inputs: Map<String, Value>,
        opts: SubmitOptions,
    ) -> Result<RunHandle, RuntimeError> {
        let plan = self.validate(&plan.into(), &inputs)?;
        self.create(submission(plan, opts)).await
    }

    /// Stores a new run (and, unless detached, executes it here): every run is created
    /// through this one message.
    pub(super) async fn create(&self, submit: messages::Submit) -> Result<RunHandle, RuntimeError> {
        let corr = submit.corr.clone();
        let run = self
            .inner
            .node
            .send(submit)
            .await
            .map_err(|_| RuntimeError::Stopped)??;
        Ok(RunHandle::new(self.clone(), run, corr))
    }

    /// Asks the planner for a plan for `goal` without running it.
    /// Its model calls are recorded as usage rows without a run.
    ///
    /// # Errors
    /// No provider (the message says how to configure one), a budget, failing models, or a
    /// plan still invalid after the last round.
    ///
    /// # Cancel safety
    /// Dropping it abandons the call in flight; finished calls are still recorded.
    pub async fn plan_goal(
        &self,
        goal: &str,
        options: crate::planner::PlannerOptions,
    ) -> Result<crate::planner::Planned, RuntimeError> {
        let (planned, _) = self
            .plan_for(None, &CorrelationId::generate(), "default", goal, options)
            .await?;
        Ok(planned)
    }

    /// Decomposes `goal` into a plan with the planner, then stores and executes it like
    /// [`Runtime::submit`]. The accepted plan is the run's plan; the planner's calls are
    /// usage rows of the run and its events (`model.routed`, `plan.generated`, …) open the
    /// run's log.
    ///
    /// # Errors
    /// As [`Runtime::plan_goal`], then as `submit`.
    ///
    /// # Cancel safety
    /// As `plan_goal` until the run is committed; then the run executes.
    pub async fn submit_goal(
        &self,
        goal: &str,
        options: crate::planner::PlannerOptions,
    ) -> Result<(RunHandle, crate::planner::Planned), RuntimeError> {
        self.submit_goal_opts(goal, options, SubmitOptions::default())
            .await
    }

    /// Like [`Runtime::submit_goal`], with the caller's correlation id and project (`detach`
    /// is ignored: a planned goal runs here).
    ///
    /// # Errors
    /// As `submit_goal`.
    ///
    /// # Cancel safety
    /// As `submit_goal`.
    pub async fn submit_goal_opts(
        &self,
        goal: &str,
        options: crate::planner::PlannerOptions,
        opts: SubmitOptions,
    ) -> Result<(RunHandle, crate::planner::Planned), RuntimeError> {
        let id = opts.id.unwrap_or_default();
        let corr = opts.correlation.unwrap_or_else(CorrelationId::generate);
        let project = opts.project.unwrap_or_else(|| "default".to_string());
        let (planned, prelude) = self
            .plan_for(Some(id), &corr, &project, goal, options)
            .await?;
        let opts = SubmitOptions {
            correlation: Some(corr),
            detach: false,
            project: Some(project),
            id: Some(id),
            template: None,
            no_commands: opts.no_commands,
            workspace: opts.workspace,
            parent: opts.parent,
        };
        let submit = messages::Submit {
            prelude,
            ..submission(planned.plan.clone(), opts)
        };
        Ok((self.create(submit).await?, planned))
    }

    async fn plan_for(
        &self,
        run: Option<RunId>,
        corr: &CorrelationId,
        project: &str,
        goal: &str,
        options: crate::planner::PlannerOptions,
    ) -> Result<(crate::planner::Planned, Vec<crate::domain::EventData>), RuntimeError> {
        let shared = &self.inner.shared;
        if goal.trim().is_empty() {
            return Err(RuntimeError::BadGoal(
                "the goal is empty: say what the run should achieve".into(),
            ));
        }
        if !shared.models.is_configured() {
            return Err(RuntimeError::BadGoal(format!(
                "cannot plan the goal: {}",
                shared.models.how_to_configure()
            )));
        }
        let caller = crate::models::Caller {
            run,
            task: None,
            correlation: corr.clone(),
            tool: "planner".into(),
            agent: None,
            role: None,
            priority: crate::domain::Priority::Normal,
            capabilities: Vec::new(),
            project: project.to_string(),
        };
        let sink = crate::planner::Collected::default();
        let system = crate::planner::system_prompt(&shared.tools, &shared.agents);
        let result = crate::planner::plan_goal(
            &shared.models,
            &caller,
            &sink,
            system,
            goal,
            options,
            |src| self.validate(src, &Map::new()),
        )
        .await;
        // Every planner call is a usage row, whether or not a plan came out of it.
        let rows = sink.take_rows();
        if !rows.is_empty() {
            let batch = crate::store::Batch {
                model_calls: rows,
                ..Default::default()
            };
            self.write(batch).await?;
        }
        let planned = result?;
        let mut events = sink.take_events();
        events.push(crate::planner::generated_event(goal, &planned));
        Ok((planned, events))
    }

    /// Claims and executes a stored, unfinished run.
    ///
    /// # Errors
    /// `LeaseHeld` when a live process executes it; store failures; a stored plan that no
    /// longer validates against this runtime's tools and agents.
    ///
    /// # Cancel safety
    /// If dropped after the claim, the run still executes.
    pub async fn resume(&self, run: RunId) -> Result<(Resumed, RunHandle), RuntimeError> {
        let r = self
            .inner
            .node
            .send(messages::Resume { run, granted: None })
            .await
            .map_err(|_| RuntimeError::Stopped)??;
        let corr = self.store().run(run).await?.correlation_id;
        Ok((r, RunHandle::new(self.clone(), run, corr)))
    }

    /// Cancels a run, wherever it executes: here, through a command row its owner picks up,
    /// or directly when no live process owns it.
    ///
    /// # Errors
    /// Unknown run, store failures.
    ///
    /// # Cancel safety
    /// Safe; the cancel may or may not have been requested.
    pub async fn cancel(&self, run: RunId, reason: &str) -> Result<Cancelled, RuntimeError> {
        self.inner
            .node
            .send(messages::Cancel {
                run,
                reason: reason.to_string(),
            })
            .await
            .map_err(|_| RuntimeError::Stopped)?
    }

    /// A handle to an existing run.
    ///
    /// # Errors
    /// Unknown run.
    pub async fn run(&self, run: RunId) -> Result<RunHandle, RuntimeError> {
        let corr = self.store().run(run).await?.correlation_id;
        Ok(RunHandle::new(self.clone(), run, corr))
    }

    /// The supervisor's queue and agent load.
    ///
    /// # Errors
    /// A stopped runtime.
    pub async fn queue(&self) -> Result<QueueReport, RuntimeError> {
        self.inner
            .supervisor
            .send(messages::QueueStats)
            .await
            .map_err(|_| RuntimeError::Stopped)
    }

    /// Commits rows written outside any coordinator; resolves once committed.
    pub(crate) async fn write(&self, batch: crate::store::Batch) -> Result<(), RuntimeError> {
        self.inner
            .node
            .send(messages::WriteBatch(batch))
            .await
            .map_err(|_| RuntimeError::Stopped)?
    }

    /// Runs this process executes now.
    ///
    /// # Errors
    /// A stopped runtime.
    pub async fn active_runs(&self) -> Result<Vec<RunId>, RuntimeError> {
        self.inner
            .node
            .send(messages::ActiveRuns)
            .await
            .map_err(|_| RuntimeError::Stopped)
    }

    /// Claims and executes every unfinished run no live process owns (what a program does
    /// at start to go on with the runs a stopped or killed life of it left), and says which
    /// it took and which it could not, with why (e.g. a plan using a tool this runtime no
    /// longer has). Runs another live process executes are neither.
    ///
    /// # Errors
    /// Store failures while listing the runs.
    pub async fn resume_orphans(&self) -> Result<Orphans, RuntimeError> {
        let mut report = Orphans::default();
        for r in self.resume_all().await? {
            match r.result {
                Ok((Resumed::Started, _)) => report.resumed.push(r.run),
                Ok(_) | Err(RuntimeError::LeaseHeld { .. }) => {}
                Err(e) => {
                    tracing::warn!(run = %r.run, error = %e, "could not resume run");
                    report.not_resumed.push((r.run, e));
                }
            }
        }
        Ok(report)
    }

    /// Tries to resume every unfinished run (pending, running or waiting), oldest first, and
    /// says what happened to each: started here, already running here, ended meanwhile, or
    /// refused (e.g. `LeaseHeld` while another live process executes it).
    ///
    /// # Errors
    /// Store failures while listing the runs.
    pub async fn resume_all(&self) -> Result<Vec<Resumption>, RuntimeError> {
        let open = self
            .store()
            .runs(
                &[
                    crate::domain::RunStatus::Pending,
                    crate::domain::RunStatus::Running,
                    crate::domain::RunStatus::Waiting,
                ],
                10_000,
            )
            .await?;
        let mut all = Vec::with_capacity(open.len());
        for r in open {
            all.push(Resumption {
                run: r.id,
                name: r.name.clone(),
                tasks: r.plan.tasks.len(),
                result: self.resume(r.id).await,
            });
        }
        Ok(all)
    }

    /// Task latencies (ready → committed, in ms) of a finished run, when recording is on.
    pub async fn take_latencies(&self, run: RunId) -> Option<Vec<f32>> {
        self.inner
            .node
            .send(messages::TakeLatencies(run))
            .await
            .ok()
            .flatten()
    }

    /// Whether [`Runtime::shutdown`] stopped it (or its actor thread ended).
    pub(crate) fn is_stopped(&self) -> bool {
        !self.inner.node.connected()
    }

    pub(crate) fn hub(&self) -> &EventHub {
        &self.inner.hub
    }

    /// Interrupts every run it executes (they stay resumable), commits what is pending,
    /// releases leases and stops the actor thread.
    pub async fn shutdown(&self) {
        let _ = self.inner.node.send(messages::Shutdown).await;
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}
