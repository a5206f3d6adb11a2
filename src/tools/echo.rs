//! `test:echo`: returns its inputs as outputs.

use super::{Tool, ToolContext, ToolError, ToolOutput};
use futures::future::BoxFuture;
use serde_json::{json, Value};

/// Returns its inputs.
pub struct Echo;

impl Tool for Echo {
    fn name(&self) -> &str {
        "test:echo"
    }

    fn description(&self) -> &str {
        "Returns its inputs as its outputs."
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn inline(&self) -> bool {
        true
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object"})
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            match ctx.inputs {
                Value::Object(outputs) => Ok(ToolOutput {
                    outputs,
                    artifacts: Vec::new(),
                }),
                other => Err(ToolError::InvalidInput(format!(
                    "expected an object, got {other}"
                ))),
            }
        })
    }
}
