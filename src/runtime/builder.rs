//! The runtime's wiring: tunables, what every actor shares, and the builder that opens the
//! store, loads policies and agents, and starts the actor system in a thread of its own.

use super::hub::EventHub;
use super::runtime::Inner;
use super::{check, gate, node, persistence, probe, supervisor};
use super::{Runtime, RuntimeError};
use crate::config::ConfigErrors;
use crate::domain::plan::PlanSource;
use crate::domain::plan::ValidatedPlan;
use crate::domain::AgentSpec;
use crate::store::{Blobs, LeaseHolder, Store};
use crate::tools::{CommandPolicy, Tool, ToolEnv, ToolRegistry};
use actix::prelude::*;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// How far and how wide tasks may decompose.
    pub limits: crate::domain::plan::Limits,
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
            limits: crate::domain::plan::Limits::default(),
        }
    }
}

/// What every actor may read.
pub(crate) struct Shared {
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
    /// MCP servers, per run.
    pub(crate) mcp: crate::mcp::McpHub,
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
    data_dir: Option<PathBuf>,
    agents: Option<Vec<AgentSpec>>,
    tools: ToolRegistry,
    policy: CommandPolicy,
    options: Options,
    extra_tools: Vec<Arc<dyn Tool>>,
    models: Option<crate::models::ModelsConfig>,
    mcp: crate::mcp::McpConfig,
}

impl RuntimeBuilder {
    pub(super) fn new() -> Self {
        Self {
            store: StoreSpec::InDataDir,
            data_dir: None,
            agents: None,
            tools: ToolRegistry::builtin(),
            policy: CommandPolicy::allow_all(),
            options: Options::default(),
            extra_tools: Vec::new(),
            models: None,
            mcp: crate::mcp::McpConfig::default(),
        }
    }

    /// MCP servers agents may call (`mcp:SERVER.TOOL`; default: none), e.g. from
    /// [`crate::mcp::McpConfig::load`].
    pub fn mcp(mut self, config: crate::mcp::McpConfig) -> Self {
        self.mcp = config;
        self
    }

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

    /// Uses a private in-memory SQLite store: nothing outlives the runtime. Without a
    /// [`RuntimeBuilder::data_dir`], workspaces and artifacts go to a fresh temporary
    /// directory, removed when the last handle of the runtime is dropped.
    pub fn memory_store(mut self) -> Self {
        self.store = StoreSpec::Memory;
        self
    }

    /// Where workspaces and artifacts live (default `.nofx` in the working directory); the
    /// default SQLite store is the file `nofx.db` there.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The agents, replacing the built-in ones (a coordinator `lead`, a specialist
    /// `builder`, a worker `worker`, none with capabilities). A task goes only to an agent
    /// having every capability it needs, so with your own agents alone a task that needs
    /// none can go to any of them.
    ///
    /// ```
    /// use nofx::{AgentSpec, Role};
    /// let only_mine = nofx::Runtime::builder().agents([
    ///     AgentSpec::new("gpu", Role::Specialist).with_capabilities(["gpu"]),
    ///     AgentSpec::new("cpu", Role::Worker).with_limits(8, None),
    /// ]);
    /// ```
    pub fn agents(mut self, agents: impl IntoIterator<Item = AgentSpec>) -> Self {
        self.agents = Some(agents.into_iter().collect());
        self
    }

    /// Adds one agent beside the configured ones (the built-in ones unless
    /// [`RuntimeBuilder::agents`] replaced them). The supervisor scores every agent that
    /// has the capabilities a task needs, so an added agent also takes its share of tasks
    /// that need none, beside the built-in ones; give such tasks a capability only your
    /// agent has (`capabilities: [gpu]`, [`crate::plan::Task::needs`]) to keep them for it, or
    /// replace the built-in agents with [`RuntimeBuilder::agents`].
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

    /// How far and how wide tasks may decompose (default: depth 3, 1,000 subtasks a
    /// decomposition, 10,000 a `for_each`, 100,000 tasks a run).
    #[must_use]
    pub fn limits(mut self, limits: crate::domain::plan::Limits) -> Self {
        self.options.limits = limits;
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

    /// What a check runs against: the tools, the agents and the models this builder gives.
    fn checked_against(
        &self,
    ) -> Result<(ToolRegistry, Vec<AgentSpec>, crate::models::Models), RuntimeError> {
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
        Ok((tools, agents, models))
    }

    /// Checks a plan as a runtime built from this builder would before running it (the
    /// same check as [`Runtime::validate`]), without opening a store or starting anything:
    /// for a program that checks plans before it has a runtime.
    ///
    /// ```
    /// use nofx::plan::{Format, PlanSource};
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
    ) -> Result<ValidatedPlan, RuntimeError> {
        let (tools, agents, models) = self.checked_against()?;
        check::check_plan(plan, inputs, &tools, &agents, &self.policy, &models)
            .map_err(RuntimeError::Plan)
    }

    /// Checks a PRP as a runtime built from this builder would before running it in `base`
    /// (the same check as [`Runtime::check_prp`]), without opening a store. Returns the plan
    /// of its run.
    ///
    /// # Errors
    /// `Config` for a tool or model configuration that cannot be built; `BadPrp` with every
    /// problem of the PRP.
    pub fn check_prp(
        &self,
        src: &crate::domain::prp::PrpSource,
        base: Option<&std::path::Path>,
        policy: crate::domain::prp::RollbackPolicy,
    ) -> Result<crate::domain::plan::Plan, RuntimeError> {
        let (tools, agents, models) = self.checked_against()?;
        super::prp::check_prp(src, base, policy, &tools, &agents, &self.policy, &models)
            .map_err(RuntimeError::BadPrp)
    }

    /// Opens the store, applies migrations and starts the actors.
    ///
    /// # Errors
    /// Store failures, a data directory that cannot be created, an invalid tool schema.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes leaves the actor thread to stop on its own.
    pub async fn build(self) -> Result<Runtime, RuntimeError> {
        // A memory store without a data directory keeps its files in one removed with it.
        let scratch =
            (self.data_dir.is_none() && matches!(self.store, StoreSpec::Memory)).then(|| {
                let name = format!("nofx-memory-{}", uuid::Uuid::new_v4().simple());
                super::runtime::Scratch(std::env::temp_dir().join(name))
            });
        let dir = match (&scratch, &self.data_dir) {
            (Some(s), _) => s.0.clone(),
            (None, d) => d.clone().unwrap_or_else(|| PathBuf::from(".nofx")),
        };
        std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let data_dir = std::fs::canonicalize(&dir).map_err(|source| RuntimeError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let tools = self.registry()?;
        let agents = self.agents.unwrap_or_else(crate::config::builtin_agents);
        let problems = check::agent_problems(&agents, &tools, &self.mcp);
        if !problems.is_empty() {
            return Err(RuntimeError::Config(ConfigErrors(
                problems
                    .into_iter()
                    .map(|message| crate::config::ConfigIssue {
                        file: "agents".into(),
                        line: None,
                        message,
                    })
                    .collect(),
            )));
        }
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
        let options = self.options;
        let mcp = crate::mcp::McpHub::new(self.mcp);
        let models_config = self
            .models
            .unwrap_or_else(crate::models::ModelsConfig::shipped);
        let pool = super::pool::ToolPool::new(super::pool::ToolPool::default_threads()).map_err(
            |source| RuntimeError::Io {
                path: "tool threads".into(),
                source,
            },
        )?;
        let tools_on = pool.handle();
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
                            mcp,
                        });
                        let persistence = persistence::Persistence::new(
                            store.clone(),
                            hub,
                            holder,
                            options.lease_ttl.as_millis() as i64,
                        )
                        .start();
                        let mut env_slot = None;
                        let supervisor =
                            supervisor::Supervisor::launch(agents.clone(), tools_on, |sup| {
                                let env = ToolEnv {
                                    blobs,
                                    policy,
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
                _pool: pool,
                _scratch: scratch,
            }),
        })
    }
}
