//! Correlation ids: `corr_<unix-ms>_<8 hex>`, one a run (or the caller's own), carried by every
//! actor message, event row and log line.

use crate::domain::ids::{RunId, TaskKey};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A correlation id.
///
/// ```
/// let id = nofx::CorrelationId::generate();
/// assert!(id.as_str().starts_with("corr_"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CorrelationId(String);

impl CorrelationId {
    /// A new id: `corr_<unix-ms>_<8 hex>`.
    pub fn generate() -> Self {
        let ms = crate::domain::time::now_ms();
        let suffix: u32 = rand::random();
        Self(format!("corr_{ms}_{suffix:08x}"))
    }

    /// Uses a caller's id as given.
    ///
    /// # Errors
    /// When it is empty, longer than 200 characters or holds whitespace or control characters.
    pub fn from_caller(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 200 {
            return Err("a correlation id must have 1 to 200 characters".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "correlation id `{s}` must not hold whitespace or control characters"
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub(crate) fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What every message carries: the run, the task (when there is one) and the correlation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlation {
    /// The run.
    pub run: RunId,
    /// The task, when the message concerns one.
    pub task: Option<TaskKey>,
    /// The correlation id of the run.
    pub id: CorrelationId,
}

impl Correlation {
    /// The same correlation narrowed to one task.
    pub fn for_task(&self, task: &TaskKey) -> Self {
        Self {
            run: self.run,
            task: Some(task.clone()),
            id: self.id.clone(),
        }
    }

    /// A tracing span carrying `corr`, `run` and `task`.
    pub fn span(&self, name: &'static str) -> tracing::Span {
        let task = self.task.as_ref().map(|t| t.as_str()).unwrap_or("");
        tracing::info_span!("nofx", op = name, corr = %self.id, run = %self.run, task = task)
    }
}
