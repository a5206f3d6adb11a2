//! Tools: what agents run. A tool is a trait object with a name, an input JSON Schema and an
//! async `run`; it never writes to the store (the persistence actor does). Built in:
//! `test:echo`, `test:validate`, `test:healthcheck`, `shell`, the model tools
//! `llm:generate` and `codegen`, `agent` (the task's agent reasons with its tools), `ask`
//! (typed questions to the user) and `repo:analyze` (what a codebase is, without a model);
//! users register their own.

pub(crate) mod agent;
pub(crate) mod ask;
mod codegen;
pub(crate) mod decompose;
mod echo;
mod function;
pub mod gather;
mod healthcheck;
pub(crate) mod llm;
mod model;
mod policy;
pub(crate) mod prp;
mod registry;
mod repo;
pub(crate) mod shell;
mod validate;
mod workspace;

pub(crate) use agent::AgentTool;
pub(crate) use ask::Ask;
pub(crate) use codegen::Codegen;
pub(crate) use echo::Echo;
pub use function::{blocking_tool_fn, describe, tool_fn};
pub(crate) use healthcheck::Healthcheck;
pub use healthcheck::{Probe, ProbeReport};
pub(crate) use llm::LlmGenerate;
pub use model::ModelAccess;
pub use policy::{load_command_policy, CommandPolicy, PolicyError};
pub use registry::{RegistryError, ToolRegistry};
pub(crate) use repo::RepoAnalyze;
pub(crate) use shell::Shell;
pub(crate) use validate::Validate;

use crate::blobs::{Blobs, StoredBlob};
use crate::domain::{Correlation, FailureKind};
use futures::future::BoxFuture;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Services a tool may use.
#[derive(Clone)]
pub struct ToolEnv {
    /// The artifact directory.
    pub blobs: Blobs,
    /// Which commands `shell` and command gates may run.
    pub policy: Arc<CommandPolicy>,
    /// What `test:healthcheck` asks about the runtime.
    pub probe: Arc<dyn Probe>,
}

/// What a tool gets for one attempt.
#[derive(Clone)]
pub struct ToolContext {
    /// Inputs, with every reference resolved.
    pub inputs: Value,
    /// The run workspace (shared by the run's tasks).
    pub workspace: PathBuf,
    /// Run, task and correlation id.
    pub corr: Correlation,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// The same for every attempt of this task in this run, so a tool can make a repeat safe.
    pub idempotency_key: String,
    /// Cancelled on run cancel, task timeout and shutdown; a tool must stop soon after.
    pub cancel: CancellationToken,
    /// Services.
    pub env: ToolEnv,
    /// Models, bound to this task.
    pub models: ModelAccess,
    /// The run and runtime behind the task (reasoning loops use it).
    pub(crate) link: Link,
}

/// What a task reaches of its run and runtime beyond [`ToolEnv`]: the reasoning loop's way
/// to commit its journal (through the run's coordinator and the persistence actor) and the
/// services it calls tools and agents with.
pub(crate) trait RunLink: Send + Sync {
    /// Commits journal rows with their events; the receiver resolves once they are
    /// committed and is dropped unanswered when they cannot be (the run stopped here).
    fn commit(
        &self,
        rows: crate::store::Batch,
        events: Vec<crate::domain::EventData>,
    ) -> tokio::sync::oneshot::Receiver<()>;
    /// Has the attempt `attempt` wait on `waits` once it reports (it stops to wait for a
    /// person: a decision on a tool call, answers to questions); the rows commit with
    /// `events` and the waiting task row. Resolves once the coordinator has it.
    fn suspend(&self, suspension: Suspension) -> tokio::sync::oneshot::Receiver<()>;
    /// The store, for reads.
    fn store(&self) -> &crate::store::Store;
    /// The runtime's tools.
    fn tools(&self) -> &ToolRegistry;
    /// The runtime's agents.
    fn agents(&self) -> &[crate::domain::AgentSpec];
    /// The MCP servers of the task's run (started on first use).
    fn mcp(&self) -> Arc<crate::mcp::RunServers>;
}

/// What an attempt that stops to wait for a person leaves: the attempt, the wait rows
/// (new ones are written; rows already written are kept as they are), their events, and
/// what the task shows while it waits.
#[derive(Debug, Clone)]
pub(crate) struct Suspension {
    pub attempt: u32,
    pub waits: Vec<crate::store::WaitRow>,
    pub events: Vec<crate::domain::EventData>,
    pub outputs: Map<String, Value>,
}

/// A task's [`RunLink`].
#[derive(Clone)]
pub(crate) struct Link(pub(crate) Arc<dyn RunLink>);

/// What a tool returns on success.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolOutput {
    /// Outputs, referenced downstream as `${tasks.ID.outputs.NAME}`.
    pub outputs: Map<String, Value>,
    /// Artifacts already stored in the blob directory, by name.
    pub artifacts: Vec<(String, StoredBlob)>,
}

/// Why an attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The inputs are not what the tool accepts.
    #[error("invalid inputs: {0}")]
    InvalidInput(String),
    /// The tool ran and reported failure; its outputs are kept.
    #[error("{message}")]
    Failed {
        /// What went wrong.
        message: String,
        /// Outputs produced anyway.
        outputs: Map<String, Value>,
        /// Artifacts produced anyway.
        artifacts: Vec<(String, StoredBlob)>,
    },
    /// The command policy forbids the command.
    #[error("{0}")]
    Denied(String),
    /// The attempt was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// An I/O failure in the runtime's own plumbing.
    #[error("{0}")]
    Io(String),
    /// A model call would pass a budget; the run stops.
    #[error("{0}")]
    Budget(String),
    /// What the tool needs is not configured (e.g. no model provider).
    #[error("{0}")]
    Unavailable(String),
    /// The attempt stopped to wait for a person (the task waits; it runs again once
    /// answered).
    #[error("{0}")]
    Waiting(String),
    /// A required question got no answer and has nothing to fall back on.
    #[error("{0}")]
    NoDefault(String),
    /// A PRP step changed a protected path (it is not tried again).
    #[error("{0}")]
    Integrity(String),
}

impl ToolError {
    /// The failure's kind (the `error_type` recorded in metrics and events).
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::InvalidInput(_) => FailureKind::Input,
            Self::Failed { .. } => FailureKind::Tool,
            Self::Denied(_) => FailureKind::Policy,
            Self::Cancelled => FailureKind::Cancelled,
            Self::Io(_) => FailureKind::Io,
            Self::Budget(_) => FailureKind::BudgetExceeded,
            Self::Unavailable(_) => FailureKind::Unavailable,
            Self::Waiting(_) => FailureKind::Io,
            Self::NoDefault(_) => FailureKind::NoDefault,
            Self::Integrity(_) => FailureKind::Integrity,
        }
    }
}

/// A tool.
///
/// What a tool may do: its future runs on the runtime's tool threads (a tokio runtime of
/// their own, at least four threads), never on the thread that coordinates runs, so a tool
/// that blocks or computes delays only the tools waiting for a free tool thread; for long
/// blocking work use `tokio::task::spawn_blocking`. A panic (in `run` itself or in its
/// future) fails the attempt with `panic`; the agent lives on. When the attempt is cancelled
/// or times out, the future is dropped at its next await point.
///
/// ```
/// use futures::future::BoxFuture;
/// use nofx::tools::{Tool, ToolContext, ToolError, ToolOutput};
/// use serde_json::{json, Value};
///
/// struct Upper;
/// impl Tool for Upper {
///     fn name(&self) -> &str { "text:upper" }
///     fn input_schema(&self) -> Value {
///         json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}})
///     }
///     fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
///         Box::pin(async move {
///             let text = ctx.inputs["text"].as_str().unwrap_or_default().to_uppercase();
///             let mut out = ToolOutput::default();
///             out.outputs.insert("text".into(), Value::String(text));
///             Ok(out)
///         })
///     }
/// }
/// ```
pub trait Tool: Send + Sync + 'static {
    /// The name plans use in `tool:`.
    fn name(&self) -> &str;
    /// JSON Schema of the inputs (checked at validation and before each attempt).
    fn input_schema(&self) -> Value;
    /// Problems of inputs that match the schema, as (JSON pointer, message): what a schema
    /// cannot say (e.g. a path that leaves the workspace). Checked like the schema.
    fn check_inputs(&self, inputs: &Value) -> Vec<(String, String)> {
        let _ = inputs;
        Vec::new()
    }
    /// Runs one attempt.
    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>>;
    /// What the tool does, in a sentence or two: what an agent's model is told of it.
    fn description(&self) -> &str {
        ""
    }
    /// Whether running it again with the same inputs and idempotency key is safe (no second
    /// side effect). An agent's call left unfinished by a crash runs again only when its
    /// tool says so; otherwise the model is told its effect is unknown. The default is
    /// `false`.
    fn idempotent(&self) -> bool {
        false
    }
    /// Whether its attempts run on the agent's own thread instead of the tool threads: only
    /// for a tool whose future neither blocks nor computes for long (a quick transformation
    /// of its inputs). It saves the two thread hops of handing the attempt to a tool thread
    /// and back; a panic still fails only the attempt, and timeouts and cancellation act as
    /// for any tool. A tool that says `true` and then blocks stalls every run of the
    /// runtime while it does. The default is `false`.
    fn inline(&self) -> bool {
        false
    }
}
