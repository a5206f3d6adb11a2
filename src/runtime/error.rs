//! What can go wrong in the runtime, as one error type for every embedding call.

use crate::config::ConfigErrors;
use crate::domain::plan::{PlanErrors, PlanSyntaxError};
use crate::domain::RunId;
use crate::store::{LeaseInfo, StoreError};
use std::sync::Arc;

/// A runtime failure: what every call of [`crate::Runtime`] and [`crate::RunHandle`] may
/// return. Its message is written for a person; match on the variant to act on it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use nofx::plan::{Plan, Task};
/// use nofx::RuntimeError;
/// let rt = nofx::Runtime::builder().memory_store().build().await.unwrap();
/// let plan = Plan::new("p").task(Task::new("a", "no:such-tool")).task(Task::new("a", "test:echo"));
/// match rt.submit(plan, Default::default()).await {
///     Err(RuntimeError::Plan(errors)) => {
///         // Every problem, each with its task.
///         assert_eq!(errors.0.len(), 2, "{errors}");
///     }
///     other => panic!("{other:?}"),
/// }
/// rt.shutdown().await;
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The plan is invalid: every problem, each with its task and line.
    #[error("{0}")]
    Plan(#[from] PlanErrors),
    /// The text is not a plan (not YAML/JSON, or not the plan schema).
    #[error("{0}")]
    PlanSyntax(#[from] PlanSyntaxError),
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
    Planner(#[from] crate::planner::PlannerError),
    /// The task is not waiting for a decision (or was already decided).
    #[error("{0}")]
    NotWaiting(String),
    /// The name given may not decide on that task.
    #[error("{0}")]
    NotApprover(String),
    /// The run has no such task.
    #[error("{0}")]
    NoSuchTask(String),
    /// The run has no such question.
    #[error("{0}")]
    NoSuchQuestion(String),
    /// An answer breaks a rule of its question (type, option, regex, count, range): nothing
    /// is stored and the question still waits.
    #[error("{0}")]
    BadAnswer(#[from] crate::domain::question::Rejected),
    /// The question was answered already (with another value), or cannot be answered now.
    #[error("{0}")]
    Answered(String),
    /// A restore or fork cannot start as asked (unknown task, bad patch, missing files).
    #[error("{0}")]
    BadFork(String),
    /// A PRP that cannot run: its problems, each at its key path.
    #[error("{0}")]
    BadPrp(crate::domain::prp::PrpErrors),
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
    /// The run did not end: the runtime executing it stopped first. It stays unfinished in
    /// the store, and [`crate::Runtime::resume`] (or `resume_orphans`) of a runtime on the
    /// same store goes on with it.
    #[error("run {run} was interrupted before it ended: the runtime executing it stopped; resume it to go on")]
    Interrupted {
        /// The run.
        run: RunId,
    },
    /// The runtime has stopped.
    #[error("the runtime has stopped")]
    Stopped,
}
