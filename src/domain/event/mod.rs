//! Events: the append-only, gap-free log of each run. The same JSON shape is used by
//! `nofx runs events`, the library's `subscribe()`, HTTP and SSE. Each type's `data` is a
//! type of [`payload`]; an event is built from one ([`Event::new`]) and read back as one
//! ([`Event::payload`]).

pub mod payload;

use crate::domain::correlation::CorrelationId;
use crate::domain::ids::{RunId, TaskKey};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

macro_rules! event_types {
    ($( $(#[$doc:meta])* $variant:ident($payload:ident) => $text:literal ),+ $(,)?) => {
        /// What an event records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum EventType {
            $( $(#[$doc])* #[serde(rename = $text)] $variant ),+
        }

        impl EventType {
            /// The dotted name, e.g. `task.succeeded`.
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $text ),+ }
            }

            /// Parses the dotted name.
            ///
            /// # Errors
            /// When `s` is not an event type.
            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $( $text => Ok(Self::$variant), )+
                    other => Err(format!("unknown event type `{other}`")),
                }
            }
        }

        /// An event's data, typed by the event's type.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum EventData {
            $( $(#[$doc])* $variant(payload::$payload) ),+
        }

        impl EventData {
            /// The event type this data belongs to.
            pub fn kind(&self) -> EventType {
                match self { $( Self::$variant(_) => EventType::$variant ),+ }
            }

            /// The data as the event log's JSON.
            pub fn to_value(&self) -> Value {
                let v = match self { $( Self::$variant(p) => serde_json::to_value(p) ),+ };
                v.expect("event payloads have string keys and finite numbers only")
            }

            /// The data as the event log's JSON text, written straight from the payload (the
            /// same text as `to_value`'s, without building the value first).
            pub(crate) fn to_text(&self) -> String {
                let t = match self { $( Self::$variant(p) => serde_json::to_string(p) ),+ };
                t.expect("event payloads have string keys and finite numbers only")
            }

            /// Reads the data of an event of type `kind`.
            ///
            /// # Errors
            /// When `data` does not have the fields of `kind`.
            pub fn from_value(kind: EventType, data: &Value) -> Result<Self, serde_json::Error> {
                match kind {
                    $( EventType::$variant => payload::$payload::deserialize(data).map(Self::$variant) ),+
                }
            }
        }
    };
}

event_types! {
    /// The run was stored.
    RunCreated(RunCreated) => "run.created",
    /// The run starts from a checkpoint: parent run, checkpoint, fork point, the tasks
    /// restored and those that run again.
    RunRestored(RunRestored) => "run.restored",
    /// A process started (or resumed) executing the run.
    RunStarted(RunStarted) => "run.started",
    /// Every dependency of the task succeeded.
    TaskReady(TaskReady) => "task.ready",
    /// The supervisor chose an agent; `data` lists every candidate's score.
    TaskDelegated(TaskDelegated) => "task.delegated",
    /// An agent started an attempt.
    TaskStarted(TaskStarted) => "task.started",
    /// The task succeeded and its result is committed.
    TaskSucceeded(TaskSucceeded) => "task.succeeded",
    /// The task failed after its last attempt.
    TaskFailed(TaskFailed) => "task.failed",
    /// The task will not run because a dependency failed.
    TaskSkipped(Reason) => "task.skipped",
    /// An attempt failed and the retry policy allows another.
    TaskRetrying(TaskRetrying) => "task.retrying",
    /// The task was stopped by a cancel or the run's timeout.
    TaskCancelled(Reason) => "task.cancelled",
    /// The task's sub-plan is committed: its subtasks, the source, their depth.
    TaskDecomposed(TaskDecomposed) => "task.decomposed",
    /// The subtasks' results became the task's outputs: merge, counts, failures.
    TaskMerged(TaskMerged) => "task.merged",
    /// The unfinished part of a sub-plan was replaced: round, replaced, new subtasks, reason.
    TaskReplanned(TaskReplanned) => "task.replanned",
    /// A gate accepted the task's outputs.
    GatePassed(GateResult) => "gate.passed",
    /// A gate rejected the task's outputs.
    GateFailed(GateResult) => "gate.failed",
    /// A task's result waits for a person's decision: who may decide, until when, the
    /// outputs to decide on.
    ApprovalRequested(ApprovalRequested) => "approval.requested",
    /// Someone (or the deadline) decided: decision, by, reason.
    ApprovalDecided(ApprovalDecided) => "approval.decided",
    /// A task asks the user a typed question: the full spec, until when.
    QuestionAsked(QuestionAsked) => "question.asked",
    /// Someone answered a question: the stored answer.
    QuestionAnswered(QuestionAnswered) => "question.answered",
    /// A question took its default (I don't know, an empty optional answer, the deadline),
    /// or found none (`no_default`).
    QuestionDefaulted(QuestionAnswered) => "question.defaulted",
    /// A question was not asked: its `depends_on` was not met.
    QuestionSkipped(QuestionSkipped) => "question.skipped",
    /// A question a model proposed (`generate`) was not asked: why (a warning).
    QuestionDropped(QuestionDropped) => "question.dropped",
    /// Nothing of the run can go on until someone decides: the tasks waiting.
    RunWaiting(RunWaiting) => "run.waiting",
    /// Every task succeeded.
    RunSucceeded(RunEnded) => "run.succeeded",
    /// The run failed; `data.reason` says why.
    RunFailed(RunEnded) => "run.failed",
    /// The run was cancelled; `data.reason` says by whom.
    RunCancelled(RunEnded) => "run.cancelled",
    /// The process executing the run stopped (interrupt); the run stays resumable.
    RunInterrupted(Reason) => "run.interrupted",
    /// The planner's plan was accepted; `data` has the goal, rounds and model.
    PlanGenerated(PlanGenerated) => "plan.generated",
    /// The routing engine chose a model: rule, reason, model, fallbacks, estimates.
    ModelRouted(ModelRouted) => "model.routed",
    /// A model failed for good and the next fallback is tried; `data.cause` says why.
    ModelFallback(ModelFallback) => "model.fallback",
    /// A model answered: model, tokens, cost, duration and the answer's text.
    ModelCompleted(ModelCompleted) => "model.completed",
    /// One call cost more than the alert threshold of `budgets.toml`.
    CostAlert(CostAlert) => "cost.alert",
    /// Streamed answer text; published to live subscribers only, never stored.
    ModelDelta(ModelDelta) => "model.delta",
    /// A reasoning loop's model turn is committed: turn, model, tokens (cached ones apart),
    /// cost and the calls it asked for.
    AgentTurn(AgentTurn) => "agent.turn",
    /// A tool call of a loop starts: call id, tool, input.
    ToolCalled(ToolCalled) => "tool.called",
    /// A tool call's result is committed: status, duration, whether an error, output.
    ToolReturned(ToolReturned) => "tool.returned",
    /// A tool call waits for a person: the wait, the call's tool and input.
    ToolApprovalRequested(ToolApprovalRequested) => "tool.approval.requested",
    /// A person decided on a tool call.
    ToolApprovalDecided(ToolApprovalDecided) => "tool.approval.decided",
    /// A reasoning loop ended: stop reason, turns, tool calls.
    AgentFinished(AgentFinished) => "agent.finished",
    /// A PRP's precondition failed: no step ran.
    PrpPreconditionFailed(PrpConditionFailed) => "prp.precondition.failed",
    /// A PRP step was undone: how (its command, its snapshot put back) and what changed.
    PrpStepRolledBack(PrpStepRolledBack) => "prp.step.rolled_back",
    /// A PRP step changed a protected path: the paths; the step fails and is rolled back.
    PrpIntegrityViolation(PrpIntegrityViolation) => "prp.integrity_violation",
    /// A PRP's postcondition failed after every step succeeded.
    PrpPostconditionFailed(PrpConditionFailed) => "prp.postcondition.failed",
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl EventType {
    /// The run-level events: run changes and finished tasks, what a project-wide stream
    /// (`GET /runs/stream`) carries.
    pub const RUN_LEVEL: [Self; 17] = [
        Self::RunCreated,
        Self::RunStarted,
        Self::RunSucceeded,
        Self::RunFailed,
        Self::RunCancelled,
        Self::RunInterrupted,
        Self::RunWaiting,
        Self::RunRestored,
        Self::ApprovalRequested,
        Self::ApprovalDecided,
        Self::QuestionAsked,
        Self::QuestionAnswered,
        Self::QuestionDefaulted,
        Self::TaskSucceeded,
        Self::TaskFailed,
        Self::TaskSkipped,
        Self::TaskCancelled,
    ];

    /// Whether a project-wide stream carries this event ([`EventType::RUN_LEVEL`]).
    pub fn is_run_level(self) -> bool {
        Self::RUN_LEVEL.contains(&self)
    }

    /// Whether this event ends the run for good (succeeded, failed or cancelled).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::RunSucceeded | Self::RunFailed | Self::RunCancelled
        )
    }

    /// Whether executing the run stopped here: a terminal event or an interruption.
    pub fn ends_run(self) -> bool {
        self.is_terminal() || self == Self::RunInterrupted
    }
}

/// One event of a run: its place in the run's log (`seq`, from 1, no gaps), its kind, the
/// task and correlation it belongs to, and its data, read typed with [`Event::payload`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::StreamExt;
/// use nofx::events::EventData;
/// use nofx::plan::{Plan, Task};
/// let rt = nofx::Runtime::builder().memory_store().build().await?;
/// let run = rt.submit(Plan::new("p").task(Task::new("a", "test:echo").input("x", 1)), Default::default()).await?;
/// let mut events = Box::pin(run.subscribe());
/// while let Some(event) = events.next().await {
///     let event = event?;
///     match event.payload()? {
///         EventData::TaskSucceeded(done) => println!("{:?} succeeded (attempt {})", event.task_id, done.attempt),
///         EventData::TaskFailed(failed) => println!("{:?} failed: {}", event.task_id, failed.error),
///         _ => {}
///     }
/// }
/// rt.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Position in the run's log: 1, 2, 3, … with no gaps.
    pub seq: i64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When, in UTC.
    #[serde(serialize_with = "rfc3339_ms")]
    pub at: DateTime<Utc>,
    /// The run.
    pub run_id: RunId,
    /// The task, for task and gate events.
    pub task_id: Option<TaskKey>,
    /// The run's correlation id.
    pub correlation_id: CorrelationId,
    /// Details, by type.
    pub data: serde_json::Value,
}

/// Streamed answer text of a model call: published to live subscribers as it arrives, never
/// stored, without a sequence number (a stream resumed from the store skips them). The
/// answer is stored once, whole, in `model.completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delta {
    /// Always `model.delta`.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When, in UTC.
    #[serde(serialize_with = "rfc3339_ms")]
    pub at: DateTime<Utc>,
    /// The run.
    pub run_id: RunId,
    /// The task.
    pub task_id: Option<TaskKey>,
    /// The run's correlation id.
    pub correlation_id: CorrelationId,
    /// `{"model": …, "text": …}`.
    pub data: serde_json::Value,
}

impl Event {
    /// Event `seq` of `run_id`, with `data` (which gives its type).
    pub fn new(
        seq: i64,
        at: DateTime<Utc>,
        run_id: RunId,
        task_id: Option<TaskKey>,
        correlation_id: CorrelationId,
        data: &EventData,
    ) -> Self {
        Self {
            seq,
            kind: data.kind(),
            at,
            run_id,
            task_id,
            correlation_id,
            data: data.to_value(),
        }
    }

    /// The event's data, typed.
    ///
    /// # Errors
    /// When `data` does not have the fields of the event's type (it was not written by
    /// nofx).
    pub fn payload(&self) -> Result<EventData, serde_json::Error> {
        EventData::from_value(self.kind, &self.data)
    }
}

impl Delta {
    /// Streamed text of the model call of `run_id`'s task `task_id`, now.
    pub fn new(
        run_id: RunId,
        task_id: Option<TaskKey>,
        correlation_id: CorrelationId,
        data: payload::ModelDelta,
    ) -> Self {
        Self {
            kind: EventType::ModelDelta,
            at: Utc::now(),
            run_id,
            task_id,
            correlation_id,
            data: EventData::ModelDelta(data).to_value(),
        }
    }
}

/// An event on its way to the store. Its data is serialized once, straight from the typed
/// payload, as the text the store writes; the [`Event`] subscribers receive is made from the
/// payload only for a run someone listens to ([`PendingEvent::event`]).
#[derive(Debug, Clone)]
pub(crate) struct PendingEvent {
    /// Position in the run's log.
    pub seq: i64,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// The run.
    pub run_id: RunId,
    /// The task, for task and gate events.
    pub task_id: Option<TaskKey>,
    /// The run's correlation id.
    pub correlation_id: CorrelationId,
    /// Details, typed.
    pub data: EventData,
    /// `data` as the row's JSON text.
    pub text: String,
}

impl PendingEvent {
    /// Event `seq` of `run_id` at `at_ms`, with `data` (which gives its type).
    pub fn new(
        seq: i64,
        at_ms: i64,
        run_id: RunId,
        task_id: Option<TaskKey>,
        correlation_id: CorrelationId,
        data: EventData,
    ) -> Self {
        Self {
            seq,
            at_ms,
            run_id,
            task_id,
            correlation_id,
            text: data.to_text(),
            data,
        }
    }

    /// What happened.
    pub fn kind(&self) -> EventType {
        self.data.kind()
    }

    /// The event as subscribers and the store's readers see it.
    pub fn event(&self) -> Event {
        Event::new(
            self.seq,
            from_ms(self.at_ms),
            self.run_id,
            self.task_id.clone(),
            self.correlation_id.clone(),
            &self.data,
        )
    }
}

fn rfc3339_ms<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&super::time::text(at))
}

pub use super::time::from_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_serializes_with_contract_keys() {
        let e = Event {
            seq: 3,
            kind: EventType::TaskReady,
            at: from_ms(1_700_000_000_123),
            run_id: RunId::new(),
            task_id: Some(TaskKey::parse("a").unwrap()),
            correlation_id: CorrelationId::generate(),
            data: serde_json::json!({}),
        };
        let v = serde_json::to_value(&e).unwrap();
        for key in [
            "seq",
            "type",
            "at",
            "runId",
            "taskId",
            "correlationId",
            "data",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["type"], "task.ready");
        assert_eq!(v["at"], "2023-11-14T22:13:20.123Z");
    }

    /// The text an event's row stores, written straight from the payload, is the text of the
    /// value subscribers get, and the event made from it is the one `Event::new` makes.
    #[test]
    fn pending_event_text_is_the_value_text() {
        let cases = [
            (
                EventType::TaskDelegated,
                serde_json::json!({"agent": "w1", "attempt": 2, "candidates": [
                    {"agent": "w0", "score": -3, "inFlight": 4, "available": false, "skipped": "busy"},
                    {"agent": "w1", "score": 17, "inFlight": 0, "available": true}]}),
            ),
            (
                EventType::RunCreated,
                serde_json::json!({"name": "p", "tasks": 3, "inputs": {
                    "z": 1.5e-7, "a": [1, "two", {"k\"ey": null}], "m": "\u{1F600}\n\t"}}),
            ),
            (
                EventType::AgentTurn,
                serde_json::json!({"loopId": "l1", "agent": "a", "depth": 0, "turn": 3,
                    "model": "m", "inputTokens": 10, "outputTokens": 2, "cachedTokens": 0,
                    "cacheWriteTokens": 0, "cost": 0.000123, "toolCalls": [
                        {"callId": "c1", "tool": "t"}]}),
            ),
        ];
        let run = RunId::new();
        let corr = CorrelationId::generate();
        for (kind, data) in cases {
            let data = EventData::from_value(kind, &data).unwrap();
            let task = Some(TaskKey::parse("a").unwrap());
            let pending = PendingEvent::new(
                7,
                1_700_000_000_123,
                run,
                task.clone(),
                corr.clone(),
                data.clone(),
            );
            assert_eq!(
                pending.text,
                serde_json::to_string(&data.to_value()).unwrap()
            );
            let made = Event::new(
                7,
                from_ms(1_700_000_000_123),
                run,
                task,
                corr.clone(),
                &data,
            );
            assert_eq!(pending.event(), made);
            assert_eq!(pending.kind(), kind);
        }
    }
}
