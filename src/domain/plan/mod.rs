//! Plans as users write them (YAML or JSON, one schema): the serde-level structs here;
//! `source.rs` reads them from text (with each task's line), `validate.rs` checks one and
//! builds its `TaskGraph`, `error.rs` says what is wrong with one.

mod build;
mod decompose;
mod error;
mod source;
pub(crate) mod subplan;
mod validate;

pub use decompose::{
    reserved_id, Decompose, Form, Limits, Merge, MergeSpec, OnSubtaskFailure, Replan, Source,
};
pub use error::{PlanError, PlanErrors, PlanIssue};
pub use source::{Format, PlanSource, PlanSyntaxError};
pub use validate::{inputs_from_text, placeholder_inputs, validate, ToolCatalog, ValidatedPlan};

/// What unit tests check plans with: a catalog of the one tool `test:echo`, and the graph of
/// a plan in YAML.
#[cfg(test)]
pub(crate) mod testing {
    use super::{validate, Format, PlanSource, ToolCatalog};
    use crate::domain::graph::TaskGraph;
    use crate::domain::{AgentSpec, Role};
    use serde_json::Value;

    /// Knows `test:echo`, whose inputs are anything.
    pub struct Echo;
    impl ToolCatalog for Echo {
        fn check_inputs(&self, tool: &str, _: &Value) -> Option<Vec<(String, String)>> {
            (tool == "test:echo").then(Vec::new)
        }
        fn names(&self) -> Vec<String> {
            vec!["test:echo".into()]
        }
    }

    /// The graph of `yaml`, validated with [`Echo`] and one worker.
    pub fn graph(yaml: &str) -> TaskGraph {
        let src = PlanSource::parse(yaml, Format::Yaml, None).expect("the test's plan parses");
        let agents = [AgentSpec::new("w", Role::Worker)];
        validate(&src, &serde_json::Map::new(), &Echo, &agents)
            .expect("the test's plan is valid")
            .graph
    }
}

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A plan: named inputs and a list of tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// A short name for the plan.
    pub name: String,
    /// Typed inputs, referenced as `${inputs.NAME}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, InputSpec>,
    /// The tasks, in plan order.
    pub tasks: Vec<TaskSpec>,
    /// Deadline of the whole run in seconds; past it the run fails with reason `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// The project the run's model calls are billed to (monthly budgets are per project);
    /// `default` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Automatic checkpoints of the run (default: the runtime's policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<CheckpointPolicy>,
}

/// When a run is checkpointed without being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointPolicy {
    /// After every N succeeded tasks (0: never).
    #[serde(default)]
    pub every: u32,
    /// Before each task waits for a manual approval.
    #[serde(default = "yes")]
    pub before_approval: bool,
}

fn yes() -> bool {
    true
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every: 0,
            before_approval: true,
        }
    }
}

impl Plan {
    /// The project billed: `project`, or `default`.
    pub fn project(&self) -> &str {
        self.project.as_deref().unwrap_or("default")
    }

    /// The first thing of the plan that runs a command on the host (a `shell` task or a
    /// `command` gate), described for messages.
    pub fn command_user(&self) -> Option<String> {
        self.tasks.iter().find_map(|top| {
            top.with_nested().into_iter().find_map(|(id, t)| {
                if t.tool == "shell" {
                    return Some(format!("task `{id}` (tool `shell`)"));
                }
                if let Some(Ok(Form::Planner { .. })) = t.decompose.as_ref().map(|d| d.form()) {
                    return Some(format!(
                        "task `{id}` (decompose with planner: its model may plan `shell` tasks)"
                    ));
                }
                t.gates
                    .iter()
                    .position(|g| matches!(g, GateSpec::Command { .. }))
                    .map(|g| format!("task `{id}` (gate #{}, kind command)", g + 1))
            })
        })
    }

    /// What in task `i` (and its static subtasks) calls a model: tools (`llm:generate`,
    /// `codegen`, `agent`), `llm_judge` gates, a planned decomposition and an `llm` merge,
    /// described for messages.
    pub fn model_users(&self, i: usize) -> Vec<String> {
        let Some(top) = self.tasks.get(i) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (id, t) in top.with_nested() {
            let whose = if std::ptr::eq(t, top) {
                String::new()
            } else {
                format!(" of subtask `{id}`")
            };
            if matches!(t.tool.as_str(), "llm:generate" | "codegen" | "agent") {
                out.push(format!("tool `{}`{whose}", t.tool));
            }
            if let Some(d) = &t.decompose {
                if matches!(d.form(), Ok(Form::Planner { .. })) {
                    out.push(format!("decompose with planner{whose}"));
                }
                if d.merge() == Merge::Llm {
                    out.push(format!("merge `llm`{whose}"));
                }
            }
            for (g, gate) in t.gates.iter().enumerate() {
                if matches!(gate, GateSpec::LlmJudge { .. }) {
                    out.push(format!("gate #{} (llm_judge){whose}", g + 1));
                }
            }
        }
        out
    }
}

/// A declared plan input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The JSON type of the value.
    #[serde(rename = "type")]
    pub kind: InputType,
    /// Used when the caller gives no value; without one the input is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// What the input means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The type of a plan input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

impl InputType {
    /// Whether `v` has this type.
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            Self::String => v.is_string(),
            Self::Integer => v.is_i64() || v.is_u64(),
            Self::Number => v.is_number(),
            Self::Boolean => v.is_boolean(),
            Self::Object => v.is_object(),
            Self::Array => v.is_array(),
        }
    }

    /// Reads a value given as text on the command line (`--input k=v`).
    ///
    /// # Errors
    /// When the text is not a value of this type.
    pub fn parse_text(self, text: &str) -> Result<Value, String> {
        let parsed = match self {
            Self::String => return Ok(Value::String(text.to_string())),
            Self::Integer => text.trim().parse::<i64>().ok().map(Value::from),
            Self::Number => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            Self::Boolean => match text.trim() {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            Self::Object | Self::Array => serde_json::from_str::<Value>(text)
                .ok()
                .filter(|v| self.accepts(v)),
        };
        parsed.ok_or_else(|| format!("`{text}` is not {}", self.article()))
    }

    fn article(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Integer => "an integer",
            Self::Number => "a number",
            Self::Boolean => "a boolean (true or false)",
            Self::Object => "a JSON object",
            Self::Array => "a JSON array",
        }
    }

    /// "an integer", "a string", … for messages.
    pub fn described(self) -> &'static str {
        self.article()
    }
}

/// One task of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// The task's id: letters, digits, `_` and `-`; unique in the plan (a subtask's is
    /// unique among its siblings and becomes `PARENT.ID`).
    #[serde(default)]
    pub id: String,
    /// The tool that runs it, e.g. `shell` or `test:echo` (none with `decompose`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool: String,
    /// The tool's inputs; strings may hold references.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub inputs: Map<String, Value>,
    /// Tasks that must succeed first (references add to these).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Capabilities an agent needs to take the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// How hard the task is; used when scoring agents.
    #[serde(default)]
    pub complexity: Complexity,
    /// Ready tasks are dispatched by priority, then in plan order.
    #[serde(default)]
    pub priority: Priority,
    /// Checks on the outputs; a failed gate fails (or retries) the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateSpec>,
    /// How often to try again after a failure.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Deadline of one attempt, in seconds (of the whole sub-plan, with `decompose`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Splits the task into subtasks at run time; their merged results are its outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decompose: Option<Box<Decompose>>,
    /// When it runs: once every dependency succeeded (the default), or only when one of
    /// them failed (a clean-up or undo task).
    #[serde(default, skip_serializing_if = "RunIf::is_default")]
    pub run_if: RunIf,
}

/// When a task with dependencies runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunIf {
    /// Once every dependency succeeded; skipped when one fails or is skipped.
    #[default]
    Succeeded,
    /// Once every dependency has ended and at least one failed; skipped when none failed.
    /// A task that undoes or reports what its dependencies did.
    Failed,
}

impl RunIf {
    /// Whether it is the default (`succeeded`).
    pub fn is_default(&self) -> bool {
        *self == Self::Succeeded
    }
}

/// The tool name of a decomposed task in rows and events.
pub const DECOMPOSE_TOOL: &str = "decompose";

impl TaskSpec {
    /// Every task of this one's static sub-plans and for_each templates, depth first (not
    /// itself), each with its full id (`PARENT.CHILD`; a template's is `PARENT.ITEM`).
    pub fn nested(&self) -> Vec<(String, &TaskSpec)> {
        let mut out = Vec::new();
        let mut stack: Vec<(String, &TaskSpec)> = vec![(self.id.clone(), self)];
        while let Some((id, t)) = stack.pop() {
            if let Some(d) = &t.decompose {
                let inner: Vec<(String, &TaskSpec)> = match d.form() {
                    Ok(Form::Static(subtasks)) => subtasks
                        .iter()
                        .map(|s| (format!("{id}.{}", s.id), s))
                        .collect(),
                    Ok(Form::ForEach { task, .. }) => vec![(format!("{id}.ITEM"), task)],
                    _ => Vec::new(),
                };
                for (sid, s) in inner.into_iter().rev() {
                    out.push((sid.clone(), s));
                    stack.push((sid, s));
                }
            }
        }
        out
    }

    /// This task and every task of its static sub-plans and for_each templates, each with its
    /// full id.
    pub fn with_nested(&self) -> Vec<(String, &TaskSpec)> {
        let mut all = vec![(self.id.clone(), self)];
        all.extend(self.nested());
        all
    }

    /// The tool named in rows and events: its own, or `decompose`.
    pub fn tool_name(&self) -> &str {
        if self.decompose.is_some() {
            DECOMPOSE_TOOL
        } else {
            &self.tool
        }
    }
}

/// Task complexity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Complexity {
    /// Routine work; workers score higher.
    Low,
    /// The default.
    #[default]
    Medium,
    /// Hard work; coordinators score higher.
    High,
}

/// Task priority.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Dispatched after the others.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Dispatched first.
    High,
}

/// Retry policy of a task: `max` further attempts, `backoff_ms` apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts after the first (0 = never retry).
    #[serde(default)]
    pub max: u32,
    /// Wait before each retry, in milliseconds.
    #[serde(default)]
    pub backoff_ms: u64,
}

/// A validation gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum GateSpec {
    /// A regular expression must match one output (rendered as text).
    Pattern {
        /// The output to check, e.g. `stdout`.
        output: String,
        /// The regular expression (multi-line: `^` and `$` match at line ends).
        regex: String,
    },
    /// One output (or all outputs) must satisfy a JSON Schema.
    JsonSchema {
        /// The output to check; without it, the whole outputs object.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
        /// The schema.
        schema: Value,
    },
    /// A command run in the run workspace must exit with 0.
    Command {
        /// The command and its arguments.
        argv: Vec<String>,
        /// Deadline of the command in seconds (default 60).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_s: Option<f64>,
    },
    /// A model judges the outputs against a rubric and answers pass or fail with reasons.
    LlmJudge {
        /// What the outputs must satisfy, in words.
        rubric: String,
        /// The output to judge; without it, all outputs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
    },
    /// A person approves or rejects the outputs; the task waits for the decision. Runs after
    /// the task's other gates have passed, wherever it is listed.
    Manual {
        /// Who may decide (any name when empty).
        #[serde(default)]
        approvers: Vec<String>,
        /// Seconds to wait for a decision; then `on_timeout` decides.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_s: Option<f64>,
        /// The decision taken when `timeout_s` passes without one.
        #[serde(default)]
        on_timeout: OnTimeout,
    },
}

/// The decision a manual gate takes when nobody decided in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// The task fails.
    #[default]
    Reject,
    /// The task succeeds with its outputs.
    Approve,
}

impl OnTimeout {
    /// `reject` or `approve`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::Approve => "approve",
        }
    }

    /// Parses `reject` or `approve`.
    ///
    /// # Errors
    /// Any other text.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "reject" => Ok(Self::Reject),
            "approve" => Ok(Self::Approve),
            other => Err(format!("unknown on_timeout `{other}`")),
        }
    }
}

impl GateSpec {
    /// `pattern`, `json_schema`, `command` or `llm_judge`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Pattern { .. } => "pattern",
            Self::JsonSchema { .. } => "json_schema",
            Self::Command { .. } => "command",
            Self::LlmJudge { .. } => "llm_judge",
            Self::Manual { .. } => "manual",
        }
    }
}

/// The JSON Schema of a plan, as printed by `nofx schema plan`.
pub fn plan_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Plan)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_types_parse_command_line_text() {
        assert_eq!(InputType::Integer.parse_text("42"), Ok(Value::from(42)));
        assert!(InputType::Integer.parse_text("4.2").is_err());
        assert_eq!(InputType::Boolean.parse_text("true"), Ok(Value::Bool(true)));
        assert!(InputType::Array.parse_text("{}").is_err());
    }
}
