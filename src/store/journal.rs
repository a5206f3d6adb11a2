//! The journal of agents that reason: loops, their model turns and their tool calls. The
//! persistence actor writes them (in the batches of `batch/`); these are the reads: what a
//! resumed loop is rebuilt from, and a task's transcript.

use super::{q, with_pool, Store, StoreError};
use crate::domain::RunId;
use crate::domain::ToolCall;
use serde::{Serialize, Serializer};
use serde_json::Value;
use sqlx::Row;

/// Where a loop stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoopStatus {
    /// Asking and calling (or stopped by a crash, to be resumed).
    Running,
    /// Ended with a stop reason.
    Finished,
}

/// Where a tool call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    /// Committed before it runs; still so after a crash mid-call.
    Started,
    /// Waiting for a person's approval.
    Waiting,
    /// It ran and gave a result.
    Succeeded,
    /// It ran and failed, or could not run (unknown tool, bad arguments).
    Failed,
    /// It was interrupted by a crash and its tool is not idempotent: its effect is unknown.
    Uncertain,
    /// A person declined it.
    Declined,
}

impl LoopStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "running" => Ok(Self::Running),
            "finished" => Ok(Self::Finished),
            other => Err(StoreError::Corrupt {
                what: "loop status",
                why: other.to_string(),
            }),
        }
    }
}

impl CallStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Uncertain => "uncertain",
            Self::Declined => "declined",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "started" => Self::Started,
            "waiting" => Self::Waiting,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "uncertain" => Self::Uncertain,
            "declined" => Self::Declined,
            other => {
                return Err(StoreError::Corrupt {
                    what: "tool call status",
                    why: other.to_string(),
                })
            }
        })
    }

    /// Whether the call has its result (nothing of it runs again).
    pub fn is_done(self) -> bool {
        !matches!(self, Self::Started | Self::Waiting)
    }
}

fn usd<S: Serializer>(micro: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(*micro as f64 / 1e6)
}

/// One reasoning loop: a task's, or a sub-agent's under the call that asked it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopRecord {
    /// Id, `loop-…`.
    pub id: String,
    /// The run.
    #[serde(skip)]
    pub run_id: RunId,
    /// The task it runs for.
    #[serde(skip)]
    pub task_id: String,
    /// The task attempt that started it.
    pub attempt: i64,
    /// The loop whose `agent:ID` call started it (sub-agents).
    pub parent_loop: Option<String>,
    /// That call's id.
    pub parent_call: Option<String>,
    /// 0 for a task's loop, 1 for its sub-agents, …
    pub depth: u32,
    /// The agent that reasons.
    pub agent: String,
    /// The system prompt.
    pub system: Option<String>,
    /// The first user message.
    pub prompt: String,
    /// The tools the loop offered its model: name (as the model calls it), tool, description,
    /// input schema and whether a repeat is safe.
    pub tools: Value,
    /// JSON Schema of the final answer.
    pub output_schema: Option<Value>,
    /// Turns it may take.
    pub max_turns: u32,
    /// Where it stands.
    pub status: LoopStatus,
    /// `answer`, `max_turns`, `budget` or `error`, once finished.
    pub stop_reason: Option<String>,
    /// The final answer (text, or JSON with an output schema).
    pub answer: Option<Value>,
    /// What stopped it, when it stopped on an error.
    pub error: Option<String>,
    /// When it began (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub created_at: i64,
    /// When it finished (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::opt_ms")]
    pub finished_at: Option<i64>,
}

/// One model turn: the assistant message of that turn, what it cost, and (when the turn
/// ended without calls but its answer was refused) what the model was told.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnRecord {
    /// The loop.
    #[serde(skip)]
    pub loop_id: String,
    /// The run.
    #[serde(skip)]
    pub run_id: RunId,
    /// 1, 2, 3, …
    pub turn: u32,
    /// The model that answered.
    pub model: String,
    /// Its text.
    pub text: String,
    /// The calls it asked for, in its order.
    #[serde(skip)]
    pub tool_calls: Vec<ToolCall>,
    /// What the model was told back when its final answer was refused.
    pub feedback: Option<String>,
    /// Input tokens (all of them, cached ones included).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
    /// Cost, in USD.
    #[serde(rename = "cost", serialize_with = "usd")]
    pub cost_micro_usd: i64,
    /// When it was committed (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub at: i64,
}

/// One tool call a model asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// The loop.
    #[serde(skip)]
    pub loop_id: String,
    /// The run.
    #[serde(skip)]
    pub run_id: RunId,
    /// The turn that asked for it.
    #[serde(skip)]
    pub turn: u32,
    /// Its place among the turn's calls, from 0.
    #[serde(skip)]
    pub seq: u32,
    /// The provider's id of the call.
    pub call_id: String,
    /// The name the model called.
    pub name: String,
    /// The tool it maps to (`None`: the model named no tool it was offered).
    pub tool: Option<String>,
    /// The input the model gave.
    pub input: Value,
    /// Where it stands.
    pub status: CallStatus,
    /// What the model was given back.
    pub result: Option<String>,
    /// Whether the result is an error.
    pub is_error: bool,
    /// The same on every run of this call.
    pub idempotency_key: String,
    /// The wait for a person's decision on it (calls the agent's `require_approval` covers).
    pub wait_id: Option<crate::domain::WaitId>,
    /// When it started (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::opt_ms")]
    pub started_at: Option<i64>,
    /// When it finished (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::opt_ms")]
    pub finished_at: Option<i64>,
    /// How long it ran.
    pub duration_ms: Option<i64>,
}

/// A turn of a transcript with its calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptTurn {
    /// The turn.
    #[serde(flatten)]
    pub turn: TurnRecord,
    /// Its calls, in the model's order.
    pub tool_calls: Vec<CallRecord>,
}

/// A loop of a transcript with its turns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptLoop {
    /// The loop.
    #[serde(flatten)]
    pub record: LoopRecord,
    /// Its turns, in order.
    pub turns: Vec<TranscriptTurn>,
}

/// What the agents of a task said and did: every loop (the task's, its retries', its
/// sub-agents'), oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    /// The run.
    pub run_id: RunId,
    /// The task.
    pub task_id: String,
    /// Its loops.
    pub loops: Vec<TranscriptLoop>,
}

const LOOP_COLUMNS: &str = "id, run_id, task_id, attempt, parent_loop, parent_call, depth, agent, \
    system, prompt, tools, output_schema, max_turns, status, stop_reason, answer, error, \
    created_at, finished_at";
const TURN_COLUMNS: &str = "loop_id, turn, run_id, model, text, tool_calls, feedback, \
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_micro_usd, at";
const CALL_COLUMNS: &str = "loop_id, turn, seq, run_id, call_id, name, tool, input, status, \
    result, is_error, idempotency_key, wait_id, started_at, finished_at, duration_ms";

fn json(text: &str, what: &'static str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what,
        why: e.to_string(),
    })
}

fn run_id(text: &str) -> Result<RunId, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt {
        what: "journal run id",
        why: text.to_string(),
    })
}

macro_rules! loop_from_row {
    ($r:expr) => {{
        let r = $r;
        let e = |x: sqlx::Error| q("read agent loop")(x);
        let schema: Option<String> = r.try_get("output_schema").map_err(e)?;
        let answer: Option<String> = r.try_get("answer").map_err(e)?;
        let tools: String = r.try_get("tools").map_err(e)?;
        let status: String = r.try_get("status").map_err(e)?;
        let run: String = r.try_get("run_id").map_err(e)?;
        LoopRecord {
            id: r.try_get("id").map_err(e)?,
            run_id: run_id(&run)?,
            task_id: r.try_get("task_id").map_err(e)?,
            attempt: r.try_get("attempt").map_err(e)?,
            parent_loop: r.try_get("parent_loop").map_err(e)?,
            parent_call: r.try_get("parent_call").map_err(e)?,
            depth: r.try_get::<i64, _>("depth").map_err(e)? as u32,
            agent: r.try_get("agent").map_err(e)?,
            system: r.try_get("system").map_err(e)?,
            prompt: r.try_get("prompt").map_err(e)?,
            tools: json(&tools, "loop tools")?,
            output_schema: schema.map(|s| json(&s, "loop output schema")).transpose()?,
            max_turns: r.try_get::<i64, _>("max_turns").map_err(e)? as u32,
            status: LoopStatus::parse(&status)?,
            stop_reason: r.try_get("stop_reason").map_err(e)?,
            answer: answer.map(|s| json(&s, "loop answer")).transpose()?,
            error: r.try_get("error").map_err(e)?,
            created_at: r.try_get("created_at").map_err(e)?,
            finished_at: r.try_get("finished_at").map_err(e)?,
        }
    }};
}

macro_rules! turn_from_row {
    ($r:expr) => {{
        let r = $r;
        let e = |x: sqlx::Error| q("read agent turn")(x);
        let calls: String = r.try_get("tool_calls").map_err(e)?;
        let run: String = r.try_get("run_id").map_err(e)?;
        let n = |c: &str| -> Result<u64, StoreError> {
            Ok(r.try_get::<i64, _>(c).map_err(e)?.max(0) as u64)
        };
        TurnRecord {
            loop_id: r.try_get("loop_id").map_err(e)?,
            run_id: run_id(&run)?,
            turn: r.try_get::<i64, _>("turn").map_err(e)? as u32,
            model: r.try_get("model").map_err(e)?,
            text: r.try_get("text").map_err(e)?,
            tool_calls: serde_json::from_str(&calls).map_err(|x| StoreError::Corrupt {
                what: "turn tool calls",
                why: x.to_string(),
            })?,
            feedback: r.try_get("feedback").map_err(e)?,
            input_tokens: n("input_tokens")?,
            output_tokens: n("output_tokens")?,
            cache_read_tokens: n("cache_read_tokens")?,
            cache_write_tokens: n("cache_write_tokens")?,
            cost_micro_usd: r.try_get("cost_micro_usd").map_err(e)?,
            at: r.try_get("at").map_err(e)?,
        }
    }};
}

macro_rules! call_from_row {
    ($r:expr) => {{
        let r = $r;
        let e = |x: sqlx::Error| q("read tool call")(x);
        let input: String = r.try_get("input").map_err(e)?;
        let status: String = r.try_get("status").map_err(e)?;
        let run: String = r.try_get("run_id").map_err(e)?;
        CallRecord {
            loop_id: r.try_get("loop_id").map_err(e)?,
            run_id: run_id(&run)?,
            turn: r.try_get::<i64, _>("turn").map_err(e)? as u32,
            seq: r.try_get::<i64, _>("seq").map_err(e)? as u32,
            call_id: r.try_get("call_id").map_err(e)?,
            name: r.try_get("name").map_err(e)?,
            tool: r.try_get("tool").map_err(e)?,
            input: json(&input, "tool call input")?,
            status: CallStatus::parse(&status)?,
            result: r.try_get("result").map_err(e)?,
            is_error: r.try_get("is_error").map_err(e)?,
            idempotency_key: r.try_get("idempotency_key").map_err(e)?,
            wait_id: r
                .try_get::<Option<String>, _>("wait_id")
                .map_err(e)?
                .map(crate::domain::WaitId::from),
            started_at: r.try_get("started_at").map_err(e)?,
            finished_at: r.try_get("finished_at").map_err(e)?,
            duration_ms: r.try_get("duration_ms").map_err(e)?,
        }
    }};
}

/// A loop's turns and calls, in order.
pub(crate) type Journal = (Vec<TurnRecord>, Vec<CallRecord>);

impl Store {
    /// The loops of a task (its own, its retries', its sub-agents'), oldest first.
    ///
    /// # Errors
    /// Query failures.
    pub async fn agent_loops(&self, run: RunId, task: &str) -> Result<Vec<LoopRecord>, StoreError> {
        let sql = format!(
            "SELECT {LOOP_COLUMNS} FROM agent_loops WHERE run_id = $1 AND task_id = $2 \
             ORDER BY created_at, id"
        );
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(&sql)
                .bind(run.to_string())
                .bind(task)
                .fetch_all(p)
                .await
                .map_err(q("list agent loops"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(loop_from_row!(r));
            }
            Ok(out)
        })
    }

    /// The turns and calls of one loop, in order.
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn loop_journal(&self, loop_id: &str) -> Result<Journal, StoreError> {
        let turns_sql =
            format!("SELECT {TURN_COLUMNS} FROM agent_turns WHERE loop_id = $1 ORDER BY turn");
        let calls_sql =
            format!("SELECT {CALL_COLUMNS} FROM tool_calls WHERE loop_id = $1 ORDER BY turn, seq");
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(&turns_sql)
                .bind(loop_id)
                .fetch_all(p)
                .await
                .map_err(q("read agent turns"))?;
            let mut turns = Vec::with_capacity(rows.len());
            for r in rows {
                turns.push(turn_from_row!(r));
            }
            let rows = sqlx::query(&calls_sql)
                .bind(loop_id)
                .fetch_all(p)
                .await
                .map_err(q("read tool calls"))?;
            let mut calls = Vec::with_capacity(rows.len());
            for r in rows {
                calls.push(call_from_row!(r));
            }
            Ok((turns, calls))
        })
    }

    /// What the agents of a task said and did, loop by loop, turn by turn.
    ///
    /// # Errors
    /// Query failures.
    pub async fn transcript(&self, run: RunId, task: &str) -> Result<Transcript, StoreError> {
        let mut loops = Vec::new();
        for record in self.agent_loops(run, task).await? {
            let (turns, calls) = self.loop_journal(&record.id).await?;
            let mut calls = calls.into_iter().peekable();
            let turns = turns
                .into_iter()
                .map(|turn| {
                    let mut of_turn = Vec::new();
                    while let Some(c) = calls.next_if(|c| c.turn <= turn.turn) {
                        if c.turn == turn.turn {
                            of_turn.push(c);
                        }
                    }
                    TranscriptTurn {
                        turn,
                        tool_calls: of_turn,
                    }
                })
                .collect();
            loops.push(TranscriptLoop { record, turns });
        }
        Ok(Transcript {
            run_id: run,
            task_id: task.to_string(),
            loops,
        })
    }
}
