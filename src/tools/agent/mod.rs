//! `agent`: the task's agent reasons. Its model is asked in turns (through the model gateway:
//! routing, budgets, usage rows, fallbacks) with the tools the agent may call; the calls it
//! asks for run (concurrently, within the agent's `max_concurrency`) and their results go
//! back, until it answers, runs out of turns or budget, or fails.
//!
//! Every step is journaled (`loop_state.rs`), committed through the run's coordinator before
//! the next one: the turn (the assistant message of that turn only) before any of its calls
//! starts; each call as `started` before it runs and with its result after; the next turn
//! only once every result of the turn is committed. A loop resumed after a crash is rebuilt
//! from the journal: a committed turn is never asked again, a finished call never runs
//! again, and a call left `started` runs again only when its tool is idempotent — otherwise
//! the model is told its effect is unknown.

mod approval;
mod loop_state;
pub(crate) mod offers;

use super::{Tool, ToolContext, ToolError, ToolOutput};
use crate::domain::event::payload::{AgentFinished, AskedCall, LoopRef, ToolCalled, ToolReturned};
use crate::domain::{AgentSpec, EventData};
use crate::models::{answer_body, Ask, CallError, Message, ToolCall, ToolResult};
use crate::store::{CallRecord, CallStatus, LoopRecord, LoopStatus, TurnRecord};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use loop_state::LoopState;
use offers::{Exec, Offer};
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

fn cut(text: &str, limit: usize) -> String {
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
fn event_value(v: &Value) -> Value {
    let text = v.to_string();
    if text.len() <= EVENT_TEXT {
        v.clone()
    } else {
        Value::String(cut(&text, EVENT_TEXT))
    }
}

fn violations(validator: &jsonschema::Validator, v: &Value) -> Vec<String> {
    validator
        .iter_errors(v)
        .map(|e| {
            let at = e.instance_path.to_string();
            format!("{}: {e}", if at.is_empty() { "/".into() } else { at })
        })
        .collect()
}

fn journal_lost() -> ToolError {
    ToolError::Io("the run stopped in this process before the agent's journal was committed".into())
}

impl Loop<'_> {
    async fn commit(
        &self,
        rows: crate::store::Batch,
        events: Vec<EventData>,
    ) -> Result<(), ToolError> {
        self.ctx
            .link
            .0
            .commit(rows, events)
            .await
            .map_err(|_| journal_lost())
    }

    fn offer(&self, name: &str) -> Option<&Offer> {
        self.offers.iter().find(|o| o.name == name)
    }

    /// The tool a call names, as events and the journal give it.
    fn tool_of(&self, call: &ToolCall) -> Option<String> {
        self.offer(&call.name).map(|o| o.tool.clone())
    }

    /// Why a call cannot run (unknown tool, arguments too long or failing its schema);
    /// `None` when it can.
    fn refusal(&self, call: &ToolCall) -> Option<String> {
        let size = call.input.to_string().len();
        if size > MAX_ARGUMENTS {
            return Some(format!(
                "the arguments of `{}` are {size} bytes; at most {MAX_ARGUMENTS} are accepted",
                call.name
            ));
        }
        let Some(offer) = self.offer(&call.name) else {
            let names: Vec<&str> = self.offers.iter().map(|o| o.name.as_str()).collect();
            return Some(format!(
                "there is no tool `{}`; the tools are: {}",
                call.name,
                crate::domain::names_or_none(&names)
            ));
        };
        if !call.input.is_object() {
            return Some(format!(
                "the arguments of `{}` must be a JSON object, got: {}",
                call.name,
                cut(&call.input.to_string(), 512)
            ));
        }
        let problems: Vec<String> = match &offer.exec {
            Exec::Local(t) => self
                .ctx
                .link
                .0
                .tools()
                .input_errors(t.name(), &call.input)
                .unwrap_or_default()
                .into_iter()
                .map(|(at, m)| format!("{}: {m}", if at.is_empty() { "/" } else { &at }))
                .collect(),
            Exec::Agent(_) | Exec::Mcp { .. } | Exec::Gone => {
                match jsonschema::validator_for(&offer.input_schema) {
                    Ok(v) => violations(&v, &call.input),
                    Err(_) => Vec::new(),
                }
            }
        };
        (!problems.is_empty()).then(|| {
            format!(
                "the arguments of `{}` do not satisfy its input schema:\n- {}",
                call.name,
                problems.join("\n- ")
            )
        })
    }

    /// A call's row at `status`.
    fn call_row(
        st: &LoopState,
        turn: u32,
        seq: u32,
        call: &ToolCall,
        tool: Option<String>,
    ) -> CallRecord {
        CallRecord {
            loop_id: st.rec.id.clone(),
            run_id: st.rec.run_id,
            turn,
            seq,
            call_id: call.id.clone(),
            name: call.name.clone(),
            tool,
            input: call.input.clone(),
            status: CallStatus::Started,
            result: None,
            is_error: false,
            idempotency_key: format!("{}-{turn}-{seq}", st.rec.id),
            wait_id: None,
            started_at: None,
            finished_at: None,
            duration_ms: None,
        }
    }

    fn returned(&self, c: &CallRecord) -> EventData {
        EventData::ToolReturned(ToolReturned {
            of: self.of.clone(),
            turn: c.turn,
            call_id: c.call_id.clone(),
            tool: c.tool.clone().unwrap_or_else(|| c.name.clone()),
            status: c.status.as_str().to_string(),
            duration_ms: c.duration_ms.unwrap_or(0),
            is_error: c.is_error,
            output: cut(c.result.as_deref().unwrap_or_default(), EVENT_TEXT),
        })
    }

    fn called(&self, c: &CallRecord, repeat: bool) -> EventData {
        EventData::ToolCalled(ToolCalled {
            of: self.of.clone(),
            turn: c.turn,
            call_id: c.call_id.clone(),
            tool: c.tool.clone().unwrap_or_else(|| c.name.clone()),
            input: event_value(&c.input),
            repeat,
        })
    }

    /// Runs one started call to its result (the caller commits it).
    async fn run_call(&self, st: &LoopState, mut row: CallRecord) -> Result<CallRecord, ToolError> {
        let started = Instant::now();
        let offer = self.offer(&row.name).cloned();
        let (content, is_error) = match offer.map(|o| o.exec) {
            None | Some(Exec::Gone) => (
                format!(
                    "the tool `{}` is no longer available in this runtime",
                    row.tool.as_deref().unwrap_or(&row.name)
                ),
                true,
            ),
            Some(Exec::Local(tool)) => self.run_local(tool, &row).await?,
            Some(Exec::Agent(id)) => self.run_agent(st, &id, &row).await?,
            Some(Exec::Mcp { server, tool }) => self.run_mcp(&server, &tool, &row).await,
        };
        row.duration_ms = Some(started.elapsed().as_millis() as i64);
        row.finished_at = Some(crate::domain::time::now_ms());
        row.status = if is_error {
            CallStatus::Failed
        } else {
            CallStatus::Succeeded
        };
        row.result = Some(content);
        row.is_error = is_error;
        Ok(row)
    }

    /// Runs a tool of the registry; `Err` only when the whole loop must stop (budget,
    /// cancel).
    async fn run_local(
        &self,
        tool: std::sync::Arc<dyn Tool>,
        row: &CallRecord,
    ) -> Result<(String, bool), ToolError> {
        let ctx = ToolContext {
            inputs: row.input.clone(),
            workspace: self.ctx.workspace.clone(),
            corr: self.ctx.corr.clone(),
            attempt: self.ctx.attempt,
            idempotency_key: row.idempotency_key.clone(),
            cancel: self.ctx.cancel.child_token(),
            env: self.ctx.env.clone(),
            models: self.ctx.models.as_tool(tool.name()),
            link: self.ctx.link.clone(),
        };
        let name = tool.name().to_string();
        let result = AssertUnwindSafe(tool.run(ctx)).catch_unwind().await;
        Ok(match result {
            Ok(Ok(out)) => (
                cut(&Value::Object(out.outputs).to_string(), MAX_RESULT),
                false,
            ),
            Ok(Err(ToolError::Failed {
                message, outputs, ..
            })) => {
                let mut v = json!({"error": message});
                if !outputs.is_empty() {
                    v["outputs"] = Value::Object(outputs);
                }
                (cut(&v.to_string(), MAX_RESULT), true)
            }
            Ok(Err(e @ (ToolError::Budget(_) | ToolError::Cancelled))) => return Err(e),
            Ok(Err(e)) => (format!("error: {e}"), true),
            Err(_) => (format!("error: the tool `{name}` panicked"), true),
        })
    }

    /// Calls a tool of an MCP server of the run (started now if it is not running).
    async fn run_mcp(&self, server: &str, tool: &str, row: &CallRecord) -> (String, bool) {
        let session = match self.ctx.link.0.mcp().session(server).await {
            Ok(s) => s,
            Err(e) => return (format!("error: {e}"), true),
        };
        let args = row.input.as_object().cloned().unwrap_or_default();
        let out = tokio::select! {
            o = session.call(tool, args) => o,
            () = self.ctx.cancel.cancelled() => return (String::from("error: cancelled"), true),
        };
        (cut(&out.text, MAX_RESULT), out.is_error)
    }

    /// Asks another agent, as a loop of its own under this call.
    async fn run_agent(
        &self,
        st: &LoopState,
        id: &str,
        row: &CallRecord,
    ) -> Result<(String, bool), ToolError> {
        if self.chain.iter().any(|a| a == id) {
            let mut chain = self.chain.clone();
            chain.push(id.to_string());
            return Ok((
                format!(
                    "error: agent `{id}` is already on the chain of agents asking ({}); it cannot be asked again",
                    chain.join(" → ")
                ),
                true,
            ));
        }
        if self.of.depth + 1 > MAX_DEPTH {
            return Ok((
                format!(
                    "error: sub-agents nest at most {MAX_DEPTH} deep; answer without asking `{id}`"
                ),
                true,
            ));
        }
        let link = &self.ctx.link.0;
        let Some(spec) = link.agents().iter().find(|a| a.id == id).cloned() else {
            return Ok((format!("error: agent `{id}` is not in this runtime"), true));
        };
        let prompt = row.input["prompt"].as_str().unwrap_or_default().to_string();
        let models = self.ctx.models.clone().for_agent(&spec);
        let ctx = ToolContext {
            models,
            ..self.ctx.clone()
        };
        let mut chain = self.chain.clone();
        chain.push(id.to_string());
        let child = Child {
            parent: st.rec.id.clone(),
            call: row.call_id.clone(),
            depth: self.of.depth + 1,
        };
        let outcome = Box::pin(run_loop(
            &ctx,
            spec,
            Request {
                prompt,
                narrow: None,
                output_schema: None,
                max_turns: None,
                max_tokens: self.max_tokens,
                chain,
                child: Some(child),
            },
        ))
        .await?;
        Ok(match outcome.stop {
            StopReason::Answer => (
                match outcome.answer {
                    Some(Value::String(s)) => s,
                    Some(v) => v.to_string(),
                    None => String::new(),
                },
                false,
            ),
            other => (
                format!(
                    "error: agent `{id}` stopped without an answer ({}){}",
                    other.as_str(),
                    outcome.error.map(|e| format!(": {e}")).unwrap_or_default()
                ),
                true,
            ),
        })
    }

    /// Settles the calls of the last turn that have no result: an idempotent call left
    /// `started` runs again, any other is reported uncertain; a call waiting for a person
    /// gets its decision (or the attempt stops until there is one).
    async fn settle(&self, st: &mut LoopState) -> Result<(), ToolError> {
        let pending: Vec<CallRecord> = st
            .pending()
            .filter(|c| c.status == CallStatus::Started)
            .cloned()
            .collect();
        let mut repeat = Vec::new();
        let mut rows = crate::store::Batch::default();
        let mut events = Vec::new();
        for mut c in pending {
            let idempotent = self.offer(&c.name).is_some_and(|o| o.idempotent);
            if idempotent {
                repeat.push(c);
                continue;
            }
            c.status = CallStatus::Uncertain;
            c.is_error = true;
            c.finished_at = Some(crate::domain::time::now_ms());
            c.result = Some(format!(
                "error: this call was interrupted before its result was recorded, and `{}` is not idempotent, so it was not run again. Its effect is unknown: check before calling it again.",
                c.tool.as_deref().unwrap_or(&c.name)
            ));
            events.push(self.returned(&c));
            rows.tool_calls.push(c.clone());
            st.record(c);
        }
        if !rows.tool_calls.is_empty() {
            self.commit(rows, events).await?;
        }
        if !repeat.is_empty() {
            let mut rows = crate::store::Batch::default();
            let events = repeat.iter().map(|c| self.called(c, true)).collect();
            rows.tool_calls = repeat.clone();
            self.commit(rows, events).await?;
            self.run_calls(st, repeat).await?;
        }
        // Calls waiting for a person, one decision at a time.
        while self.settle_waiting(st).await? {}
        Ok(())
    }

    /// Runs started calls concurrently (at most the agent's `max_concurrency` at once),
    /// committing each result as it comes.
    async fn run_calls(&self, st: &mut LoopState, calls: Vec<CallRecord>) -> Result<(), ToolError> {
        let limit = self.spec.max_concurrency.max(1) as usize;
        let snapshot = &*st;
        let results: Vec<Result<CallRecord, ToolError>> = futures::stream::iter(calls)
            .map(|c| async move {
                let (done, stop) = match self.run_call(snapshot, c.clone()).await {
                    Ok(done) => (done, None),
                    // The call would pass the run's budget: it failed, and the loop stops.
                    Err(ToolError::Budget(why)) => {
                        let mut row = c;
                        row.status = CallStatus::Failed;
                        row.is_error = true;
                        row.result = Some(format!("error: {why}"));
                        row.finished_at = Some(crate::domain::time::now_ms());
                        (row, Some(ToolError::Budget(why)))
                    }
                    Err(e) => return Err(e),
                };
                let mut rows = crate::store::Batch::default();
                rows.tool_calls.push(done.clone());
                self.commit(rows, vec![self.returned(&done)]).await?;
                stop.map_or(Ok(done), Err)
            })
            .buffer_unordered(limit)
            .collect()
            .await;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(done) => st.record(done),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Commits the end of the loop with `agent.finished`.
    async fn finish(
        &self,
        st: &mut LoopState,
        stop: StopReason,
        answer: Option<Value>,
        error: Option<String>,
    ) -> Result<Outcome, ToolError> {
        st.rec.status = LoopStatus::Finished;
        st.rec.stop_reason = Some(stop.as_str().to_string());
        st.rec.answer = answer.clone();
        st.rec.error = error.clone();
        st.rec.finished_at = Some(crate::domain::time::now_ms());
        let mut rows = crate::store::Batch::default();
        rows.agent_loops.push(st.rec.clone());
        let event = EventData::AgentFinished(AgentFinished {
            of: self.of.clone(),
            stop_reason: stop.as_str().to_string(),
            turns: st.turns.len() as u32,
            tool_calls: st.calls.len() as u32,
            error: error.clone(),
        });
        self.commit(rows, vec![event]).await?;
        Ok(st.outcome(stop, answer, error))
    }

    /// A call that would pass the run's budget (a model tool the loop called) ends the loop
    /// as `budget`; other errors pass through.
    async fn stop_on_budget(
        &self,
        st: &mut LoopState,
        r: Result<(), ToolError>,
    ) -> Result<(), ToolError> {
        match r {
            Err(ToolError::Budget(why)) => {
                self.finish(st, StopReason::Budget, None, Some(why.clone()))
                    .await?;
                Err(ToolError::Budget(why))
            }
            other => other,
        }
    }

    /// Asks, journals and acts until the loop ends.
    async fn drive(&self, st: &mut LoopState) -> Result<Outcome, ToolError> {
        let specs: Vec<_> = self.offers.iter().map(Offer::spec).collect();
        loop {
            let settled = self.settle(st).await;
            self.stop_on_budget(st, settled).await?;
            let turn = st.turns.len() as u32 + 1;
            if turn > st.rec.max_turns {
                let why = format!(
                    "the agent took its {} turns without a final answer",
                    st.rec.max_turns
                );
                return self.finish(st, StopReason::MaxTurns, None, Some(why)).await;
            }
            let ask = Ask {
                system: st.rec.system.clone(),
                messages: st.messages(),
                max_tokens: self.max_tokens,
                temperature: None,
                requires_reasoning: false,
                tools: specs.clone(),
                model: None,
            };
            let answer = match self.ctx.models.complete(&ask).await {
                Ok(a) => a,
                Err(CallError::Budget(b)) => {
                    let why = b.to_string();
                    self.finish(st, StopReason::Budget, None, Some(why.clone()))
                        .await?;
                    return Err(ToolError::Budget(why));
                }
                Err(e) => {
                    let why = e.to_string();
                    return self.finish(st, StopReason::Error, None, Some(why)).await;
                }
            };
            let mut record = TurnRecord {
                loop_id: st.rec.id.clone(),
                run_id: st.rec.run_id,
                turn,
                model: answer.model.clone(),
                text: answer.text.clone(),
                tool_calls: answer.tool_calls.clone(),
                feedback: None,
                input_tokens: answer.input_tokens,
                output_tokens: answer.output_tokens,
                cache_read_tokens: answer.cache_read_tokens,
                cache_write_tokens: answer.cache_write_tokens,
                cost_micro_usd: answer.cost_micro_usd,
                at: crate::domain::time::now_ms(),
            };
            let mut rows = crate::store::Batch::default();
            let mut events = Vec::new();
            let turn_event = |asked: Vec<AskedCall>| {
                EventData::AgentTurn(crate::domain::event::payload::AgentTurn {
                    of: self.of.clone(),
                    turn,
                    model: answer.model.clone(),
                    input_tokens: answer.input_tokens,
                    output_tokens: answer.output_tokens,
                    cached_tokens: answer.cache_read_tokens,
                    cache_write_tokens: answer.cache_write_tokens,
                    cost: answer.cost_micro_usd as f64 / 1e6,
                    tool_calls: asked,
                })
            };
            if answer.tool_calls.is_empty() {
                // A final answer: kept when it satisfies the output schema; otherwise the
                // model is told why, and that counts as a turn.
                let verdict = match &self.output_schema {
                    None => Ok(Value::String(answer.text.clone())),
                    Some(v) => match serde_json::from_str::<Value>(answer_body(&answer.text)) {
                        Err(e) => Err(format!("Your final answer is not JSON ({e}). Reply with only one JSON value that satisfies the required JSON Schema.")),
                        Ok(json) => {
                            let errors = violations(v, &json);
                            if errors.is_empty() {
                                Ok(json)
                            } else {
                                Err(format!("Your final answer does not satisfy the required JSON Schema:\n- {}\nReply with only the corrected JSON.", errors.join("\n- ")))
                            }
                        }
                    },
                };
                record.feedback = verdict.as_ref().err().cloned();
                rows.agent_turns.push(record.clone());
                events.push(turn_event(Vec::new()));
                match verdict {
                    Ok(value) => {
                        // The turn and the loop's end commit together.
                        st.turns.push(record);
                        st.rec.status = LoopStatus::Finished;
                        st.rec.stop_reason = Some(StopReason::Answer.as_str().to_string());
                        st.rec.answer = Some(value.clone());
                        st.rec.finished_at = Some(crate::domain::time::now_ms());
                        rows.agent_loops.push(st.rec.clone());
                        events.push(EventData::AgentFinished(AgentFinished {
                            of: self.of.clone(),
                            stop_reason: StopReason::Answer.as_str().to_string(),
                            turns: st.turns.len() as u32,
                            tool_calls: st.calls.len() as u32,
                            error: None,
                        }));
                        self.commit(rows, events).await?;
                        return Ok(st.outcome(StopReason::Answer, Some(value), None));
                    }
                    Err(_) => {
                        self.commit(rows, events).await?;
                        st.turns.push(record);
                        continue;
                    }
                }
            }
            // Calls: the turn and every call's first row commit together, before any runs.
            let mut runnable = Vec::new();
            let mut refused = Vec::new();
            let mut waiting = Vec::new();
            let mut asked = Vec::new();
            for (seq, call) in answer.tool_calls.iter().enumerate() {
                let tool = self.tool_of(call);
                asked.push(AskedCall {
                    call_id: call.id.clone(),
                    tool: tool.clone().unwrap_or_else(|| call.name.clone()),
                });
                let mut row = Self::call_row(st, turn, seq as u32, call, tool);
                let refusal = if seq >= MAX_CALLS_PER_TURN {
                    Some(format!(
                        "at most {MAX_CALLS_PER_TURN} calls of one turn run; call the rest in the next turn"
                    ))
                } else {
                    self.refusal(call)
                };
                match refusal {
                    Some(why) => {
                        row.status = CallStatus::Failed;
                        row.is_error = true;
                        row.result = Some(format!("error: {why}"));
                        row.finished_at = Some(record.at);
                        row.duration_ms = Some(0);
                        refused.push(row);
                    }
                    None if row.tool.as_deref().is_some_and(|t| self.needs_approval(t)) => {
                        row.status = CallStatus::Waiting;
                        row.wait_id = Some(crate::domain::WaitId::new());
                        waiting.push(row);
                    }
                    None => {
                        row.started_at = Some(record.at);
                        runnable.push(row);
                    }
                }
            }
            rows.agent_turns.push(record.clone());
            events.push(turn_event(asked));
            for r in &runnable {
                events.push(self.called(r, false));
            }
            for r in &refused {
                events.push(self.returned(r));
            }
            for r in &waiting {
                events.push(self.approval_requested(r));
            }
            rows.tool_calls.extend(runnable.iter().cloned());
            rows.tool_calls.extend(refused.iter().cloned());
            rows.tool_calls.extend(waiting.iter().cloned());
            self.commit(rows, events).await?;
            st.turns.push(record);
            for r in refused
                .into_iter()
                .chain(waiting)
                .chain(runnable.iter().cloned())
            {
                st.record(r);
            }
            let ran = self.run_calls(st, runnable).await;
            self.stop_on_budget(st, ran).await?;
        }
    }
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
        Some(rec) if rec.status == LoopStatus::Running => {
            let journal = link
                .store()
                .loop_journal(&rec.id)
                .await
                .map_err(|e| ToolError::Io(e.to_string()))?;
            let offers = offers::from_record(&rec.tools, link.tools(), link.agents());
            (LoopState::resumed(rec, journal), offers)
        }
        Some(rec) if req.child.is_some() => {
            // A sub-agent's loop that finished: its answer stands.
            let journal = link
                .store()
                .loop_journal(&rec.id)
                .await
                .map_err(|e| ToolError::Io(e.to_string()))?;
            let st = LoopState::resumed(rec, journal);
            let stop = match st.rec.stop_reason.as_deref() {
                Some("answer") => StopReason::Answer,
                Some("max_turns") => StopReason::MaxTurns,
                Some("budget") => StopReason::Budget,
                _ => StopReason::Error,
            };
            let (answer, error) = (st.rec.answer.clone(), st.rec.error.clone());
            return Ok(st.outcome(stop, answer, error));
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
