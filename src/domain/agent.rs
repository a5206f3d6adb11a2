//! Agents as the supervisor sees them: role, capabilities and limits.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The role of an agent in the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes complex tasks (and may decompose them).
    Coordinator,
    /// Holds specific capabilities.
    Specialist,
    /// Takes routine tasks.
    Worker,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Coordinator => "coordinator",
            Self::Specialist => "specialist",
            Self::Worker => "worker",
        })
    }
}

/// A validated agent definition.
///
/// ```
/// use nofx::{AgentSpec, Role};
/// let a = AgentSpec::new("w1", Role::Worker).with_capabilities(["shell"]).with_limits(4, Some(50.0));
/// assert_eq!(a.max_concurrency, 4);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Unique id.
    pub id: String,
    /// Role.
    pub role: Role,
    /// Capabilities it offers.
    pub capabilities: Vec<String>,
    /// The model it uses, when it calls one.
    pub model: Option<String>,
    /// Tasks it may have in flight at once (at least 1).
    pub max_concurrency: u32,
    /// Tasks it may start per second; `None` is unlimited.
    pub rate: Option<f64>,
    /// Agents it works well under (scored +15 when the task's parent agent is one of these).
    pub affinity: Vec<String>,
    /// Its system prompt when it reasons (`agent` tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// What its reasoning loop may call: tool names (`shell`, `test:echo`), `mcp:SERVER.TOOL`,
    /// `mcp:SERVER.*` and `agent:ID`.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Tool patterns (as in `tools`) whose calls wait for a person's approval.
    #[serde(default)]
    pub require_approval: Vec<String>,
    /// Model turns a reasoning loop may take (at least 1).
    #[serde(default = "default_max_turns")]
    pub max_turns: u32,
}

/// Turns of a reasoning loop when a manifest does not say.
pub const DEFAULT_MAX_TURNS: u32 = 20;

fn default_max_turns() -> u32 {
    DEFAULT_MAX_TURNS
}

impl AgentSpec {
    /// An agent with no capabilities, one slot and no rate limit.
    pub fn new(id: impl Into<String>, role: Role) -> Self {
        Self {
            id: id.into(),
            role,
            capabilities: Vec::new(),
            model: None,
            max_concurrency: 1,
            rate: None,
            affinity: Vec::new(),
            instructions: None,
            tools: Vec::new(),
            require_approval: Vec::new(),
            max_turns: DEFAULT_MAX_TURNS,
        }
    }

    /// Sets the model (a model id or a tier of the catalogue) its calls prefer.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Sets its system prompt for `agent` tasks.
    pub fn with_instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = Some(instructions.into());
        self
    }

    /// Sets what its reasoning loop may call (see [`AgentSpec::tools`]).
    pub fn with_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tools = tools.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the tool patterns whose calls wait for approval.
    pub fn with_require_approval<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.require_approval = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `max_turns` (at least 1).
    pub fn with_max_turns(mut self, turns: u32) -> Self {
        self.max_turns = turns.max(1);
        self
    }

    /// Sets the capabilities.
    pub fn with_capabilities<I, S>(mut self, caps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities = caps.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `max_concurrency` (at least 1) and `rate` (tasks per second).
    pub fn with_limits(mut self, max_concurrency: u32, rate: Option<f64>) -> Self {
        self.max_concurrency = max_concurrency.max(1);
        self.rate = rate;
        self
    }

    /// Sets the affinity list.
    pub fn with_affinity<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.affinity = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Whether it has every capability in `required`.
    pub fn has_all(&self, required: &[String]) -> bool {
        required.iter().all(|c| self.capabilities.contains(c))
    }
}
