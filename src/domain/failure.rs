//! Why an attempt failed, as the `errorType` of events and the `error_type` of metrics rows.
//! Whether a failure may be retried is a property of its kind.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The kind of an attempt's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The tool ran and reported failure.
    Tool,
    /// A validation gate did not pass.
    Gate,
    /// The attempt ran past the task's `timeout_s`.
    Timeout,
    /// The tool panicked.
    Panic,
    /// The runtime's own plumbing failed (files, pipes).
    Io,
    /// The inputs could not be resolved or are not what the tool accepts.
    Input,
    /// The command policy or the submitter's scopes forbid it.
    Policy,
    /// The run was cancelled or stopped.
    Cancelled,
    /// A model call would pass a budget: the run stops.
    BudgetExceeded,
    /// What the task needs is not configured (e.g. no model provider).
    Unavailable,
    /// A person rejected the task's result.
    Rejected,
    /// A decomposition would pass a limit of `limits.toml` (depth, subtasks, tasks of a run).
    LimitExceeded,
    /// A subtask repeats the decomposition of a task on its ancestor chain.
    DelegationCycle,
    /// A required question got no answer and has no default or smart default.
    NoDefault,
    /// A PRP step changed a path the PRP protects.
    Integrity,
}

impl FailureKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 15] = [
        Self::Tool,
        Self::Gate,
        Self::Timeout,
        Self::Panic,
        Self::Io,
        Self::Input,
        Self::Policy,
        Self::Cancelled,
        Self::BudgetExceeded,
        Self::Unavailable,
        Self::Rejected,
        Self::LimitExceeded,
        Self::DelegationCycle,
        Self::NoDefault,
        Self::Integrity,
    ];

    /// The text stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Gate => "gate",
            Self::Timeout => "timeout",
            Self::Panic => "panic",
            Self::Io => "io",
            Self::Input => "input",
            Self::Policy => "policy",
            Self::Cancelled => "cancelled",
            Self::BudgetExceeded => "budget_exceeded",
            Self::Unavailable => "unavailable",
            Self::Rejected => "rejected",
            Self::LimitExceeded => "limit_exceeded",
            Self::DelegationCycle => "delegation_cycle",
            Self::NoDefault => "no_default",
            Self::Integrity => "integrity",
        }
    }

    /// Whether another attempt could end differently (the task's retry policy still decides
    /// whether one is made). Bad inputs, refusals, cancellation, budgets, missing
    /// configuration and a person's rejection would fail the same way again.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::Tool | Self::Gate | Self::Timeout | Self::Panic | Self::Io
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_the_serialised_form() {
        for k in FailureKind::ALL {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
    }

    #[test]
    fn only_failures_that_could_end_differently_are_retried() {
        let retried: Vec<&str> = FailureKind::ALL
            .iter()
            .filter(|k| k.retryable())
            .map(|k| k.as_str())
            .collect();
        assert_eq!(retried, ["tool", "gate", "timeout", "panic", "io"]);
    }
}
