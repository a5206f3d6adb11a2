//! What a manual approval gate's wait is decided as: by a person, or by its deadline through
//! the gate's `on_timeout`.

use super::plan::OnTimeout;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A decision on a task waiting for approval: `approve` or `reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalDecision {
    /// The task succeeds with the outputs it holds.
    Approve,
    /// The task fails, without a retry.
    Reject,
}

impl ApprovalDecision {
    /// `approve` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }

    /// Parses `approve` or `reject`.
    ///
    /// # Errors
    /// Any other text.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "approve" => Ok(Self::Approve),
            "reject" => Ok(Self::Reject),
            other => Err(format!(
                "unknown decision `{other}` (expected approve or reject)"
            )),
        }
    }
}

impl From<OnTimeout> for ApprovalDecision {
    fn from(t: OnTimeout) -> Self {
        match t {
            OnTimeout::Approve => Self::Approve,
            OnTimeout::Reject => Self::Reject,
        }
    }
}

impl fmt::Display for ApprovalDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Reads as its contract name, so `Option<ApprovalDecision>::as_deref()` gives the text
/// documents carry.
impl std::ops::Deref for ApprovalDecision {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// What a wait waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WaitKind {
    /// A person's decision on a task's outputs (a manual gate).
    Approval,
    /// A person's decision on a tool call an agent's model asked for (the agent's
    /// `require_approval`); the task runs again once decided, and its loop goes on.
    ToolCall,
    /// A typed question to the user (the `ask` tool); the task runs again once every
    /// question it asked is settled.
    Question,
}

impl WaitKind {
    /// `approval`, `tool_call` or `question`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approval => "approval",
            Self::ToolCall => "tool_call",
            Self::Question => "question",
        }
    }

    /// Parses `approval`, `tool_call` or `question`.
    ///
    /// # Errors
    /// Any other text.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "approval" => Ok(Self::Approval),
            "tool_call" => Ok(Self::ToolCall),
            "question" => Ok(Self::Question),
            other => Err(format!("unknown wait kind `{other}`")),
        }
    }
}
