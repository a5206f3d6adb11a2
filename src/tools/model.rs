//! How a tool (or a gate) calls a model: [`ModelAccess`] binds the runtime's models to the
//! calling task (for routing, usage rows and budgets) and to its run's event log.

use crate::models::{Answer, Ask, CallError, CallSink, Caller, Models};
use std::sync::Arc;

/// A task's access to models.
#[derive(Clone)]
pub struct ModelAccess {
    models: Arc<Models>,
    caller: Caller,
    sink: Arc<dyn CallSink>,
    /// The agent's `model` (a model id or tier), preferred when an ask names none.
    prefer: Option<String>,
}

impl ModelAccess {
    /// Access for `caller`, reporting to `sink`.
    pub fn new(models: Arc<Models>, caller: Caller, sink: Arc<dyn CallSink>) -> Self {
        Self {
            models,
            caller,
            sink,
            prefer: None,
        }
    }

    /// The same access for the agent that runs the task: its calls prefer the agent's
    /// `model`.
    pub(crate) fn for_agent(mut self, agent: &crate::domain::AgentSpec) -> Self {
        self.caller.agent = Some(agent.id.clone());
        self.caller.role = Some(agent.role);
        self.prefer = agent.model.clone();
        self
    }

    /// Who calls.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The same access under another tool name (gates call as `gate:KIND`).
    pub fn as_tool(&self, tool: &str) -> Self {
        let mut a = self.clone();
        a.caller.tool = tool.to_string();
        a
    }

    /// The models.
    pub fn models(&self) -> &Models {
        &self.models
    }

    /// Routes and makes one call (with retries and fallbacks).
    ///
    /// # Errors
    /// As [`Models::complete`].
    ///
    /// # Cancel safety
    /// As [`Models::complete`].
    pub async fn complete(&self, ask: &Ask) -> Result<Answer, CallError> {
        if ask.model.is_none() && self.prefer.is_some() {
            let mut ask = ask.clone();
            ask.model = self.prefer.clone();
            return self
                .models
                .complete(&self.caller, &ask, self.sink.as_ref())
                .await;
        }
        self.models
            .complete(&self.caller, ask, self.sink.as_ref())
            .await
    }
}

impl From<CallError> for super::ToolError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Budget(b) => Self::Budget(b.to_string()),
            CallError::NoProvider(m) => Self::Unavailable(m),
            CallError::NoModel(m) => Self::Unavailable(m.to_string()),
            CallError::Failed { .. } => Self::Failed {
                message: e.to_string(),
                outputs: Default::default(),
                artifacts: Vec::new(),
            },
        }
    }
}
