//! `agent`: the task's agent reasons. Its model is asked in turns (through the model gateway:
//! routing, budgets, usage rows, fallbacks) with the tools the agent may call; the calls it
//! asks for run (concurrently, within the agent's `max_concurrency`) and their results go
//! back, until it answers, runs out of turns or budget, or fails.
//!
//! `turns.rs` drives the loop, `calls.rs` runs a turn's calls, `approval.rs` holds the calls
//! that wait for a person. Every step is journaled (`loop_state.rs`), committed through the
//! run's coordinator before the next one: the turn (the assistant message of that turn only) before any of its calls
//! starts; each call as `started` before it runs and with its result after; the next turn
//! only once every result of the turn is committed. A loop resumed after a crash is rebuilt
//! from the journal: a committed turn is never asked again, a finished call never runs
//! again, and a call left `started` runs again only when its tool is idempotent — otherwise
//! the model is told its effect is unknown.

mod approval;
mod calls;
mod loop_state;
pub(crate) mod offers;
mod turns;

use super::{Tool, ToolContext, ToolError, ToolOutput};
use crate::domain::event::payload::{AgentFinished, AskedCall, LoopRef, ToolCalled, ToolReturned};
use crate::domain::{AgentSpec, EventData};
use crate::models::{Ask, CallError, Message, ToolCall, ToolResult};
use crate::store::{CallRecord, CallStatus, LoopRecord, LoopStatus, TurnRecord};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use loop_state::LoopState;
use offers::Offer;
use serde_json::{json, Map, Value};
use std::panic::AssertUnwindSafe;
use std::time::Instant;

/// How deep sub-agents may nest under a task's loop.
pub(crate) const MAX_DEPTH: u32 = 3;
/// Longest tool result handed back to the model; the rest is cut with a note.
const MAX_RESULT: usize = 64 * 1024;
/// Longest text an event carries of a call's input or output.
const EVENT_TEXT: usize = 4 * 1024;
/// Output tokens a turn may use when the task does not say.
const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Calls of one turn that run; the model is told the rest were refused.
const MAX_CALLS_PER_TURN: usize = 64;
/// Longest arguments (as JSON text) a call may have.
const MAX_ARGUMENTS: usize = 256 * 1024;

/// The `agent` tool.
pub struct AgentTool;

/// Why a loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    Answer,
    MaxTurns,
    Budget,
    Error,
}

impl StopReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Answer => "answer",
            Self::MaxTurns => "max_turns",
            Self::Budget => "budget",
            Self::Error => "error",
        }
    }

    /// A stored stop reason (an unknown or missing one reads as `error`).
    fn parse(s: Option<&str>) -> Self {
        match s {
            Some("answer") => Self::Answer,
            Some("max_turns") => Self::MaxTurns,
            Some("budget") => Self::Budget,
            _ => Self::Error,
        }
    }
}

/// How a loop ended.
struct Outcome {
    stop: StopReason,
    answer: Option<Value>,
    error: Option<String>,
    turns: u32,
    tool_calls: u32,
    input_tokens: u64,
    output_tokens: u64,
    cost_micro_usd: i64,
    loop_id: String,
}

/// What one loop runs with.
struct Loop<'a> {
    ctx: &'a ToolContext,
    spec: AgentSpec,
    offers: Vec<Offer>,
    output_schema: Option<jsonschema::Validator>,
    max_tokens: u32,
    /// Agent ids from the task's agent down to this one.
    chain: Vec<String>,
    of: LoopRef,
}

/// `text`, cut to `limit` bytes (on a character boundary) with a note of its whole size.
pub(crate) fn cut(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    format!(
        "{}… [cut: {} bytes in all]",
        offers::clip(text, limit),
        text.len()
    )
}

/// A value for an event: itself, or its JSON text cut to 4 KiB when longer.
pub(crate) fn event_value(v: &Value) -> Value {
    let text = v.to_string();
    if text.len() <= EVENT_TEXT {
        v.clone()
    } else {
        Value::String(cut(&text, EVENT_TEXT))
    }
}

fn journal_lost() -> ToolError {
    ToolError::Io("the run stopped in this process before the agent's journal was committed".into())
}

/// What a loop is asked to do.
struct Request {
    prompt: String,
    /// The task's `tools` (narrowing the agent's).
    narrow: Option<Vec<String>>,
    output_schema: Option<Value>,
    max_turns: Option<u32>,
    max_tokens: u32,
    chain: Vec<String>,
    child: Option<Child>,
}

/// Where a sub-agent's loop hangs: the loop and call that asked it, and its depth.
struct Child {
    parent: String,
    call: String,
    depth: u32,
}

/// Runs (or resumes) the loop of `spec` for `req`.
async fn run_loop(ctx: &ToolContext, spec: AgentSpec, req: Request) -> Result<Outcome, ToolError> {
    let link = &ctx.link.0;
    let run = ctx.corr.run;
    let task = ctx
        .corr
        .task
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let loops = link
        .store()
        .agent_loops(run, &task)
        .await
        .map_err(|e| ToolError::Io(e.to_string()))?;
    // A loop of this place that has not finished is resumed; a finished one (an earlier
    // attempt's answer, before a gate or a retry) is not.
    let existing = loops.into_iter().rev().find(|l| match &req.child {
        None => l.parent_loop.is_none(),
        Some(c) => {
            l.parent_loop.as_deref() == Some(&c.parent) && l.parent_call.as_deref() == Some(&c.call)
        }
    });
    let output_schema_value = match &existing {
        Some(l) => l.output_schema.clone(),
        None => req.output_schema.clone(),
    };
    let output_schema = output_schema_value
        .as_ref()
        .map(|s| {
            jsonschema::validator_for(s).map_err(|e| {
                ToolError::InvalidInput(format!("`output_schema` is not a valid JSON Schema: {e}"))
            })
        })
        .transpose()?;
    let depth = req.child.as_ref().map_or(0, |c| c.depth);
    let (mut st, offers) = match existing {
        // A running loop resumes; a sub-agent's finished loop stands (its answer is the
        // call's result).
        Some(rec) if rec.status == LoopStatus::Running || req.child.is_some() => {
            let journal = link
                .store()
                .loop_journal(&rec.id)
                .await
                .map_err(|e| ToolError::Io(e.to_string()))?;
            let st = LoopState::resumed(rec, journal);
            if st.rec.status == LoopStatus::Finished {
                return Ok(st.outcome());
            }
            let offers = offers::from_record(&st.rec.tools, link.tools(), link.agents());
            (st, offers)
        }
        _ => {
            let mut patterns = spec.tools.clone();
            if let Some(narrow) = &req.narrow {
                let wider = offers::wider(narrow, &spec.tools);
                if !wider.is_empty() {
                    return Err(ToolError::InvalidInput(format!(
                        "`tools` may only narrow agent `{}`'s tools; it does not allow: {}",
                        spec.id,
                        wider.join(", ")
                    )));
                }
                patterns = narrow.clone();
            }
            let offers = offers::resolve(&patterns, link.tools(), link.agents(), &link.mcp())
                .await
                .map_err(|e| ToolError::Unavailable(format!("agent `{}`: {e}", spec.id)))?;
            let mut system = spec.instructions.clone().unwrap_or_default();
            if let Some(s) = &output_schema_value {
                if !system.is_empty() {
                    system.push_str("\n\n");
                }
                system.push_str(&format!(
                    "When you give your final answer (a reply without tool calls), reply with only one JSON value that satisfies this JSON Schema, and nothing else:\n{s}"
                ));
            }
            let rec = LoopRecord {
                id: format!("loop-{}", uuid::Uuid::new_v4().simple()),
                run_id: run,
                task_id: task.clone(),
                attempt: i64::from(ctx.attempt),
                parent_loop: req.child.as_ref().map(|c| c.parent.clone()),
                parent_call: req.child.as_ref().map(|c| c.call.clone()),
                depth,
                agent: spec.id.clone(),
                system: (!system.is_empty()).then_some(system),
                prompt: req.prompt.clone(),
                tools: Value::Array(offers.iter().map(Offer::recorded).collect()),
                output_schema: output_schema_value.clone(),
                max_turns: req.max_turns.unwrap_or(spec.max_turns).max(1),
                status: LoopStatus::Running,
                stop_reason: None,
                answer: None,
                error: None,
                created_at: crate::domain::time::now_ms(),
                finished_at: None,
            };
            let mut rows = crate::store::Batch::default();
            rows.agent_loops.push(rec.clone());
            link.commit(rows, Vec::new())
                .await
                .map_err(|_| journal_lost())?;
            (LoopState::fresh(rec), offers)
        }
    };
    // A resumed loop runs as the agent that began it (its model too), when this runtime
    // still has it.
    let began = (st.rec.agent != spec.id)
        .then(|| link.agents().iter().find(|a| a.id == st.rec.agent).cloned())
        .flatten();
    let as_began;
    let (ctx, spec) = match began {
        Some(first) => {
            as_began = ToolContext {
                models: ctx.models.clone().for_agent(&first),
                ..ctx.clone()
            };
            (&as_began, first)
        }
        None => (ctx, spec),
    };
    let me = Loop {
        ctx,
        of: LoopRef {
            loop_id: st.rec.id.clone(),
            agent: spec.id.clone(),
            depth,
        },
        spec,
        offers,
        output_schema,
        max_tokens: req.max_tokens,
        chain: req.chain,
    };
    me.drive(&mut st).await
}

impl Tool for AgentTool {
    fn name(&self) -> &str {
        "agent"
    }

    fn description(&self) -> &str {
        "The task's agent reasons: its model calls the agent's tools in turns until it answers."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["prompt"],
            "properties": {
                "prompt": {"type": "string", "minLength": 1, "maxLength": 1000000, "description": "What to do; `${…}` references are resolved first."},
                "tools": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": true, "maxItems": 256, "description": "Narrows the agent's tools (never widens them)."},
                "output_schema": {"type": "object", "description": "JSON Schema of the final answer; `answer` is then that JSON value."},
                "max_turns": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Turns the loop may take (default: the agent's `max_turns`)."},
                "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1000000, "description": "Output tokens per turn."}
            },
            "additionalProperties": false
        })
    }

    fn check_inputs(&self, inputs: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(s) = inputs.get("output_schema") {
            if let Err(e) = jsonschema::validator_for(s) {
                out.push((
                    "/output_schema".into(),
                    format!("not a valid JSON Schema: {e}"),
                ));
            }
        }
        if let Some(tools) = inputs.get("tools").and_then(Value::as_array) {
            for (i, t) in tools.iter().enumerate() {
                if let Some(why) = t.as_str().and_then(crate::config::tool_pattern_error) {
                    out.push((format!("/tools/{i}"), why));
                }
            }
        }
        out
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let agent = ctx.models.caller().agent.clone().unwrap_or_default();
            let Some(spec) = ctx.link.0.agents().iter().find(|a| a.id == agent).cloned() else {
                return Err(ToolError::Unavailable(format!(
                    "the task runs on no agent of this runtime (`{agent}`)"
                )));
            };
            let prompt = super::llm::prompt_input(&ctx.inputs)?;
            let narrow = ctx.inputs.get("tools").and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            });
            let req = Request {
                prompt,
                narrow,
                output_schema: ctx.inputs.get("output_schema").cloned(),
                max_turns: ctx
                    .inputs
                    .get("max_turns")
                    .and_then(Value::as_u64)
                    .map(|n| n.min(1000) as u32),
                max_tokens: ctx
                    .inputs
                    .get("max_tokens")
                    .and_then(Value::as_u64)
                    .map_or(DEFAULT_MAX_TOKENS, |n| n.min(1_000_000) as u32),
                chain: vec![spec.id.clone()],
                child: None,
            };
            let o = run_loop(&ctx, spec, req).await?;
            let mut outputs = Map::new();
            outputs.insert("answer".into(), o.answer.clone().unwrap_or(Value::Null));
            outputs.insert("turns".into(), json!(o.turns));
            outputs.insert("tool_calls".into(), json!(o.tool_calls));
            outputs.insert("stop_reason".into(), json!(o.stop.as_str()));
            outputs.insert("loop_id".into(), json!(o.loop_id));
            outputs.insert("input_tokens".into(), json!(o.input_tokens));
            outputs.insert("output_tokens".into(), json!(o.output_tokens));
            outputs.insert("cost_usd".into(), json!(o.cost_micro_usd as f64 / 1e6));
            match o.stop {
                StopReason::Answer => Ok(ToolOutput {
                    outputs,
                    artifacts: Vec::new(),
                }),
                other => Err(ToolError::Failed {
                    message: format!(
                        "the agent stopped without an answer ({}): {}",
                        other.as_str(),
                        o.error.unwrap_or_default()
                    ),
                    outputs,
                    artifacts: Vec::new(),
                }),
            }
        })
    }
}

/// The results message of a turn's calls, in the calls' order.
fn results_message(calls: &[&CallRecord]) -> Message {
    Message::results(
        calls
            .iter()
            .map(|c| ToolResult {
                id: c.call_id.clone(),
                content: c.result.clone().unwrap_or_default(),
                is_error: c.is_error,
            })
            .collect(),
    )
}
