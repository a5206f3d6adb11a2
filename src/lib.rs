//! nofx: an actor-based multi-agent runtime you embed in a Rust program.
//!
//! A plan (YAML or JSON, or built in code) becomes a DAG of tasks; a supervisor delegates
//! each ready task to the best-scored agent; gates check results; every state change is
//! committed to SQLite (embedded, the default) or Postgres before anyone hears of it, so a run
//! survives crashes and resumes where it stopped.
//!
//! # Start here
//!
//! Build a [`Runtime`], [`submit`](Runtime::submit) a plan, follow its events, wait for its
//! [`Outcome`]:
//!
//! ```
//! use futures::StreamExt;
//! use nofx::plan::{Plan, Task};
//! use nofx::tools::{tool_fn, ToolOutput};
//! use nofx::{RunStatus, Runtime};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), nofx::RuntimeError> {
//! // 1. Build: a store (here in memory), your tools and agents beside the built-in ones.
//! let rt = Runtime::builder()
//!     .memory_store()
//!     .tool(tool_fn("text:upper", json!({"type": "object"}), |ctx| async move {
//!         let text = ctx.inputs["text"].as_str().unwrap_or_default().to_uppercase();
//!         Ok(ToolOutput::new().output("text", text))
//!     }))
//!     .build()
//!     .await?;
//!
//! // 2. Submit: the plan is checked whole (every problem at once), then committed.
//! let plan = Plan::new("shout")
//!     .task(Task::new("upper", "text:upper").input("text", "hello"))
//!     .task(Task::new("echo", "test:echo").input("said", Task::output_ref("upper", "text")));
//! let run = rt.submit(plan, Default::default()).await?;
//!
//! // 3. Follow: every event, in order, without gaps, as it is committed.
//! let mut events = Box::pin(run.subscribe());
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     println!("{} {}", event.seq, event.kind);
//! }
//!
//! // 4. Wait: the outcome, with every task's outputs.
//! let outcome = run.wait().await?;
//! assert_eq!(outcome.status, RunStatus::Succeeded);
//! assert_eq!(outcome.tasks[1].outputs.as_ref().unwrap()["said"], "HELLO");
//! rt.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Plans also come from text: [`plan::PlanSource::parse`]. The `examples/` directory has a
//! program for each common use: a tool written as a closure, a plan built in code, a blocking
//! tool, an approval, a cancel, and a restart that resumes a run.
//!
//! # What the API is
//!
//! - [`Runtime`], built by [`RuntimeBuilder`]: submit, resume, cancel, decide approvals,
//!   checkpoint, restore and fork runs, read them ([`Runtime::store`] reads the store).
//! - [`RunHandle`]: one run: its events ([`RunHandle::subscribe`]), status, cancel,
//!   approvals, and [`RunHandle::wait`] for its [`Outcome`].
//! - [`plan`]: plans, parsed or built; [`events`]: what a run's log holds, typed;
//!   [`tools`]: the [`Tool`](tools::Tool) trait and [`tool_fn`](tools::tool_fn);
//!   [`AgentSpec`]: agents; [`RuntimeError`]: every failure of the calls above.
//! - [`models`] and [`planner`]: model providers, routing, budgets, and goals planned by a
//!   model; [`retention`]: sweeping old runs.
//! - [`questions`] and [`prp`]: typed questions and questionnaires; PRPs checked
//!   ([`Runtime::check_prp`]), run step by step behind gates with rollback
//!   ([`Runtime::submit_prp`]), generated ([`Runtime::generate_prp`]) and reported
//!   ([`Runtime::prp_report`]).
//! - With the `server` feature (on by default), `service` serves the HTTP API, as
//!   `nofx serve` does. Features `cli`, `otel` and `jemalloc` build the `nofx` binary; a
//!   program that only embeds the runtime can turn the defaults off.
//!
//! # Threading
//!
//! A runtime's actors (coordinators, the supervisor, agents, gates, persistence) live on one
//! thread of their own, started by `build()`; tools run on the runtime's tool threads (a tokio
//! runtime of their own), so neither a busy tool nor your program's executor stalls the
//! other. Every method of [`Runtime`] and [`RunHandle`] is a message to that thread or a read
//! of the store, may be called from any tokio runtime (current-thread included), and both
//! types are cheap to clone and `Send + Sync`. Events reach subscribers after they are
//! committed.
//!
//! # Cancel safety
//!
//! Dropping a future of this API never leaves a half-done change: a submit dropped after the
//! run was committed still runs; a dropped [`RunHandle::wait`] or event stream only stops
//! listening; a cancel or a decision, once recorded, stands. Each method's documentation says
//! what it guarantees.
//!
//! # What survives a restart
//!
//! With a store on disk (the default SQLite file in the data directory, or Postgres) every
//! run, task, event, output, artifact, checkpoint and decision survives the program's end,
//! SIGKILL included. A run that was executing is left unfinished; the next runtime on the
//! same store takes it with [`Runtime::resume_orphans`] (or [`Runtime::resume`]): finished
//! tasks keep their results, the tasks that were in flight run again as a new attempt with
//! the same idempotency key, and no process the old program started is left running
//! (commands die with the program that started them). A memory store keeps nothing.

#![warn(missing_docs)]

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "cli")]
pub(crate) mod bench;
pub(crate) mod blobs;
/// The `nofx` command line: the binary's code, built with the `cli` feature. Not part of the
/// embedding API; `nofx::cli::main()` is the whole of the `nofx` binary.
#[cfg(feature = "cli")]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod cli;
pub mod config;
pub(crate) mod domain;
pub mod mcp;
pub mod models;
pub mod planner;
pub(crate) mod process;
#[cfg(test)]
mod properties_tests;

/// A run's events: the stored log ([`events::Event`], its kind [`events::EventType`] and
/// typed data [`events::EventData`], one payload struct per kind in [`events::payload`]) and
/// streamed model text ([`events::Delta`]).
pub mod events {
    pub use crate::domain::event::payload;
    pub use crate::domain::{Delta, Event, EventData, EventType};
}

/// Plans: parsed from YAML or JSON ([`plan::PlanSource::parse`]) or built in code
/// ([`plan::Plan::new`], [`plan::Task::new`]).
pub mod plan {
    /// One task of a plan (the same type as [`TaskSpec`]).
    pub use crate::domain::plan::TaskSpec as Task;
    pub use crate::domain::plan::*;
}
/// Typed questions to the user: a question's spec ([`questions::Question`]), the check of an
/// answer against it, and what it falls back to without one ([`questions::Question::fallback`]:
/// `default`, then `smart_default`, never an invented value); questionnaires that gather
/// requirements in phases and compile to a gathering run's plan
/// ([`questions::QuestionnaireSource`]).
pub mod questions {
    pub use crate::domain::question::*;
    pub use crate::domain::questionnaire::*;
    pub use crate::runtime::{default_answerer, AskedQuestion};
}
/// PRPs (Product Requirements Prompts): the document ([`prp::Prp`], read with
/// [`prp::PrpSource::parse`], its JSON Schema [`prp::prp_schema`]), its check (every problem
/// at its key path) and the plan of a run that executes it step by step behind gates.
pub mod prp {
    pub use crate::domain::prp::*;
}
/// A run's task graph ([`Runtime::graph`]) and its layout for drawing: rank by longest
/// path, order by barycenter sweeps, wide layers of alike siblings folded into groups (what
/// the dashboard and `GET /runs/{id}/graph` draw).
pub mod graph {
    pub use crate::domain::graph::{Task, TaskGraph};
    pub use crate::domain::layout::{Layout, GROUP_ABOVE};
}
pub(crate) mod redact;
pub mod retention;
pub mod runtime;
#[cfg(feature = "server")]
pub mod service;
pub(crate) mod snapshot;
pub mod store;
pub mod tools;

pub use domain::approval::WaitKind;
pub use domain::{
    AgentSpec, ApprovalDecision, CheckpointId, Correlation, CorrelationId, Event, EventData,
    EventType, FailureKind, IllegalTransition, Plan, Priority, Role, RunId, RunStatus, TaskKey,
    TaskStatus, WaitId,
};
pub use runtime::{Outcome, RunHandle, Runtime, RuntimeBuilder, RuntimeError, SubmitOptions};
