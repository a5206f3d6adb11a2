//! The calls of a turn: whether the model's call can run (a tool it was offered, arguments
//! that fit), running it (a nofx tool, an MCP server's tool, another agent's loop), settling
//! the calls a crash or a person left open, and the rows and events of each.

use super::offers::{Exec, Offer};
use super::*;

/// `row` with its result: its status, what the model is given (an error unless it
/// succeeded), and when it ended.
pub(super) fn ended(mut row: CallRecord, status: CallStatus, result: String) -> CallRecord {
    row.is_error = status != CallStatus::Succeeded;
    row.status = status;
    row.result = Some(result);
    row.finished_at = Some(crate::domain::time::now_ms());
    row
}

impl Loop<'_> {
    pub(super) fn offer(&self, name: &str) -> Option<&Offer> {
        self.offers.iter().find(|o| o.name == name)
    }

    /// The tool a call names, as events and the journal give it.
    pub(super) fn tool_of(&self, call: &ToolCall) -> Option<String> {
        self.offer(&call.name).map(|o| o.tool.clone())
    }

    /// Why a call cannot run (unknown tool, arguments too long or failing its schema);
    /// `None` when it can.
    pub(super) fn refusal(&self, call: &ToolCall) -> Option<String> {
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
            Exec::Agent(_) | Exec::Mcp { .. } | Exec::Gone => offer
                .validator
                .as_ref()
                .map(|v| crate::tools::llm::violations(v, &call.input))
                .unwrap_or_default(),
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
    pub(super) fn call_row(
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

    pub(super) fn returned(&self, c: &CallRecord) -> EventData {
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

    pub(super) fn called(&self, c: &CallRecord, repeat: bool) -> EventData {
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
    pub(super) async fn run_call(
        &self,
        st: &LoopState,
        mut row: CallRecord,
    ) -> Result<CallRecord, ToolError> {
        let started = Instant::now();
        let exec = self.offer(&row.name).map(|o| o.exec.clone());
        let (content, is_error) = match exec {
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
        let status = if is_error {
            CallStatus::Failed
        } else {
            CallStatus::Succeeded
        };
        Ok(ended(row, status, content))
    }

    /// Runs a tool of the registry; `Err` only when the whole loop must stop (budget,
    /// cancel).
    pub(super) async fn run_local(
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
            Ok(Err(
                e @ (ToolError::Budget(_)
                | ToolError::Cancelled
                | ToolError::Waiting(_)
                | ToolError::NoDefault(_)),
            )) => return Err(e),
            Ok(Err(e)) => (format!("error: {e}"), true),
            Err(_) => (format!("error: the tool `{name}` panicked"), true),
        })
    }

    /// Calls a tool of an MCP server of the run (started now if it is not running).
    pub(super) async fn run_mcp(
        &self,
        server: &str,
        tool: &str,
        row: &CallRecord,
    ) -> (String, bool) {
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
    pub(super) async fn run_agent(
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
    pub(super) async fn settle(&self, st: &mut LoopState) -> Result<(), ToolError> {
        let pending: Vec<CallRecord> = st
            .pending()
            .filter(|c| c.status == CallStatus::Started)
            .cloned()
            .collect();
        let mut repeat = Vec::new();
        let mut rows = crate::store::Batch::default();
        let mut events = Vec::new();
        for c in pending {
            let idempotent = self.offer(&c.name).is_some_and(|o| o.idempotent);
            if idempotent {
                repeat.push(c);
                continue;
            }
            let why = format!(
                "error: this call was interrupted before its result was recorded, and `{}` is not idempotent, so it was not run again. Its effect is unknown: check before calling it again.",
                c.tool.as_deref().unwrap_or(&c.name)
            );
            let c = ended(c, CallStatus::Uncertain, why);
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
    pub(super) async fn run_calls(
        &self,
        st: &mut LoopState,
        calls: Vec<CallRecord>,
    ) -> Result<(), ToolError> {
        let limit = self.spec.max_concurrency.max(1) as usize;
        let snapshot = &*st;
        let results: Vec<Result<CallRecord, ToolError>> = futures::stream::iter(calls)
            .map(|c| async move {
                let (done, stop) = match self.run_call(snapshot, c.clone()).await {
                    Ok(done) => (done, None),
                    // The call would pass the run's budget: it failed, and the loop stops.
                    Err(ToolError::Budget(why)) => (
                        ended(c, CallStatus::Failed, format!("error: {why}")),
                        Some(ToolError::Budget(why)),
                    ),
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
}
