//! What each event type's `data` holds, as types. An event is built from one of these (so its
//! type and data always agree) and read back with [`super::Event::payload`]; each serialises
//! to the JSON the event log has always carried (field order included: it is the order of
//! the keys in the log).

use crate::domain::approval::ApprovalDecision;
use crate::domain::failure::FailureKind;
use crate::domain::ids::{CheckpointId, RunId, WaitId};
use crate::domain::plan::OnTimeout;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `run.created`: the plan's name, its number of tasks and the run's inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCreated {
    /// The plan's name.
    pub name: String,
    /// How many tasks the plan has.
    pub tasks: usize,
    /// The run's inputs, defaults applied.
    pub inputs: Map<String, Value>,
}

/// `run.restored`: where the run starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRestored {
    /// The run it was restored or forked from.
    pub parent_run_id: RunId,
    /// The checkpoint it starts from.
    pub checkpoint_id: CheckpointId,
    /// The task a fork starts at (none for a restore).
    pub forked_at: Option<String>,
    /// Tasks whose results were taken from the checkpoint.
    pub restored: Vec<String>,
    /// Tasks that run again.
    pub rerun: Vec<String>,
    /// Files of the rebuilt workspace.
    pub files: usize,
}

/// `run.started`: whether a process took the run over, and how many tasks it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    /// Whether the run had started before (a resume).
    pub resumed: bool,
    /// How many tasks the run has.
    pub tasks: usize,
    /// The run was started only to be cancelled (a cancel reached a run nobody executed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_only: bool,
}

/// `task.ready`: nothing more to say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReady {}

/// Why an agent that ranked above the chosen one was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassedOver {
    /// No free slot.
    Busy,
    /// Its rate would be exceeded.
    RateLimited,
}

/// One candidate's score, as reported in `task.delegated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Agent id.
    pub agent: String,
    /// Score.
    pub score: i64,
    /// Tasks in flight on it when scored.
    pub in_flight: u32,
    /// Whether it could take the task (a free slot, and rate budget when it was asked).
    pub available: bool,
    /// Why it was passed over though it ranked higher than the chosen agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<PassedOver>,
}

/// `task.delegated`: the chosen agent and every candidate's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDelegated {
    /// The agent chosen.
    pub agent: String,
    /// The attempt (from 1).
    pub attempt: u32,
    /// Every eligible agent, best first.
    pub candidates: Vec<Candidate>,
}

/// `task.started`: which agent runs which attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStarted {
    /// The agent.
    pub agent: String,
    /// The attempt (from 1).
    pub attempt: u32,
}

/// `task.succeeded`: the attempt that succeeded and its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSucceeded {
    /// The attempt (from 1; 0 when nothing ran it).
    pub attempt: u32,
    /// The agent (none when nothing ran it).
    pub agent: Option<String>,
}

/// `task.failed`: the last attempt and why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFailed {
    /// The attempt.
    pub attempt: u32,
    /// What went wrong.
    pub error: String,
    /// The kind of failure.
    pub error_type: FailureKind,
}

/// `task.retrying`: the attempt that failed, why, and the wait before the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRetrying {
    /// The attempt that failed.
    pub attempt: u32,
    /// What went wrong.
    pub error: String,
    /// The kind of failure.
    pub error_type: FailureKind,
    /// The wait before the next attempt.
    pub backoff_ms: u64,
}

/// `task.decomposed`: the task's sub-plan is committed; its subtasks, where the sub-plan
/// came from, and the subtasks' depth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDecomposed {
    /// `static`, `planner` or `for_each`.
    pub source: String,
    /// The subtasks' ids, in sub-plan order.
    pub subtasks: Vec<String>,
    /// The subtasks' depth (1 under a task of the plan).
    pub depth: u32,
    /// The agent that decomposed it.
    pub agent: Option<String>,
}

/// One failed subtask in a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskFailure {
    /// The subtask.
    pub task: String,
    /// `failed`, `skipped` or `cancelled`.
    pub status: String,
    /// Why.
    pub error: String,
}

/// `task.merged`: the subtasks' results became the task's outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskMerged {
    /// `object`, `list`, `concat` or `llm`.
    pub merge: String,
    /// Subtasks merged (succeeded).
    pub subtasks: usize,
    /// Whether some subtasks failed and their results are missing (`collect`).
    pub partial: bool,
    /// The subtasks that did not succeed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<SubtaskFailure>,
}

/// `task.replanned`: a round of replanning replaced the unfinished part of the sub-plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskReplanned {
    /// 2 for the first replan, then 3, …
    pub round: u32,
    /// Subtasks of earlier rounds that were replaced.
    pub replaced: Vec<String>,
    /// The new subtasks.
    pub subtasks: Vec<String>,
    /// The failure that made the replan.
    pub reason: String,
}

/// `task.skipped`, `task.cancelled`, `run.interrupted`: why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Why.
    pub reason: String,
}

/// `gate.passed` and `gate.failed`: one gate's verdict on an attempt's outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// The gate's number in the task's list (from 1).
    pub gate: usize,
    /// `pattern`, `json_schema`, `command`, `llm_judge` or `manual`.
    pub kind: String,
    /// The verdict, in words.
    pub reason: String,
    /// What the gate looked at and found.
    pub detail: Value,
    /// The attempt.
    pub attempt: u32,
}

/// `approval.requested`: who may decide on the held outputs, and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequested {
    /// The wait.
    pub wait_id: WaitId,
    /// The manual gate's number in the task's list (from 1).
    pub gate: usize,
    /// The attempt whose outputs wait.
    pub attempt: u32,
    /// Who may decide (anyone when empty).
    pub approvers: Vec<String>,
    /// When `on_timeout` decides (none: the wait has no deadline).
    #[serde(serialize_with = "opt_time")]
    pub deadline: Option<DateTime<Utc>>,
    /// The decision taken at the deadline.
    pub on_timeout: OnTimeout,
    /// The outputs decided on.
    pub outputs: Option<Value>,
}

/// `approval.decided`: the decision, by whom and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalDecided {
    /// The wait.
    pub wait_id: WaitId,
    /// The decision.
    pub decision: ApprovalDecision,
    /// Who decided (`timeout` for the deadline's default).
    pub by: String,
    /// Why.
    pub reason: Option<String>,
    /// The attempt decided on.
    pub attempt: i64,
}

/// `question.asked`: the question as asked (its full typed spec), the ask it belongs to
/// and until when it waits for an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuestionAsked {
    /// The question's wait.
    pub wait_id: WaitId,
    /// The question.
    pub question: Box<crate::domain::question::Question>,
    /// Which ask of the task asked it.
    pub scope: String,
    /// When the default applies (none: it waits for an answer).
    #[serde(serialize_with = "opt_time")]
    pub deadline: Option<DateTime<Utc>>,
}

/// `question.answered` and `question.defaulted`: the stored answer (for `no_default`, no
/// value and the reason).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuestionAnswered {
    /// The question's wait.
    pub wait_id: WaitId,
    /// The question's id.
    pub question: String,
    /// The answer.
    pub answer: crate::domain::question::StoredAnswer,
    /// Why no value was found (`no_default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `question.skipped`: a question not asked because its `depends_on` was not met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuestionSkipped {
    /// Its wait (settled as skipped).
    pub wait_id: WaitId,
    /// The question's id.
    pub question: String,
    /// The condition that was not met.
    pub reason: String,
}

/// `question.dropped`: a question a model proposed (`generate`) that was not asked, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuestionDropped {
    /// The proposed question as the model wrote it (cut when long).
    pub proposed: Value,
    /// Why it was dropped.
    pub reason: String,
}

/// `prp.precondition.failed` / `prp.postcondition.failed`: the task that checked, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrpConditionFailed {
    /// `preconditions` or `postconditions`.
    pub task: String,
    /// The failed gate's verdict.
    pub reason: String,
}

/// `prp.step.rolled_back`: a step undone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrpStepRolledBack {
    /// The step.
    pub step: String,
    /// Why: `gate` (a gate failed after the retries), `integrity` (a protected path
    /// changed) or `rollback_all` (a later step failed under `--rollback all`).
    pub cause: String,
    /// Its rollback command and how it ended (`{argv, exit_code, output_tail}`), when it has
    /// one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Value>,
    /// Whether its workspace snapshot was put back.
    pub restored: bool,
    /// Files and links written back.
    pub written: usize,
    /// Files, links and directories removed.
    pub removed: usize,
}

/// `prp.integrity_violation`: a step changed protected paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrpIntegrityViolation {
    /// The step.
    pub step: String,
    /// The protected paths it added, changed or removed.
    pub paths: Vec<String>,
}

/// `run.waiting`: the tasks waiting for a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunWaiting {
    /// Their ids.
    pub tasks: Vec<String>,
}

/// `run.succeeded`, `run.failed`, `run.cancelled`: why, and how many tasks ended how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnded {
    /// Why the run failed or was cancelled (none when it succeeded).
    pub reason: Option<String>,
    /// Tasks by status (`succeeded`, `failed`, …).
    pub tasks: BTreeMap<String, usize>,
}

/// `plan.generated`: the goal and the planner's accepted answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanGenerated {
    /// The goal.
    pub goal: String,
    /// Answers it took (1 = accepted at once).
    pub rounds: u32,
    /// The model that wrote the accepted answer.
    pub model: String,
    /// How many tasks the plan has.
    pub tasks: usize,
}

/// `model.routed`: the routing engine's choice and its estimates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelRouted {
    /// The rule that chose.
    pub rule: String,
    /// The rule's reason.
    pub reason: String,
    /// The model chosen.
    pub model: String,
    /// Models tried next, in order.
    pub fallbacks: Vec<String>,
    /// Tokens estimated for the call (input and output).
    pub estimated_tokens: u64,
    /// Input tokens estimated.
    pub estimated_input_tokens: u64,
    /// Cost estimated, in USD.
    pub estimated_cost: f64,
}

/// `model.fallback`: a model failed for good and the next is tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFallback {
    /// The model that failed.
    pub from: String,
    /// The model tried next.
    pub to: String,
    /// The kind of error (`bad_request`, `rate_limited`, …).
    pub cause: String,
    /// The error.
    pub error: String,
}

/// `model.completed`: one answer, what it cost and took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelCompleted {
    /// The model.
    pub model: String,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost, in USD.
    pub cost: f64,
    /// How long the call took.
    pub duration_ms: i64,
    /// Why the model stopped, as the provider says.
    pub stop_reason: Option<String>,
    /// The answer's text.
    pub text: String,
}

/// `cost.alert`: one call cost more than the alert threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CostAlert {
    /// The model.
    pub model: String,
    /// Cost, in USD.
    pub cost: f64,
    /// The threshold, in USD.
    pub threshold: f64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

/// Which loop a reasoning event belongs to: its id, its agent, and how deep it runs (0 for
/// a task's own loop, 1 for a sub-agent it asked, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopRef {
    /// The loop.
    pub loop_id: String,
    /// The agent that reasons.
    pub agent: String,
    /// Depth under the task.
    pub depth: u32,
}

/// A call a model asked for, as `agent.turn` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AskedCall {
    /// The provider's id of the call.
    pub call_id: String,
    /// The tool (as nofx names it; the model's name when it named no offered tool).
    pub tool: String,
}

/// `agent.turn`: a model turn of a reasoning loop is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentTurn {
    /// The loop.
    #[serde(flatten)]
    pub of: LoopRef,
    /// 1, 2, 3, …
    pub turn: u32,
    /// The model that answered.
    pub model: String,
    /// Input tokens (cached ones included).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// Cost, in USD.
    pub cost: f64,
    /// The calls it asked for.
    pub tool_calls: Vec<AskedCall>,
}

/// `tool.called`: a call of a loop starts (its `started` row is committed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCalled {
    /// The loop.
    #[serde(flatten)]
    pub of: LoopRef,
    /// The turn that asked for it.
    pub turn: u32,
    /// The provider's id of the call.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// Its input (its JSON text cut to 4 KiB when longer).
    pub input: Value,
    /// Whether this runs it again after an interruption (its tool is idempotent).
    pub repeat: bool,
}

/// `tool.returned`: a call's result is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolReturned {
    /// The loop.
    #[serde(flatten)]
    pub of: LoopRef,
    /// The turn that asked for it.
    pub turn: u32,
    /// The provider's id of the call.
    pub call_id: String,
    /// The tool (the model's name when it named no offered tool).
    pub tool: String,
    /// `succeeded`, `failed`, `uncertain` or `declined`.
    pub status: String,
    /// How long it ran.
    pub duration_ms: i64,
    /// Whether the model was given an error.
    pub is_error: bool,
    /// What the model was given, cut to 4 KiB.
    pub output: String,
}

/// `tool.approval.requested`: a call waits for a person's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolApprovalRequested {
    /// The loop.
    #[serde(flatten)]
    pub of: LoopRef,
    /// The wait.
    pub wait_id: WaitId,
    /// The provider's id of the call.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// Its input (its JSON text cut to 4 KiB when longer).
    pub input: Value,
}

/// `tool.approval.decided`: a person decided on a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolApprovalDecided {
    /// The loop.
    #[serde(flatten)]
    pub of: LoopRef,
    /// The wait.
    pub wait_id: WaitId,
    /// The provider's id of the call.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// The decision.
    pub decision: ApprovalDecision,
    /// Who decided.
    pub by: String,
    /// Why.
    pub reason: Option<String>,
}

/// `agent.finished`: a reasoning loop ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentFinished {
    /// The loop.
    #[serde(flatten)]
    pub of: LoopRef,
    /// `answer`, `max_turns`, `budget` or `error`.
    pub stop_reason: String,
    /// Turns taken.
    pub turns: u32,
    /// Tool calls made.
    pub tool_calls: u32,
    /// What stopped it, when not an answer.
    pub error: Option<String>,
}

/// `model.delta`: streamed answer text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDelta {
    /// The model.
    pub model: String,
    /// The text that arrived.
    pub text: String,
}

fn opt_time<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(t) => s.serialize_str(&crate::domain::time::text(t)),
        None => s.serialize_none(),
    }
}
