//! The runtime: actors (node, coordinators, supervisor, agents, gates, persistence) on one
//! actix system in a thread of its own, and the embedding API around them. Rooms: `node/`
//! (runs by id, leases, fleet claims), `run/` (one coordinator a run), `messages.rs` (every
//! message between actors), `supervisor.rs` over `dispatch.rs` and `scoring.rs`, `agent.rs`,
//! `gate.rs`, `persistence.rs`, `hub.rs` and `follow.rs` (events, live and from the store);
//! the facade is `runtime.rs` (`Runtime`), wired by `builder.rs`, with `handle.rs`
//! (`RunHandle`), `approval.rs`, `checkpoints.rs` and `workspace.rs`, `templates.rs`,
//! `check.rs` (the one plan check), `prp.rs` (PRPs checked and run) and `error.rs`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nofx::RuntimeError> {
//! use nofx::plan::{Format, PlanSource};
//! let rt = nofx::Runtime::builder().memory_store().data_dir(std::env::temp_dir().join("nofx-demo")).build().await?;
//! let src = PlanSource::parse("name: hi\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n", Format::Yaml, None)
//!     .expect("a valid plan");
//! let run = rt.submit(&src, Default::default()).await?;
//! let outcome = run.wait().await?;
//! assert_eq!(outcome.status, nofx::RunStatus::Succeeded);
//! rt.shutdown().await;
//! # Ok(()) }
//! ```

// First, so the documentation of `Runtime` opens with `builder()` and the core calls.
#[allow(clippy::module_inception)]
mod runtime;

mod agent;
mod approval;
mod builder;
mod check;
mod checkpoints;
pub(crate) mod dispatch;
mod error;
pub(crate) mod follow;
mod gate;
mod handle;
pub(crate) mod hub;
#[cfg(test)]
mod limits_tests;
pub(crate) mod messages;
mod model_sink;
pub(crate) mod node;
mod persistence;
mod pool;
mod probe;
mod prp;
pub(crate) mod questions;
pub(crate) mod run;
pub(crate) mod scoring;
mod supervisor;
mod templates;
mod workspace;

pub use approval::{Approval, Decision};
pub(crate) use builder::Shared;
pub use builder::{Options, RuntimeBuilder};
pub use checkpoints::Fork;
pub use error::RuntimeError;
pub use handle::{Outcome, Owner, RunFilter, RunHandle, RunSummary, TaskOutcome};
pub use messages::{AgentLoad, Cancelled, QueueReport, Resumed};
pub use prp::{
    prp_report_of, read_prp, GateReport, PrpFrom, PrpReport, PrpRun, StepReport, GENERATE_TASK,
};
pub use questions::{default_answerer, AskedQuestion};
pub use runtime::{Orphans, Resumption, Runtime, SubmitOptions};
