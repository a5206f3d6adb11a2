//! Domain types: ids, statuses, plans, references, the task graph, events and agents.
//! Everything here is plain data and pure logic; no actors, no I/O.

pub mod agent;
pub mod approval;
pub mod correlation;
pub mod event;
pub mod failure;
pub mod graph;
pub mod ids;
pub mod layout;
pub mod nesting;
pub mod plan;
pub mod prp;
pub mod question;
pub mod questionnaire;
pub mod reference;
pub mod status;
pub mod template;
pub mod time;
pub mod tool_call;

pub use agent::{AgentSpec, Role, DEFAULT_MAX_TURNS};
pub use approval::ApprovalDecision;
pub use correlation::{Correlation, CorrelationId};
pub(crate) use event::PendingEvent;
pub use event::{Delta, Event, EventData, EventType};
pub use failure::FailureKind;
pub use ids::{CheckpointId, RunId, TaskKey, WaitId};
pub use plan::{Complexity, GateSpec, Plan, Priority};
pub use status::{IllegalTransition, RunStatus, TaskStatus};
pub use tool_call::ToolCall;

/// Names joined with `, ` for a message, or `none`.
pub(crate) fn names_or_none<S: AsRef<str>>(names: &[S]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A relative path made only of normal components (what names a file inside a directory:
/// a run's workspace, a PRP's project), or why not (`what` names it in the
/// message, e.g. "artifact").
pub(crate) fn relative_path(p: &str, what: &str) -> Result<std::path::PathBuf, String> {
    if p.contains('\0') {
        return Err(format!("{what} `{}` contains a NUL byte", p.escape_debug()));
    }
    let path = std::path::Path::new(p);
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => return Err(format!("{what} `{p}` uses `..`")),
            std::path::Component::RootDir | std::path::Component::Prefix(_) => {
                return Err(format!("{what} `{p}` is absolute"))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!("{what} `{p}` names no file"));
    }
    Ok(out)
}
