//! `test:validate`: validates `inputs.data` against `inputs.schema`. Outputs `valid`, `errors`
//! (each with a JSON pointer into the data) and `timestamp`; the task fails when invalid.

use super::{Tool, ToolContext, ToolError, ToolOutput};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};

/// Validates data against a JSON Schema.
pub struct Validate;

impl Tool for Validate {
    fn name(&self) -> &str {
        "test:validate"
    }

    fn description(&self) -> &str {
        "Validates `data` against the JSON Schema `schema` and reports each violation."
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["data", "schema"],
            "properties": {
                "data": {"description": "The value to check."},
                "schema": {"type": ["object", "boolean"], "description": "A JSON Schema."}
            },
            "additionalProperties": false
        })
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let schema = ctx.inputs.get("schema").cloned().unwrap_or(Value::Null);
            let data = ctx.inputs.get("data").cloned().unwrap_or(Value::Null);
            let validator = jsonschema::validator_for(&schema).map_err(|e| {
                ToolError::InvalidInput(format!("`schema` is not a valid JSON Schema: {e}"))
            })?;
            let errors: Vec<Value> = validator
                .iter_errors(&data)
                .map(|e| json!({"pointer": e.instance_path.to_string(), "message": e.to_string()}))
                .collect();
            let valid = errors.is_empty();
            let mut outputs = Map::new();
            outputs.insert("valid".into(), Value::Bool(valid));
            let count = errors.len();
            outputs.insert("errors".into(), Value::Array(errors));
            outputs.insert(
                "timestamp".into(),
                Value::String(crate::domain::time::text(&chrono::Utc::now())),
            );
            if valid {
                Ok(ToolOutput {
                    outputs,
                    artifacts: Vec::new(),
                })
            } else {
                Err(ToolError::Failed {
                    message: format!("data is invalid against the schema ({count} error(s))"),
                    outputs,
                    artifacts: Vec::new(),
                })
            }
        })
    }
}
