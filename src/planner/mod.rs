//! The planner: turns a free-text goal into a validated plan. It sends the goal with the plan
//! schema and the catalogue of tools (with their input schemas) and agents (roles,
//! capabilities); the answer (JSON or YAML, bare or in one fenced code block) goes through the
//! same validation as a plan file. On errors, the errors are sent back for a repair, up to
//! `max_rounds` answers in all; then the planner fails with the last errors.

use crate::domain::event::{payload, EventData};
use crate::domain::plan::{plan_schema, Format, PlanSource};
use crate::domain::plan::{PlanErrors, ToolCatalog, ValidatedPlan};
use crate::domain::AgentSpec;
use crate::models::{answer_body, Ask, CallError, CallSink, Caller, Message, Models};
use crate::store::ModelCallRow;
use std::sync::Mutex;

/// How the planner works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannerOptions {
    /// Answers asked for in all (the first plus repairs); at least 1.
    pub max_rounds: u32,
    /// Output token limit of one answer.
    pub max_tokens: u32,
}

impl Default for PlannerOptions {
    fn default() -> Self {
        Self {
            max_rounds: 3,
            max_tokens: 4096,
        }
    }
}

/// An accepted plan.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The plan as parsed from the model's answer.
    pub source: PlanSource,
    /// The plan, validated.
    pub plan: ValidatedPlan,
    /// Answers it took (1 = accepted at once).
    pub rounds: u32,
    /// The model that wrote the accepted answer.
    pub model: String,
}

/// Why no plan was accepted.
#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    /// No model could be asked.
    #[error("the planner could not ask a model: {0}")]
    Call(#[from] CallError),
    /// Every answer was invalid.
    #[error(
        "the planner's plan was still invalid after {rounds} answer(s); last errors:\n{errors}"
    )]
    Rejected {
        /// Answers received.
        rounds: u32,
        /// The last answer's problems.
        errors: String,
    },
}

/// Events and usage rows of planner calls, kept until there is a run to log them in.
#[derive(Default)]
pub struct Collected {
    events: Mutex<Vec<EventData>>,
    rows: Mutex<Vec<ModelCallRow>>,
}

impl Collected {
    /// Takes the events.
    pub fn take_events(&self) -> Vec<EventData> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes the usage rows.
    pub fn take_rows(&self) -> Vec<ModelCallRow> {
        std::mem::take(&mut *self.rows.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl CallSink for Collected {
    fn event(&self, data: EventData) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(data);
    }

    fn usage(&self, row: ModelCallRow) {
        self.rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(row);
    }
}

/// The system prompt: the plan schema and what the runtime offers.
pub fn system_prompt(tools: &dyn ToolCatalog, agents: &[AgentSpec]) -> String {
    let mut s = String::from(
        "You are the planner of nofx, a runtime that executes plans: DAGs of tasks that agents run with tools.\n\
         Turn the user's goal into one plan.\n\
         Rules:\n\
         - Answer with the plan as one JSON object in a ```json fenced code block, and nothing else.\n\
         - The plan must satisfy the plan JSON Schema below.\n\
         - Every task uses one of the tools below, with inputs that satisfy that tool's input schema.\n\
         - A task's `capabilities` must all be offered by one agent below; leave them out when unsure.\n\
         - Order tasks with `depends_on`; pass an output on with `${tasks.ID.outputs.NAME}` in a later task's input.\n\
         - Keep the plan as small as the goal allows.\n\nTools:\n",
    );
    let mut names = tools.names();
    names.sort();
    // A PRP's own tools run only in the plan a PRP compiles to.
    for name in names
        .into_iter()
        .filter(|n| !crate::domain::prp::is_prp_tool(n))
    {
        if let Some(schema) = tools.input_schema(&name) {
            s.push_str(&format!("- `{name}`, input schema: {schema}\n"));
        }
    }
    s.push_str("\nAgents:\n");
    for a in agents {
        s.push_str(&format!(
            "- `{}` ({}), capabilities: [{}]\n",
            a.id,
            a.role,
            a.capabilities.join(", ")
        ));
    }
    s.push_str(&format!("\nPlan JSON Schema:\n{}\n", plan_schema()));
    s
}

/// The first message asking for the sub-plan of task `parent`: its goal, what the task was
/// given (`context`), the outside tasks its subtasks may use (`names`) and how many subtasks
/// it may have.
pub fn subplan_request(
    parent: &str,
    goal: &str,
    context: &serde_json::Value,
    names: &[&str],
    most: u32,
) -> String {
    let mut s = format!(
        "Goal: {goal}\n\nThis plan is the sub-plan of task `{parent}` of a larger run: its tasks run as subtasks `{parent}.ID`, and their results become that task's outputs.\n         - At most {most} tasks.\n         - Task ids are letters, digits, `_` and `-`; `outputs` is not an id.\n"
    );
    if !names.is_empty() {
        s.push_str(&format!(
            "- Finished tasks of the run a task may use with `${{tasks.ID.outputs.NAME}}`: {}\n",
            names.join(", ")
        ));
    }
    if context.as_object().is_some_and(|m| !m.is_empty()) {
        s.push_str(&format!("\nWhat the task was given:\n{context}\n"));
    }
    s
}

/// Parses an answer into a plan source: JSON when the body starts with `{`, else YAML.
///
/// # Errors
/// The syntax error, with its line in the answer's body.
pub fn parse_answer(text: &str) -> Result<PlanSource, String> {
    let body = answer_body(text);
    let format = if body.starts_with('{') {
        Format::Json
    } else {
        Format::Yaml
    };
    PlanSource::parse(body, format, Some("plan")).map_err(|e| e.to_string())
}

/// Asks for a plan for `goal` until one validates (through `validate`) or rounds run out.
///
/// # Errors
/// A call that fails (no provider, budget, every model failing) or every answer invalid.
///
/// # Cancel safety
/// Dropping the future abandons the call in flight; rows of finished calls are in `sink`.
pub async fn plan_goal(
    models: &Models,
    caller: &Caller,
    sink: &dyn CallSink,
    system: String,
    goal: &str,
    options: PlannerOptions,
    validate: impl Fn(&PlanSource) -> Result<ValidatedPlan, PlanErrors>,
) -> Result<Planned, PlannerError> {
    let ask = |a: Ask| async move { models.complete(caller, &a, sink).await };
    let (source, plan, rounds, model) =
        ask_until_valid(ask, system, format!("Goal: {goal}"), options, |src| {
            validate(src).map_err(|e| e.to_string())
        })
        .await?;
    tracing::info!(rounds, %model, tasks = plan.graph.len(), "planner: plan accepted");
    Ok(Planned {
        source,
        plan,
        rounds,
        model,
    })
}

/// Asks (`complete`) with `system` and the first message `request` until an answer parses
/// as a plan that `validate` accepts, sending its errors back for a repair; at most
/// `options.max_rounds` answers. Returns the plan, what `validate` made of it, the answers
/// it took and the model of the accepted one.
///
/// # Errors
/// A call that fails, or every answer invalid (with the last errors).
pub async fn ask_until_valid<T, F, Fut>(
    complete: F,
    system: String,
    request: String,
    options: PlannerOptions,
    validate: impl Fn(&PlanSource) -> Result<T, String>,
) -> Result<(PlanSource, T, u32, String), PlannerError>
where
    F: Fn(Ask) -> Fut,
    Fut: std::future::Future<Output = Result<crate::models::Answer, CallError>>,
{
    let mut ask = Ask {
        system: Some(system),
        messages: vec![Message::user(request)],
        max_tokens: options.max_tokens,
        temperature: Some(0.0),
        requires_reasoning: true,
        tools: Vec::new(),
        model: None,
    };
    let rounds = options.max_rounds.max(1);
    let mut errors = String::new();
    for round in 1..=rounds {
        let answer = complete(ask.clone()).await?;
        let checked = parse_answer(&answer.text).and_then(|src| validate(&src).map(|v| (src, v)));
        match checked {
            Ok((source, value)) => return Ok((source, value, round, answer.model)),
            Err(e) => {
                tracing::info!(round, errors = %e, "planner: plan rejected");
                errors = e;
                ask.messages.push(Message::assistant(answer.text));
                ask.messages.push(Message::user(format!(
                    "The plan is not valid:\n{errors}\nReply with the complete corrected plan."
                )));
            }
        }
    }
    Err(PlannerError::Rejected { rounds, errors })
}

/// The `plan.generated` event's data.
pub fn generated_event(goal: &str, planned: &Planned) -> EventData {
    EventData::PlanGenerated(payload::PlanGenerated {
        goal: goal.to_string(),
        rounds: planned.rounds,
        model: planned.model.clone(),
        tasks: planned.plan.graph.len(),
    })
}
