//! A tool call a model asks for: what providers return, what an agent's journal keeps.

use serde::{Deserialize, Serialize};

/// A call a model asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id of the call; its result names it.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its input as the model wrote it: a JSON object, or the raw text when the model wrote
    /// something that is not JSON (the caller answers that with an error result).
    pub input: serde_json::Value,
}
