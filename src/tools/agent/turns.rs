//! A loop's turns: ask the model, journal the turn with its calls' first rows, run the
//! calls, repeat; and how a loop ends (an answer, its turns or the budget used up, an error).

use super::offers::Offer;
use super::*;

impl Loop<'_> {
    pub(super) async fn commit(
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

    /// Marks the loop finished as `stop`; returns its row and `agent.finished`, to commit.
    fn end(
        &self,
        st: &mut LoopState,
        stop: StopReason,
        answer: Option<Value>,
        error: Option<String>,
    ) -> (LoopRecord, EventData) {
        st.rec.status = LoopStatus::Finished;
        st.rec.stop_reason = Some(stop.as_str().to_string());
        st.rec.answer = answer;
        st.rec.error = error.clone();
        st.rec.finished_at = Some(crate::domain::time::now_ms());
        let event = EventData::AgentFinished(AgentFinished {
            of: self.of.clone(),
            stop_reason: stop.as_str().to_string(),
            turns: st.turns.len() as u32,
            tool_calls: st.calls.len() as u32,
            error,
        });
        (st.rec.clone(), event)
    }

    /// Commits the end of the loop with `agent.finished`.
    pub(super) async fn finish(
        &self,
        st: &mut LoopState,
        stop: StopReason,
        answer: Option<Value>,
        error: Option<String>,
    ) -> Result<Outcome, ToolError> {
        let (rec, event) = self.end(st, stop, answer, error);
        let mut rows = crate::store::Batch::default();
        rows.agent_loops.push(rec);
        self.commit(rows, vec![event]).await?;
        Ok(st.outcome())
    }

    /// A call that would pass the run's budget (a model tool the loop called) ends the loop
    /// as `budget`; other errors pass through.
    pub(super) async fn stop_on_budget(
        &self,
        st: &mut LoopState,
        r: Result<(), ToolError>,
    ) -> Result<(), ToolError> {
        match r {
            Err(ToolError::Budget(why)) => Err(self.out_of_budget(st, why).await),
            other => other,
        }
    }

    /// Ends the loop as `budget`; the error that stops the run.
    async fn out_of_budget(&self, st: &mut LoopState, why: String) -> ToolError {
        match self
            .finish(st, StopReason::Budget, None, Some(why.clone()))
            .await
        {
            Ok(_) => ToolError::Budget(why),
            Err(e) => e,
        }
    }

    /// Asks, journals and acts until the loop ends.
    pub(super) async fn drive(&self, st: &mut LoopState) -> Result<Outcome, ToolError> {
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
                    return Err(self.out_of_budget(st, b.to_string()).await)
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
                    Some(v) => crate::tools::llm::check(v, &answer.text).map_err(|errors| {
                        format!("Your final answer does not satisfy the required JSON Schema:\n- {}\nReply with only one JSON value that satisfies it.", errors.join("\n- "))
                    }),
                };
                record.feedback = verdict.as_ref().err().cloned();
                rows.agent_turns.push(record.clone());
                events.push(turn_event(Vec::new()));
                match verdict {
                    Ok(value) => {
                        // The turn and the loop's end commit together.
                        st.turns.push(record);
                        let (rec, finished) = self.end(st, StopReason::Answer, Some(value), None);
                        rows.agent_loops.push(rec);
                        events.push(finished);
                        self.commit(rows, events).await?;
                        return Ok(st.outcome());
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
                        row.duration_ms = Some(0);
                        refused.push(super::calls::ended(
                            row,
                            CallStatus::Failed,
                            format!("error: {why}"),
                        ));
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
