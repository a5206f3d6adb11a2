//! The runtime: actors (node, coordinators, supervisor, agents, gates, persistence) on one
//! actix system in a thread of its own, and the embedding API around them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nofx::RuntimeError> {
//! use nofx::domain::plan::{Format, PlanSource};
//! let rt = nofx::Runtime::builder().memory_store().data_dir(std::env::temp_dir().join("nofx-demo")).build().await?;
//! let src = PlanSource::parse("name: hi\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n", Format::Yaml, None)
//!     .expect("a valid plan");
//! let run = rt.submit(&src, Default::default()).await?;
//! let outcome = run.wait().await?;
//! assert_eq!(outcome.status, nofx::RunStatus::Succeeded);
//! rt.shutdown().await;
//! # Ok(()) }
//! ```

mod agent;
mod approval;
mod check;
pub mod dispatch;
mod gate;
mod handle;
pub(crate) mod hub;
mod lineage;
pub(crate) mod messages;
mod model_sink;
pub(crate) mod node;
mod persistence;
mod probe;
pub(crate) mod run;
pub mod scoring;
mod supervisor;

pub use approval::Decision;
pub use handle::{Outcome, Owner, RunFilter, RunHandle, RunSummary, TaskOutcome};
pub use lineage::Fork;
pub use messages::{AgentLoad, Cancelled, QueueReport, Resumed};

use crate::config::ConfigErrors;
use crate::domain::graph::{self, PlanErrors};
use crate::domain::plan::PlanSource;
use crate::domain::{AgentSpec, CorrelationId, RunId};
use crate::store::{Blobs, LeaseHolder, LeaseInfo, Store, StoreError};
use crate::tools::{CommandPolicy, Tool, ToolEnv, ToolRegistry};
use actix::prelude::*;
use hub::EventHub;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A runtime failure.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The plan is invalid.
    #[error("{0}")]
    Plan(PlanErrors),
    /// Configuration is invalid.
    #[error("{0}")]
    Config(ConfigErrors),
    /// A store read or setup failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A write failed to commit.
    #[error("{0}")]
    Write(Arc<StoreError>),
    /// Another live process executes the run.
    #[error("run {run} is executed by process {} on {} (its lease runs until {}); wait for it to finish or stop that process", info.pid, info.host, crate::domain::time::rfc3339_secs(info.expires_at))]
    LeaseHeld {
        /// The run.
        run: RunId,
        /// Who holds it.
        info: LeaseInfo,
    },
    /// A file or directory could not be prepared.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The goal cannot be planned as given (empty, or no model provider configured).
    #[error("{0}")]
    BadGoal(String),
    /// The planner produced no plan.
    #[error("{0}")]
    Planner(String),
    /// The task is not waiting for a decision (or was already decided).
    #[error("{0}")]
    NotWaiting(String),
    /// The name given may not decide on that task.
    #[error("{0}")]
    NotApprover(String),
    /// The run has no such task.
    #[error("{0}")]
    NoSuchTask(String),
    /// A restore or fork cannot start as asked (unknown task, bad patch, missing files).
    #[error("{0}")]
    BadFork(String),
    /// No template with that id is visible.
    #[error("no template `{0}`")]
    NoSuchTemplate(String),
    /// The caller may not run this plan (e.g. an API key without the `shell` scope and a plan
    /// that runs commands).
    #[error("{message}")]
    Forbidden {
        /// The scope the caller lacks.
        scope: &'static str,
        /// What needs it.
        message: String,
    },
    /// The runtime has stopped.
    #[error("the runtime has stopped")]
    Stopped,
}

/// How a run is submitted.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// The caller's correlation id (default: a new one).
    pub correlation: Option<CorrelationId>,
    /// Only store the run, for another process (`nofx resume`) to execute.
    pub detach: bool,
    /// The project the run belongs to (default: the plan's `project`, else `default`).
    pub project: Option<String>,
    /// The run's id, when the caller chose it (default: a new one).
    pub id: Option<RunId>,
    /// The template the run is made from: (owner project, id); its usage count goes up in
    /// the transaction that stores the run.
    pub template: Option<(String, String)>,
    /// Refuse the run (`Forbidden`, nothing stored) when its plan runs commands: `shell`
    /// tasks or `command` gates. The API sets it for keys without the `shell` scope.
    pub no_commands: bool,
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How often commands from other processes are read.
    pub command_poll: Duration,
    /// Keep task latencies of finished runs (benchmarks).
    pub record_latencies: bool,
    /// When runs whose plan says nothing are checkpointed without being asked.
    pub checkpoints: crate::domain::plan::CheckpointPolicy,
    /// Act as a node of a fleet: keep a node row, claim runs no live process holds.
    pub fleet: bool,
    /// How often a fleet node looks for runs to claim.
    pub claim_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(15),
            command_poll: Duration::from_millis(500),
            record_latencies: false,
            checkpoints: crate::domain::plan::CheckpointPolicy::default(),
            fleet: false,
            claim_every: Duration::from_millis(250),
        }
    }
}

/// What every actor may read.
pub struct Shared {
    /// The store (reads; writes go through the persistence actor).
    pub store: Store,
    /// Tools.
    pub tools: ToolRegistry,
    /// Agents.
    pub agents: Vec<AgentSpec>,
    /// Data directory (workspaces, artifacts).
    pub data_dir: PathBuf,
    /// This process as a lease holder.
    pub holder: LeaseHolder,
    /// Which commands may run.
    pub policy: Arc<CommandPolicy>,
    /// Tunables.
    pub options: Options,
    /// Models (providers, routing, budgets).
    pub models: Arc<crate::models::Models>,
    /// Live event fan-out.
    pub(crate) hub: EventHub,
}

enum StoreSpec {
    /// SQLite in `nofx.db` of the data directory.
    InDataDir,
    Url(String),
    Memory,
}

/// Builds a [`Runtime`].
pub struct RuntimeBuilder {
    store: StoreSpec,
    data_dir: PathBuf,
    agents: Option<Vec<AgentSpec>>,
    tools: ToolRegistry,
    policy: CommandPolicy,
    guard: Option<PathBuf>,
    options: Options,
    extra_tools: Vec<Arc<dyn Tool>>,
    models: Option<crate::models::ModelsConfig>,
}

impl RuntimeBuilder {
    /// Models: catalogue, routing rules, budgets, provider keys and URLs (default: the
    /// shipped policies with no provider configured, so model tools fail with a message
    /// saying how to configure one).
    pub fn models(mut self, config: crate::models::ModelsConfig) -> Self {
        self.models = Some(config);
        self
    }

    /// The API key of `provider` (a provider of `models.toml`, e.g. `anthropic`).
    pub fn api_key(mut self, provider: &str, key: crate::models::ApiKey) -> Self {
        let cfg = self
            .models
            .take()
            .unwrap_or_else(crate::models::ModelsConfig::shipped);
        self.models = Some(cfg.api_key(provider, key));
        self
    }

    /// The base URL of `provider`, e.g. a local OpenAI-compatible server for `openai`.
    pub fn base_url(mut self, provider: &str, url: impl Into<String>) -> Self {
        let cfg = self
            .models
            .take()
            .unwrap_or_else(crate::models::ModelsConfig::shipped);
        self.models = Some(cfg.base_url(provider, url));
        self
    }

    /// Uses the store at `url` (`sqlite://PATH`, `postgres://…`).
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.store = StoreSpec::Url(url.into());
        self
    }

    /// Uses a private in-memory SQLite store.
    pub fn memory_store(mut self) -> Self {
        self.store = StoreSpec::Memory;
        self
    }

    /// Where workspaces and artifacts live (default `.nofx`); the default SQLite file is
    /// `nofx.db` there.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// The agents (default: a coordinator `lead`, a specialist `builder`, a worker `worker`).
    pub fn agents(mut self, agents: Vec<AgentSpec>) -> Self {
        self.agents = Some(agents);
        self
    }

    /// Adds one agent to the configured (or default) ones.
    pub fn agent(mut self, agent: AgentSpec) -> Self {
        self.agents
            .get_or_insert_with(crate::config::builtin_agents)
            .push(agent);
        self
    }

    /// Registers a tool (besides the built-in ones).
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.extra_tools.push(tool);
        self
    }

    /// Which commands `shell` and command gates may run (default: any).
    pub fn command_policy(mut self, policy: CommandPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Starts child processes through `exe` in guard mode (`exe __nofx-guard …`), so they
    /// die with this process. The `nofx` binary sets this to itself.
    pub fn process_guard(mut self, exe: impl Into<PathBuf>) -> Self {
        self.guard = Some(exe.into());
        self
    }

    /// Lease time-to-live (default 15 s); heartbeats run every third of it.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.options.lease_ttl = ttl.max(Duration::from_millis(300));
        self
    }

    /// Keeps per-task latencies of finished runs, for [`Runtime::take_latencies`].
    pub fn record_latencies(mut self, on: bool) -> Self {
        self.options.record_latencies = on;
        self
    }

    /// Makes this runtime a node of a fleet sharing its store (`nofx serve`): it keeps a
    /// node row with its load, and every `claim_every` it claims runs no live process
    /// holds (new runs left for the least-loaded node, runs of nodes that died) when no
    /// other live node is less loaded. A run submitted here is executed here unless another
    /// live node is less loaded; then it is stored for that node to claim.
    pub fn fleet(mut self, on: bool) -> Self {
        self.options.fleet = on;
        self
    }

    /// When runs whose plan has no `checkpoints` key are checkpointed without being asked
    /// (default: only before manual approvals).
    pub fn checkpoint_policy(mut self, policy: crate::domain::plan::CheckpointPolicy) -> Self {
        self.options.checkpoints = policy;
        self
    }

    /// The built-in tools and the registered ones.
    fn registry(&self) -> Result<ToolRegistry, RuntimeError> {
        let mut tools = self.tools.clone();
        for t in &self.extra_tools {
            let name = t.name().to_string();
            tools.register(t.clone()).map_err(|e| {
                RuntimeError::Config(ConfigErrors(vec![crate::config::ConfigIssue {
                    file: format!("tool {name}"),
                    line: None,
                    message: e.to_string(),
                }]))
            })?;
        }
        Ok(tools)
    }

    /// Checks a plan as a runtime built from this builder would before running it (the
    /// same check as [`Runtime::validate`]), without opening a store or starting anything:
    /// what `nofx validate` and `nofx run --dry-run` do.
    ///
    /// ```
    /// use nofx::domain::plan::{Format, PlanSource};
    /// let src = PlanSource::parse("name: hi\ntasks:\n  - { id: a, tool: llm:generate, inputs: { prompt: hi } }\n", Format::Yaml, None)
    ///     .expect("a plan");
    /// let err = nofx::Runtime::builder().check(&src, &Default::default()).unwrap_err();
    /// assert!(err.to_string().contains("no model provider is configured"));
    /// ```
    ///
    /// # Errors
    /// `Config` for a tool or model configuration that cannot be built; `Plan` with every
    /// problem of the plan.
    pub fn check(
        &self,
        plan: &PlanSource,
        inputs: &Map<String, Value>,
    ) -> Result<graph::ValidatedPlan, RuntimeError> {
        let tools = self.registry()?;
        let agents = self
            .agents
            .clone()
            .unwrap_or_else(crate::config::builtin_agents);
        let models = crate::models::Models::build(
            self.models
                .clone()
                .unwrap_or_else(crate::models::ModelsConfig::shipped),
            None,
        )
        .map_err(RuntimeError::Config)?;
        check::check_plan(plan, inputs, &tools, &agents, &self.policy, &models)
            .map_err(RuntimeError::Plan)
    }

    /// Opens the store, applies migrations and starts the actors.
    ///
    /// # Errors
    /// Store failures, a data directory that cannot be created, an invalid tool schema.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes leaves the actor thread to stop on its own.
    pub async fn build(self) -> Result<Runtime, RuntimeError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|source| RuntimeError::Io {
            path: self.data_dir.display().to_string(),
            source,
        })?;
        let data_dir =
            std::fs::canonicalize(&self.data_dir).map_err(|source| RuntimeError::Io {
                path: self.data_dir.display().to_string(),
                source,
            })?;
        let tools = self.registry()?;
        let agents = self.agents.unwrap_or_else(crate::config::builtin_agents);
        let url = match self.store {
            StoreSpec::Memory => None,
            StoreSpec::Url(u) => Some(u),
            StoreSpec::InDataDir => {
                Some(format!("sqlite://{}", data_dir.join("nofx.db").display()))
            }
        };
        let holder = LeaseHolder::this_process();
        let hub = EventHub::default();
        let blobs = Blobs::new(data_dir.join("artifacts"));
        let policy = Arc::new(self.policy);
        let guard = self.guard;
        let options = self.options;
        let models_config = self
            .models
            .unwrap_or_else(crate::models::ModelsConfig::shipped);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("nofx-runtime".into())
            .spawn({
                let hub = hub.clone();
                move || {
                    let system = System::new();
                    let started = system.block_on(async move {
                        let store = match url {
                            None => Store::memory().await,
                            Some(u) => Store::open(&u).await,
                        }?;
                        let models = Arc::new(
                            crate::models::Models::build(models_config, Some(store.clone()))
                                .map_err(RuntimeError::Config)?,
                        );
                        let shared = Arc::new(Shared {
                            store: store.clone(),
                            tools,
                            agents: agents.clone(),
                            data_dir,
                            holder: holder.clone(),
                            options: options.clone(),
                            policy: policy.clone(),
                            models,
                            hub: hub.clone(),
                        });
                        let persistence = persistence::Persistence::new(
                            store.clone(),
                            hub,
                            holder,
                            options.lease_ttl.as_millis() as i64,
                        )
                        .start();
                        let mut env_slot = None;
                        let supervisor = supervisor::Supervisor::launch(agents.clone(), |sup| {
                            let env = ToolEnv {
                                blobs,
                                policy,
                                guard,
                                probe: Arc::new(probe::RuntimeProbe::new(
                                    store.clone(),
                                    sup,
                                    agents,
                                )),
                            };
                            env_slot = Some(env.clone());
                            env
                        });
                        let env =
                            env_slot.expect("launch builds the tool environment synchronously");
                        let mut gates = HashMap::new();
                        for kind in ["pattern", "json_schema", "command", "llm_judge"] {
                            gates.insert(kind, gate::GateActor::new(env.clone()).start());
                        }
                        let node =
                            node::Node::new(shared.clone(), supervisor.clone(), persistence, gates)
                                .start();
                        Ok::<_, RuntimeError>((node, supervisor, shared))
                    });
                    match started {
                        Ok(parts) => {
                            let _ = tx.send(Ok(parts));
                            if let Err(e) = system.run() {
                                tracing::error!(error = %e, "actor system stopped with an error");
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                }
            })
            .map_err(|source| RuntimeError::Io {
                path: "runtime thread".into(),
                source,
            })?;
        let (node, supervisor, shared) = rx.await.map_err(|_| RuntimeError::Stopped)??;
        Ok(Runtime {
            inner: Arc::new(Inner {
                node,
                supervisor,
                shared,
                hub,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }
}

struct Inner {
    node: Addr<node::Node>,
    supervisor: Addr<supervisor::Supervisor>,
    shared: Arc<Shared>,
    hub: EventHub,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
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

/// A running nofx runtime; cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    /// A builder with defaults: data directory `.nofx` (relative to the working directory)
    /// with the SQLite store `nofx.db` in it, built-in agents and tools, any command allowed.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            store: StoreSpec::InDataDir,
            data_dir: PathBuf::from(".nofx"),
            agents: None,
            tools: ToolRegistry::builtin(),
            policy: CommandPolicy::allow_all(),
            guard: None,
            options: Options::default(),
            extra_tools: Vec::new(),
            models: None,
        }
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
    ) -> Result<graph::ValidatedPlan, PlanErrors> {
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
        plan: &PlanSource,
        inputs: Map<String, Value>,
    ) -> Result<RunHandle, RuntimeError> {
        self.submit_with(plan, inputs, None, false).await
    }

    /// Like [`Runtime::submit`], with the caller's correlation id and the option to only
    /// store the run (`detach`), for another process (`nofx resume`) to execute.
    ///
    /// # Errors
    /// As `submit`.
    ///
    /// # Cancel safety
    /// As `submit`.
    pub async fn submit_with(
        &self,
        plan: &PlanSource,
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
        plan: &PlanSource,
        inputs: Map<String, Value>,
        opts: SubmitOptions,
    ) -> Result<RunHandle, RuntimeError> {
        let plan = self.validate(plan, &inputs).map_err(RuntimeError::Plan)?;
        let corr = opts.correlation.unwrap_or_else(CorrelationId::generate);
        let run = self
            .inner
            .node
            .send(messages::Submit {
                plan,
                corr: corr.clone(),
                detach: opts.detach,
                id: opts.id,
                prelude: Vec::new(),
                project: opts.project,
                template: opts.template,
                restore: None,
                no_commands: opts.no_commands,
            })
            .await
            .map_err(|_| RuntimeError::Stopped)??;
        Ok(RunHandle::new(self.clone(), run, corr))
    }

    /// Asks the planner for a plan for `goal` without running it (`nofx run --goal … --dry-run`).
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
        let run = self
            .inner
            .node
            .send(messages::Submit {
                plan: planned.plan.clone(),
                corr: corr.clone(),
                detach: false,
                id: Some(id),
                prelude,
                project: Some(project),
                template: None,
                restore: None,
                no_commands: opts.no_commands,
            })
            .await
            .map_err(|_| RuntimeError::Stopped)??;
        Ok((RunHandle::new(self.clone(), run, corr), planned))
    }

    async fn plan_for(
        &self,
        run: Option<RunId>,
        corr: &CorrelationId,
        project: &str,
        goal: &str,
        options: crate::planner::PlannerOptions,
    ) -> Result<
        (
            crate::planner::Planned,
            Vec<(crate::domain::EventType, Value)>,
        ),
        RuntimeError,
    > {
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
        let planned = result.map_err(|e| RuntimeError::Planner(e.to_string()))?;
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

    /// Validates a template's plan (its required inputs without defaults get placeholder
    /// values of their type) against this runtime's tools and agents.
    ///
    /// # Errors
    /// The template's own problems and every problem of its plan.
    pub fn validate_template(
        &self,
        t: &crate::domain::template::TemplateSpec,
        origin: &str,
    ) -> Result<(), Vec<String>> {
        let mut problems = t.problems();
        let src = PlanSource {
            plan: Arc::new(t.plan.clone()),
            origin: Some(origin.to_string()),
            task_lines: Vec::new(),
        };
        let inputs = graph::placeholder_inputs(&t.plan);
        // The plan's own checks; the command policy and model providers are checked when a
        // run is made from it (another server may allow what this one does not).
        let shared = &self.inner.shared;
        if let Err(e) = graph::validate(&src, &inputs, &shared.tools, &shared.agents) {
            problems.extend(e.0.iter().map(|i| i.to_string()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Loads the shipped templates of `dir` (`*.yaml`, `*.yml`, `*.json`), storing new ones
    /// and updating changed ones; returns how many changed.
    ///
    /// # Errors
    /// Every file that cannot be read, parsed or validated, naming it.
    pub async fn load_templates(&self, dir: &Path) -> Result<usize, RuntimeError> {
        let mut specs: Vec<(String, crate::domain::template::TemplateSpec)> = Vec::new();
        let mut issues = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| RuntimeError::Io {
                path: dir.display().to_string(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
            })
            .collect();
        entries.sort();
        for path in entries {
            let file = path.display().to_string();
            let issue = |message: String| crate::config::ConfigIssue {
                file: file.clone(),
                line: None,
                message,
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    issues.push(issue(format!("cannot read: {e}")));
                    continue;
                }
            };
            let base = path.parent().unwrap_or(dir);
            let spec = match crate::domain::template::TemplateFile::parse(&text, base) {
                Ok(s) => s,
                Err(e) => {
                    issues.push(issue(e));
                    continue;
                }
            };
            match self.validate_template(&spec, &file) {
                Ok(()) => match specs.iter().find(|(_, s)| s.id == spec.id) {
                    Some((first, _)) => issues.push(issue(format!(
                        "template id `{}` is already used by {first}; ids are unique",
                        spec.id
                    ))),
                    None => specs.push((file.clone(), spec)),
                },
                Err(ps) => issues.extend(ps.into_iter().map(&issue)),
            }
        }
        if !issues.is_empty() {
            return Err(RuntimeError::Config(ConfigErrors(issues)));
        }
        let mut changed = 0;
        for (_, s) in &specs {
            if self.store().upsert_shipped_template(s).await? {
                changed += 1;
            }
        }
        // A shipped template whose file is gone is no longer offered.
        let ids: Vec<String> = specs.iter().map(|(_, s)| s.id.clone()).collect();
        changed += self.store().remove_shipped_templates_except(&ids).await? as usize;
        Ok(changed)
    }

    /// Makes a run from template `id` as `project` sees it, with `inputs` over the
    /// template's defaults; its usage count goes up with the run, in one transaction.
    ///
    /// # Errors
    /// `NoSuchTemplate`; missing or mistyped inputs (as plan errors); as `submit`.
    pub async fn instantiate(
        &self,
        project: &str,
        id: &str,
        inputs: Map<String, Value>,
        mut opts: SubmitOptions,
    ) -> Result<RunHandle, RuntimeError> {
        let t = self
            .store()
            .template(project, id)
            .await?
            .ok_or_else(|| RuntimeError::NoSuchTemplate(id.to_string()))?;
        let owner = if t.shipped {
            crate::store::SHIPPED.to_string()
        } else {
            project.to_string()
        };
        let src = PlanSource {
            plan: Arc::new(t.spec.plan),
            origin: Some(format!("template {id}")),
            task_lines: Vec::new(),
        };
        opts.project = Some(project.to_string());
        opts.template = Some((owner, id.to_string()));
        self.submit_opts(&src, inputs, opts).await
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

    /// Claims and executes every unfinished run no live process owns (a service's start);
    /// returns the runs it took.
    ///
    /// # Errors
    /// Store failures.
    pub async fn resume_orphans(&self) -> Result<Vec<RunId>, RuntimeError> {
        let mut taken = Vec::new();
        for r in self.resume_all().await? {
            match r.result {
                Ok((Resumed::Started, _)) => taken.push(r.run),
                Ok(_) | Err(RuntimeError::LeaseHeld { .. }) => {}
                Err(e) => tracing::warn!(run = %r.run, error = %e, "could not resume run"),
            }
        }
        Ok(taken)
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
