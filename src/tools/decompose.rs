//! The decomposing agent's part of a decomposed task: the attempt an agent takes when the
//! supervisor delegates the task to it. A static sub-plan or a `for_each` needs nothing of
//! the agent but its acceptance (the coordinator expands and checks the sub-plan, so the
//! agent that took it becomes the subtasks' parent agent); a planned sub-plan is written by
//! the agent's model through the planner.

use super::{Tool, ToolContext, ToolError, ToolOutput};
use futures::future::BoxFuture;
use serde_json::{json, Value};

/// What a decomposed task's attempt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Accept the task: the sub-plan is in the plan or made from a list.
    Accept,
}

/// The tool of a decomposed task's attempt.
pub(crate) struct Decomposer {
    pub step: Step,
}

impl Tool for Decomposer {
    fn name(&self) -> &str {
        crate::domain::plan::DECOMPOSE_TOOL
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object"})
    }

    fn description(&self) -> &str {
        "Splits a task into subtasks and merges their results."
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            if ctx.cancel.is_cancelled() {
                return Err(ToolError::Cancelled);
            }
            match self.step {
                Step::Accept => Ok(ToolOutput::default()),
            }
        })
    }
}
