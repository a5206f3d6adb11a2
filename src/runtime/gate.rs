//! Gate actors: one per automatic gate kind (`pattern`, `json_schema`, `command`,
//! `llm_judge`). Each checks a task's outputs and answers with a verdict that says why;
//! compiled regexes and schemas are cached. `manual` gates are decided by people: the run's
//! coordinator holds the result (`runtime/run/waits.rs`).

use super::messages::{CheckGate, Verdict};
use crate::domain::{FailureKind, GateSpec};
use crate::models::{Ask, Message};
use crate::tools::llm::ask_structured;
use crate::tools::shell::{command_vars, exit_code, run_command, Ended};
use crate::tools::{ToolEnv, ToolError};
use actix::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Default deadline of a command gate.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

impl Verdict {
    fn pass(reason: impl Into<String>, detail: Value) -> Self {
        Self {
            passed: true,
            reason: reason.into(),
            detail,
            error_type: None,
        }
    }
    fn fail(reason: impl Into<String>, detail: Value) -> Self {
        Self {
            passed: false,
            reason: reason.into(),
            detail,
            error_type: None,
        }
    }
}

/// A gate actor for one kind.
pub struct GateActor {
    env: ToolEnv,
    regexes: HashMap<String, Arc<regex::Regex>>,
    schemas: HashMap<String, Arc<jsonschema::Validator>>,
}

impl GateActor {
    /// A gate actor whose command gates use `env` (the command policy).
    pub fn new(env: ToolEnv) -> Self {
        Self {
            env,
            regexes: HashMap::new(),
            schemas: HashMap::new(),
        }
    }
}

impl Actor for GateActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(256);
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// The end of a command's output, what a retry is told: the tails of stdout and stderr.
fn output_tail(stdout: &str, stderr: &str) -> String {
    let mut out = String::new();
    for (name, text) in [("stdout", stdout), ("stderr", stderr)] {
        let text = text.trim_end();
        if !text.is_empty() {
            out.push_str(&format!("--- {name} (end) ---\n{text}\n"));
        }
    }
    out
}

fn missing_output(name: &str, outputs: &Map<String, Value>) -> Verdict {
    let have: Vec<&str> = outputs.keys().map(String::as_str).collect();
    Verdict::fail(
        format!(
            "output `{name}` is missing (outputs: {})",
            crate::domain::names_or_none(&have)
        ),
        json!({"output": name}),
    )
}

fn judge_schema() -> Value {
    json!({
        "type": "object",
        "required": ["verdict", "reasons"],
        "properties": {
            "verdict": {"enum": ["pass", "fail"]},
            "reasons": {"type": "array", "items": {"type": "string"}}
        }
    })
}

/// Asks a model whether the outputs satisfy `rubric`.
async fn judge(msg: &CheckGate, rubric: &str, output: Option<&str>) -> Verdict {
    let shown = match output {
        Some(name) => match msg.outputs.get(name) {
            Some(v) => as_text(v),
            None => return missing_output(name, &msg.outputs),
        },
        None => serde_json::to_string_pretty(&msg.outputs).unwrap_or_default(),
    };
    let what = output.map_or("The task's outputs".to_string(), |n| {
        format!("Output `{n}`")
    });
    let ask = Ask {
        system: Some(format!(
            "You are a strict reviewer. Judge whether the work satisfies the rubric. Answer with one JSON object and nothing else: {{\"verdict\": \"pass\" or \"fail\", \"reasons\": [\"…\"]}}.\nJSON Schema of the answer:\n{}",
            judge_schema()
        )),
        messages: vec![Message::user(format!(
            "Rubric:\n{rubric}\n\n{what}:\n{shown}"
        ))],
        max_tokens: 1024,
        temperature: Some(0.0),
        requires_reasoning: false,
        tools: Vec::new(),
        model: None,
    };
    let models = msg.models.as_tool("gate:llm_judge");
    match ask_structured(&models, ask, Some(&judge_schema()), "llm_judge").await {
        Ok(s) => {
            let j = s.json.unwrap_or_default();
            let pass = j["verdict"] == "pass";
            let reasons: Vec<String> = j["reasons"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let detail = json!({
                "verdict": j["verdict"],
                "reasons": reasons,
                "rubric": rubric,
                "model": s.model,
                "cost_usd": s.cost_micro_usd as f64 / 1e6,
            });
            let why = if reasons.is_empty() {
                "no reasons given".to_string()
            } else {
                reasons.join("; ")
            };
            if pass {
                Verdict::pass(format!("the judge passed it: {why}"), detail)
            } else {
                Verdict::fail(format!("the judge failed it: {why}"), detail)
            }
        }
        Err(e) => {
            let mut v = Verdict::fail(
                format!("the judge could not decide: {e}"),
                json!({"rubric": rubric}),
            );
            if matches!(e, ToolError::Budget(_)) {
                v.error_type = Some(FailureKind::BudgetExceeded);
            }
            v
        }
    }
}

impl Handler<CheckGate> for GateActor {
    type Result = ResponseFuture<Verdict>;

    fn handle(&mut self, msg: CheckGate, _: &mut Context<Self>) -> Self::Result {
        match &msg.gate {
            GateSpec::Pattern { output, regex } => {
                let re = match self.regexes.get(regex) {
                    Some(r) => r.clone(),
                    None => match regex::RegexBuilder::new(regex).multi_line(true).build() {
                        Ok(r) => {
                            let r = Arc::new(r);
                            self.regexes.insert(regex.clone(), r.clone());
                            r
                        }
                        Err(e) => {
                            let v =
                                Verdict::fail(format!("bad regex: {e}"), json!({"regex": regex}));
                            return Box::pin(async move { v });
                        }
                    },
                };
                let verdict = match msg.outputs.get(output) {
                    None => missing_output(output, &msg.outputs),
                    Some(v) => {
                        let text = as_text(v);
                        if re.is_match(&text) {
                            Verdict::pass(
                                format!("output `{output}` matches /{regex}/"),
                                json!({"output": output, "regex": regex}),
                            )
                        } else {
                            Verdict::fail(
                                format!(
                                    "output `{output}` does not match /{regex}/ (got {:?})",
                                    excerpt(&text)
                                ),
                                json!({"output": output, "regex": regex}),
                            )
                        }
                    }
                };
                Box::pin(async move { verdict })
            }
            GateSpec::JsonSchema { output, schema } => {
                let key = schema.to_string();
                let validator = match self.schemas.get(&key) {
                    Some(v) => v.clone(),
                    None => match jsonschema::validator_for(schema) {
                        Ok(v) => {
                            let v = Arc::new(v);
                            self.schemas.insert(key, v.clone());
                            v
                        }
                        Err(e) => {
                            let v = Verdict::fail(format!("bad schema: {e}"), Value::Null);
                            return Box::pin(async move { v });
                        }
                    },
                };
                let whole = Value::Object(msg.outputs.clone());
                let (instance, what) = match output {
                    Some(name) => match msg.outputs.get(name) {
                        Some(v) => (v, format!("output `{name}`")),
                        None => {
                            let v = missing_output(name, &msg.outputs);
                            return Box::pin(async move { v });
                        }
                    },
                    None => (&whole, "outputs".to_string()),
                };
                let errors: Vec<Value> = validator
                    .iter_errors(instance)
                    .take(20)
                    .map(|e| json!({"pointer": e.instance_path.to_string(), "message": e.to_string()}))
                    .collect();
                let verdict = if errors.is_empty() {
                    Verdict::pass(format!("{what} match the schema"), json!({}))
                } else {
                    let first = &errors[0];
                    Verdict::fail(
                        format!(
                            "{what} fail the schema at `{}`: {}",
                            first["pointer"].as_str().unwrap_or(""),
                            first["message"].as_str().unwrap_or("")
                        ),
                        json!({"errors": errors}),
                    )
                };
                Box::pin(async move { verdict })
            }
            // The coordinator holds the task for a person's decision; it never sends these.
            GateSpec::Manual { .. } => Box::pin(async {
                Verdict::fail(
                    "a manual gate is decided by a person, not checked".to_string(),
                    Value::Null,
                )
            }),
            GateSpec::LlmJudge { rubric, output } => {
                let (rubric, output) = (rubric.clone(), output.clone());
                Box::pin(async move { judge(&msg, &rubric, output.as_deref()).await })
            }
            GateSpec::Command { argv, timeout_s } => {
                let env = self.env.clone();
                let argv = argv.clone();
                let limit = timeout_s
                    .map(Duration::from_secs_f64)
                    .unwrap_or(COMMAND_TIMEOUT);
                Box::pin(async move {
                    let vars = command_vars(&msg.corr, msg.attempt);
                    let stop = msg.cancel.child_token();
                    let run = run_command(&argv, &vars, &msg.workspace, &env, &stop);
                    let outcome = tokio::time::timeout(limit, run).await;
                    let program = argv.first().cloned().unwrap_or_default();
                    match outcome {
                        Err(_) => Verdict::fail(
                            format!(
                                "command `{program}` timed out after {}s",
                                limit.as_secs_f64()
                            ),
                            json!({"argv": argv}),
                        ),
                        Ok(Err(e)) => Verdict::fail(
                            format!("command `{program}`: {e}"),
                            json!({"argv": argv}),
                        ),
                        Ok(Ok(done)) => match done.ended {
                            Ended::Cancelled => Verdict::fail("cancelled", json!({"argv": argv})),
                            Ended::Exited(status) => {
                                let code = exit_code(&status);
                                let detail = json!({"argv": argv, "exit_code": code, "stdout": excerpt(&done.stdout.head), "stderr": excerpt(&done.stderr.head), "output_tail": output_tail(&done.stdout.tail, &done.stderr.tail)});
                                if code == 0 {
                                    Verdict::pass(
                                        format!("command `{program}` exited with 0"),
                                        detail,
                                    )
                                } else {
                                    let tail = done.stderr.head.trim();
                                    Verdict::fail(
                                        if tail.is_empty() {
                                            format!("command `{program}` exited with code {code}")
                                        } else {
                                            format!(
                                                "command `{program}` exited with code {code}: {}",
                                                excerpt(tail)
                                            )
                                        },
                                        detail,
                                    )
                                }
                            }
                        },
                    }
                })
            }
        }
    }
}
