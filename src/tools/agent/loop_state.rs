//! A loop's journal in memory: its record, its turns and its calls, as committed. The
//! conversation the model is asked with is rebuilt from them every turn, so a resumed loop
//! asks exactly what it would have asked had it never stopped.

use super::{results_message, Outcome, StopReason};
use crate::models::{Message, Role};
use crate::store::{CallRecord, LoopRecord, TurnRecord};

pub(super) struct LoopState {
    pub rec: LoopRecord,
    pub turns: Vec<TurnRecord>,
    /// Every call, by (turn, seq).
    pub calls: Vec<CallRecord>,
}

impl LoopState {
    pub fn fresh(rec: LoopRecord) -> Self {
        Self {
            rec,
            turns: Vec::new(),
            calls: Vec::new(),
        }
    }

    pub fn resumed(rec: LoopRecord, (turns, calls): (Vec<TurnRecord>, Vec<CallRecord>)) -> Self {
        Self { rec, turns, calls }
    }

    /// Records a call's row (replacing the earlier row of the same call).
    pub fn record(&mut self, c: CallRecord) {
        match self
            .calls
            .binary_search_by_key(&(c.turn, c.seq), |x| (x.turn, x.seq))
        {
            Ok(i) => self.calls[i] = c,
            Err(i) => self.calls.insert(i, c),
        }
    }

    /// The calls of the last turn still without a result.
    pub fn pending(&self) -> impl Iterator<Item = &CallRecord> {
        let last = self.turns.last().map_or(0, |t| t.turn);
        self.calls
            .iter()
            .filter(move |c| c.turn == last && !c.status.is_done())
    }

    /// The conversation so far: the prompt, then each turn's assistant message followed by
    /// its calls' results (or the feedback it was given).
    pub fn messages(&self) -> Vec<Message> {
        let mut out = vec![Message::user(self.rec.prompt.clone())];
        for t in &self.turns {
            out.push(Message {
                role: Role::Assistant,
                content: t.text.clone(),
                tool_calls: t.tool_calls.clone(),
                tool_results: Vec::new(),
            });
            if !t.tool_calls.is_empty() {
                let of_turn: Vec<&CallRecord> =
                    self.calls.iter().filter(|c| c.turn == t.turn).collect();
                out.push(results_message(&of_turn));
            } else if let Some(f) = &t.feedback {
                out.push(Message::user(f.clone()));
            }
        }
        out
    }

    /// How the loop ended, as its (finished) record says.
    pub fn outcome(&self) -> Outcome {
        Outcome {
            stop: StopReason::parse(self.rec.stop_reason.as_deref()),
            answer: self.rec.answer.clone(),
            error: self.rec.error.clone(),
            turns: self.turns.len() as u32,
            tool_calls: self.calls.len() as u32,
            input_tokens: self.turns.iter().map(|t| t.input_tokens).sum(),
            output_tokens: self.turns.iter().map(|t| t.output_tokens).sum(),
            cost_micro_usd: self.turns.iter().map(|t| t.cost_micro_usd).sum(),
            loop_id: self.rec.id.clone(),
        }
    }
}
