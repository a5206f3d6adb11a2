//! `llm:generate`: asks a model (through routing, budgets and usage) with a prompt whose
//! `${…}` references the runtime has already resolved, an optional system prompt and an
//! optional JSON Schema for the answer. An answer that does not satisfy the schema is sent
//! back once with the validation errors; a second miss fails the attempt.

use super::{ModelAccess, Tool, ToolContext, ToolError, ToolOutput};
use crate::models::{answer_body, Answer, Ask, Message};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};

/// The `llm:generate` tool.
pub struct LlmGenerate;

/// Text and (when a schema was given) the validated JSON of an answer, with the usage of
/// every call it took.
pub(crate) struct Structured {
    pub text: String,
    pub json: Option<Value>,
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micro_usd: i64,
    pub calls: u32,
}

impl Structured {
    fn add(&mut self, a: &Answer) {
        self.text = a.text.clone();
        self.model = a.model.clone();
        self.input_tokens += a.input_tokens;
        self.output_tokens += a.output_tokens;
        self.cost_micro_usd += a.cost_micro_usd;
        self.calls += 1;
    }

    /// Outputs every model tool reports: model, tokens, cost.
    pub fn usage_outputs(&self, out: &mut Map<String, Value>) {
        out.insert("model".into(), json!(self.model));
        out.insert("input_tokens".into(), json!(self.input_tokens));
        out.insert("output_tokens".into(), json!(self.output_tokens));
        out.insert("cost_usd".into(), json!(self.cost_micro_usd as f64 / 1e6));
        out.insert("calls".into(), json!(self.calls));
    }
}

/// Schema violations of `v`, as `pointer: message` lines.
pub(crate) fn violations(validator: &jsonschema::Validator, v: &Value) -> Vec<String> {
    validator
        .iter_errors(v)
        .map(|e| {
            let at = e.instance_path.to_string();
            format!("{}: {e}", if at.is_empty() { "/".into() } else { at })
        })
        .collect()
}

/// The JSON body of a model's answer (see [`answer_body`]) when it satisfies `validator`,
/// else what is wrong.
pub(crate) fn check(validator: &jsonschema::Validator, text: &str) -> Result<Value, Vec<String>> {
    let v: Value = serde_json::from_str(answer_body(text))
        .map_err(|e| vec![format!("the answer is not JSON: {e}")])?;
    let errors = violations(validator, &v);
    if errors.is_empty() {
        Ok(v)
    } else {
        Err(errors)
    }
}

/// Asks, and with a `schema`, insists once on an answer that satisfies it.
pub(crate) async fn ask_structured(
    models: &ModelAccess,
    mut ask: Ask,
    schema: Option<&Value>,
    what: &str,
) -> Result<Structured, ToolError> {
    let validator = match schema {
        None => None,
        Some(s) => Some(jsonschema::validator_for(s).map_err(|e| {
            ToolError::InvalidInput(format!("`schema` is not a valid JSON Schema: {e}"))
        })?),
    };
    let first = models.complete(&ask).await?;
    let mut out = Structured {
        text: String::new(),
        json: None,
        model: String::new(),
        input_tokens: 0,
        output_tokens: 0,
        cost_micro_usd: 0,
        calls: 0,
    };
    out.add(&first);
    let Some(validator) = validator else {
        return Ok(out);
    };
    let errors = match check(&validator, &first.text) {
        Ok(v) => {
            out.json = Some(v);
            return Ok(out);
        }
        Err(errors) => errors,
    };
    tracing::info!(
        errors = errors.len(),
        "{what}: the answer does not satisfy its schema; asking once for a repair"
    );
    ask.messages.push(Message::assistant(first.text));
    ask.messages.push(Message::user(format!(
        "Your answer does not satisfy the required JSON Schema:\n- {}\nReply with only the corrected JSON.",
        errors.join("\n- ")
    )));
    let second = models.complete(&ask).await?;
    out.add(&second);
    match check(&validator, &second.text) {
        Ok(v) => {
            out.json = Some(v);
            Ok(out)
        }
        Err(errors) => {
            let mut outputs = Map::new();
            outputs.insert("text".into(), json!(out.text));
            out.usage_outputs(&mut outputs);
            Err(ToolError::Failed {
                message: format!(
                    "{what}: the answer does not satisfy its schema after one repair: {}",
                    errors.join("; ")
                ),
                outputs,
                artifacts: Vec::new(),
            })
        }
    }
}

pub(crate) fn str_input(inputs: &Value, key: &str) -> Option<String> {
    inputs.get(key).and_then(Value::as_str).map(str::to_string)
}

pub(crate) fn ask_from(
    inputs: &Value,
    prompt: String,
    system: Option<String>,
    default_max: u32,
) -> Ask {
    Ask {
        system,
        messages: vec![Message::user(prompt)],
        max_tokens: inputs
            .get("max_tokens")
            .and_then(Value::as_u64)
            .map_or(default_max, |n| n.min(u64::from(u32::MAX)) as u32),
        temperature: inputs
            .get("temperature")
            .and_then(Value::as_f64)
            .map(|t| t as f32),
        requires_reasoning: inputs
            .get("reasoning")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        tools: Vec::new(),
        model: None,
    }
}

/// The input schema of a model tool: `prompt` (required), `system`, `max_tokens`,
/// `temperature`, `reasoning`, and the tool's own `extra` property.
pub(crate) fn model_tool_schema(extra: &str, extra_schema: Value) -> Value {
    json!({
        "type": "object",
        "required": ["prompt"],
        "properties": {
            "prompt": {"type": "string", "minLength": 1, "description": "The prompt; `${…}` references are resolved first."},
            "system": {"type": "string", "description": "System prompt."},
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1000000, "description": "Output token limit."},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "reasoning": {"type": "boolean", "description": "Route as a task that requires reasoning."},
            extra: extra_schema
        },
        "additionalProperties": false
    })
}

/// The `prompt` input.
pub(crate) fn prompt_input(inputs: &Value) -> Result<String, ToolError> {
    str_input(inputs, "prompt")
        .ok_or_else(|| ToolError::InvalidInput("`prompt` must be a string".into()))
}

impl Tool for LlmGenerate {
    fn name(&self) -> &str {
        "llm:generate"
    }

    fn description(&self) -> &str {
        "Asks a model with a prompt and returns its answer (optionally JSON that satisfies a schema)."
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn input_schema(&self) -> Value {
        model_tool_schema(
            "schema",
            json!({"type": "object", "description": "JSON Schema the answer must satisfy; the answer is then parsed into `json`."}),
        )
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let prompt = prompt_input(&ctx.inputs)?;
            let schema = ctx.inputs.get("schema").cloned();
            let mut system = str_input(&ctx.inputs, "system");
            if schema.is_some() {
                let rule = "Answer with one JSON value that satisfies the JSON Schema you are given, and nothing else.";
                system = Some(match system {
                    Some(s) => format!("{s}\n\n{rule}"),
                    None => rule.to_string(),
                });
            }
            let mut prompt = prompt;
            if let Some(s) = &schema {
                prompt.push_str(&format!("\n\nJSON Schema of the answer:\n{s}"));
            }
            let ask = ask_from(&ctx.inputs, prompt, system, 1024);
            let s = ask_structured(&ctx.models, ask, schema.as_ref(), "llm:generate").await?;
            let mut out = ToolOutput::default();
            out.outputs.insert("text".into(), json!(s.text));
            if let Some(j) = &s.json {
                out.outputs.insert("json".into(), j.clone());
            }
            s.usage_outputs(&mut out.outputs);
            Ok(out)
        })
    }
}
