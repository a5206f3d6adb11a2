//! What is wrong with a plan: each problem ([`PlanError`]) with where it is ([`PlanIssue`]),
//! and every problem of a plan at once ([`PlanErrors`]).

use super::PlanSource;
use std::fmt;

/// One problem found in a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The plan has no tasks.
    #[error("the plan has no tasks")]
    NoTasks,
    /// A task id is malformed.
    #[error("{0}")]
    BadTaskId(String),
    /// Two tasks share an id.
    #[error("task `{task}`: duplicate task id (first used on task #{first})")]
    DuplicateId {
        /// The id.
        task: String,
        /// 1-based position of the first task with it.
        first: usize,
    },
    /// `depends_on` names a task that does not exist.
    #[error("task `{task}` depends on unknown task `{missing}`")]
    UnknownDependency {
        /// The task.
        task: String,
        /// The missing id.
        missing: String,
    },
    /// The dependencies form a cycle.
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// The tool does not exist.
    #[error("task `{task}`: unknown tool `{tool}` (known tools: {known})")]
    UnknownTool {
        /// The task.
        task: String,
        /// The tool name given.
        tool: String,
        /// Registered tools.
        known: String,
    },
    /// The inputs do not match the tool's input schema.
    #[error("task `{task}`: inputs of tool `{tool}` are invalid at `{pointer}`: {message}")]
    BadInputs {
        /// The task.
        task: String,
        /// The tool.
        tool: String,
        /// Where in the inputs (JSON pointer; empty for the whole object).
        pointer: String,
        /// What is wrong.
        message: String,
    },
    /// A reference is malformed or points nowhere.
    #[error("task `{task}`: {why}")]
    BadReference {
        /// The task.
        task: String,
        /// What is wrong.
        why: String,
    },
    /// No agent has a capability the task needs.
    #[error("task `{task}` requires capability `{capability}`, which no agent has")]
    MissingCapability {
        /// The task.
        task: String,
        /// The capability.
        capability: String,
    },
    /// Each capability exists, but no one agent has them all.
    #[error(
        "task `{task}` requires capabilities {capabilities}, which no single agent has together"
    )]
    NoSingleAgent {
        /// The task.
        task: String,
        /// The capabilities.
        capabilities: String,
    },
    /// A required plan input was not given.
    #[error("missing required plan input `{0}`")]
    MissingInput(String),
    /// An input was given that the plan does not declare.
    #[error("unknown plan input `{name}` (the plan declares: {declared})")]
    UnknownInput {
        /// The name given.
        name: String,
        /// Declared names.
        declared: String,
    },
    /// An input value (or default) has the wrong type.
    #[error("plan input `{name}`: {why}")]
    BadInputValue {
        /// The input.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A gate is malformed.
    #[error("task `{task}`: gate #{index} ({kind}): {why}")]
    BadGate {
        /// The task.
        task: String,
        /// 1-based position of the gate.
        index: usize,
        /// Gate kind.
        kind: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The command policy refuses a command the task runs.
    #[error("task `{task}`: {why}")]
    CommandNotAllowed {
        /// The task.
        task: String,
        /// The policy's reason.
        why: String,
    },
    /// The task calls a model and no provider is configured.
    #[error("task `{task}`: {what}, but {how}")]
    NeedsModel {
        /// The task.
        task: String,
        /// `tool `llm:generate` uses a model`, …
        what: String,
        /// How to configure a provider.
        how: String,
    },
    /// A task's `decompose` is malformed.
    #[error("task `{task}`: decompose: {why}")]
    BadDecompose {
        /// The task.
        task: String,
        /// What is wrong.
        why: String,
    },
    /// A task names no tool (and does not decompose), or names one and decomposes.
    #[error("task `{task}`: {why}")]
    BadTool {
        /// The task.
        task: String,
        /// What is wrong.
        why: String,
    },
    /// A field has a value out of range.
    #[error("{field}: {why}")]
    BadField {
        /// `timeout_s`, `tasks[3].timeout_s`, …
        field: String,
        /// What is wrong.
        why: String,
    },
}

impl PlanError {
    /// The task the problem is in, when it is in one.
    pub fn task(&self) -> Option<&str> {
        match self {
            Self::DuplicateId { task, .. }
            | Self::UnknownDependency { task, .. }
            | Self::UnknownTool { task, .. }
            | Self::BadInputs { task, .. }
            | Self::BadReference { task, .. }
            | Self::MissingCapability { task, .. }
            | Self::NoSingleAgent { task, .. }
            | Self::BadGate { task, .. }
            | Self::CommandNotAllowed { task, .. }
            | Self::BadDecompose { task, .. }
            | Self::BadTool { task, .. }
            | Self::NeedsModel { task, .. } => Some(task),
            _ => None,
        }
    }

    /// The field the problem is about, when one is named: `inputs/PATH` of a task,
    /// `gates[N]`, `inputs.NAME` of the plan, or a plan field.
    pub fn field(&self) -> Option<String> {
        match self {
            Self::BadInputs { pointer, .. } => Some(format!("inputs{pointer}")),
            Self::UnknownDependency { .. } => Some("depends_on".into()),
            Self::UnknownTool { .. } | Self::BadTool { .. } => Some("tool".into()),
            Self::BadDecompose { .. } => Some("decompose".into()),
            Self::MissingCapability { .. } | Self::NoSingleAgent { .. } => {
                Some("capabilities".into())
            }
            Self::BadGate { index, .. } => Some(format!("gates[{}]", index.saturating_sub(1))),
            Self::MissingInput(name) => Some(format!("inputs.{name}")),
            Self::UnknownInput { name, .. } | Self::BadInputValue { name, .. } => {
                Some(format!("inputs.{name}"))
            }
            Self::BadField { field, .. } => Some(field.clone()),
            _ => None,
        }
    }
}

/// A problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanIssue {
    /// The file, when the plan came from one.
    pub origin: Option<String>,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The problem.
    pub error: PlanError,
}

impl fmt::Display for PlanIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.origin, self.line) {
            (Some(o), Some(l)) => write!(f, "{o}:{l}: {}", self.error),
            (Some(o), None) => write!(f, "{o}: {}", self.error),
            (None, Some(l)) => write!(f, "line {l}: {}", self.error),
            (None, None) => write!(f, "{}", self.error),
        }
    }
}

/// Every problem found in a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PlanErrors(pub Vec<PlanIssue>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        if n > 1 {
            writeln!(f, "the plan has {n} problems:")?;
        }
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if n > 1 {
                write!(f, "  ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl PlanErrors {
    /// Problems of the tasks at the given plan positions, with their lines from `source`.
    pub fn at_tasks(source: &PlanSource, problems: Vec<(usize, PlanError)>) -> Self {
        Self(
            problems
                .into_iter()
                .map(|(i, error)| PlanIssue {
                    origin: source.origin.clone(),
                    line: source.task_lines.get(i).copied().flatten(),
                    error,
                })
                .collect(),
        )
    }
}

/// A problem at `line` of `origin`.
pub(crate) fn issue(origin: Option<&String>, line: Option<usize>, error: PlanError) -> PlanIssue {
    PlanIssue {
        origin: origin.cloned(),
        line,
        error,
    }
}
