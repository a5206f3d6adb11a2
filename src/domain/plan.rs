//! Plans as users write them (YAML or JSON, one schema) and how they are read from text.
//! These are the raw, serde-level structs; `graph::validate` turns one into a `TaskGraph`.

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
        self.tasks.iter().find_map(|t| {
            if t.tool == "shell" {
                return Some(format!("task `{}` (tool `shell`)", t.id));
            }
            t.gates
                .iter()
                .position(|g| matches!(g, GateSpec::Command { .. }))
                .map(|g| format!("task `{}` (gate #{}, kind command)", t.id, g + 1))
        })
    }

    /// What in task `i` calls a model: its tool (`llm:generate`, `codegen`) and its
    /// `llm_judge` gates, described for messages.
    pub fn model_users(&self, i: usize) -> Vec<String> {
        let Some(t) = self.tasks.get(i) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if matches!(t.tool.as_str(), "llm:generate" | "codegen") {
            out.push(format!("tool `{}`", t.tool));
        }
        for (g, gate) in t.gates.iter().enumerate() {
            if matches!(gate, GateSpec::LlmJudge { .. }) {
                out.push(format!("gate #{} (llm_judge)", g + 1));
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
    /// The task's id: letters, digits, `_` and `-`; unique in the plan.
    pub id: String,
    /// The tool that runs it, e.g. `shell` or `test:echo`.
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
    /// Deadline of one attempt, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
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

/// A plan read from text, with the line of each task for messages.
#[derive(Debug, Clone)]
pub struct PlanSource {
    /// The plan (shared: a validated plan and its stored run point at the same one).
    pub plan: std::sync::Arc<Plan>,
    /// Where it came from (a file name), for messages.
    pub origin: Option<String>,
    /// The 1-based line where each task starts, by plan order (when known).
    pub task_lines: Vec<Option<usize>>,
}

/// The text is not a plan.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{origin}{message}")]
pub struct PlanSyntaxError {
    origin: String,
    /// What is wrong, with the line when known.
    pub message: String,
}

/// Format of a plan text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (JSON is valid YAML too, but error messages are better with `Json`).
    Yaml,
    /// JSON.
    Json,
}

impl Format {
    /// The format a file name suggests: JSON for `.json`, else YAML.
    pub fn for_path(path: &str) -> Self {
        if path.to_ascii_lowercase().ends_with(".json") {
            Self::Json
        } else {
            Self::Yaml
        }
    }
}

impl PlanSource {
    /// Parses a plan from text.
    ///
    /// # Errors
    /// When the text is not valid YAML/JSON or does not match the plan schema; the message
    /// names the line.
    ///
    /// ```
    /// use nofx::domain::plan::{Format, PlanSource};
    /// let src = PlanSource::parse("name: x\ntasks:\n  - { id: a, tool: test:echo }\n", Format::Yaml, None).unwrap();
    /// assert_eq!(src.task_lines, vec![Some(3)]);
    /// ```
    pub fn parse(
        text: &str,
        format: Format,
        origin: Option<&str>,
    ) -> Result<Self, PlanSyntaxError> {
        let prefix = origin.map(|o| format!("{o}: ")).unwrap_or_default();
        let deep = match format {
            Format::Json => super::nesting::check_json(text),
            Format::Yaml => super::nesting::check_yaml(text),
        };
        deep.map_err(|e| PlanSyntaxError {
            origin: prefix.clone(),
            message: e.to_string(),
        })?;
        let plan: Plan = match format {
            Format::Json => serde_json::from_str(text).map_err(|e| PlanSyntaxError {
                origin: prefix.clone(),
                message: format!(
                    "line {}, column {}: {}",
                    e.line(),
                    e.column(),
                    strip_position(&e.to_string())
                ),
            })?,
            Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| PlanSyntaxError {
                origin: prefix.clone(),
                message: match e.location() {
                    Some(l) => format!(
                        "line {}, column {}: {}",
                        l.line(),
                        l.column(),
                        strip_position(&e.to_string())
                    ),
                    None => format!("line 1: {e}"),
                },
            })?,
        };
        let task_lines = task_lines(text, plan.tasks.len());
        Ok(Self {
            plan: std::sync::Arc::new(plan),
            origin: origin.map(str::to_string),
            task_lines,
        })
    }

    /// A plan built in code (no lines).
    pub fn from_plan(plan: impl Into<std::sync::Arc<Plan>>) -> Self {
        let plan = plan.into();
        let n = plan.tasks.len();
        Self {
            plan,
            origin: None,
            task_lines: vec![None; n],
        }
    }
}

/// serde's messages end with " at line X column Y" (the prefix already says where) and name
/// Rust types; a plan's author reads what the value should be instead.
fn strip_position(msg: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    let mut out = msg.to_string();
    for (rust, plain) in [
        (
            "expected struct Plan",
            "expected a plan: a mapping with `name` and `tasks`",
        ),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("a boolean", "true or false"),
    ] {
        out = out.replace(rust, plain);
    }
    // A value quoted whole (a text file given as a plan) is cut to its start.
    if let Some(i) = out.find("invalid type: string \"") {
        let from = i + "invalid type: string \"".len();
        if let Some(len) = out[from..].rfind('"') {
            if let Some((cut, _)) = out[from..from + len].char_indices().nth(60) {
                out.replace_range(from + cut..from + len, "…");
            }
        }
    }
    if let Some(i) = out.find("expected struct ") {
        let end = out[i + 16..]
            .find(|c: char| !c.is_alphanumeric())
            .map_or(out.len(), |e| i + 16 + e);
        out.replace_range(i..end, "expected a mapping");
    }
    out
}

/// Finds the line where each item of the top-level `tasks` list starts.
fn task_lines(text: &str, n: usize) -> Vec<Option<usize>> {
    use yaml_rust2::parser::{Event, Parser};
    enum Frame {
        Map {
            expect_key: bool,
            key: Option<String>,
        },
        Seq,
    }
    let in_tasks = |stack: &[Frame]| {
        stack.len() == 2
            && matches!(stack[1], Frame::Seq)
            && matches!(&stack[0], Frame::Map { key: Some(k), .. } if k == "tasks")
    };
    let value_done = |stack: &mut Vec<Frame>| {
        if let Some(Frame::Map { expect_key, .. }) = stack.last_mut() {
            *expect_key = true;
        }
    };
    let mut lines = Vec::with_capacity(n);
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Ok((event, mark)) = parser.next_token() {
        match event {
            Event::StreamEnd => break,
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if in_tasks(&stack) {
                    lines.push(Some(mark.line()));
                }
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map {
                        expect_key: true,
                        key: None,
                    }
                } else {
                    Frame::Seq
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                value_done(&mut stack);
            }
            Event::Scalar(value, ..) => {
                if in_tasks(&stack) {
                    lines.push(Some(mark.line()));
                }
                match stack.last_mut() {
                    Some(Frame::Map { expect_key, key }) if *expect_key => {
                        *key = Some(value);
                        *expect_key = false;
                    }
                    _ => value_done(&mut stack),
                }
            }
            Event::Alias(..) => value_done(&mut stack),
            _ => {}
        }
    }
    lines.resize(n, None);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_task_lines_in_block_and_flow_yaml() {
        let text = "name: x\ninputs: { a: { type: string } }\ntasks:\n  - id: one\n    tool: test:echo\n  - { id: two, tool: test:echo }\n";
        let src = PlanSource::parse(text, Format::Yaml, None).unwrap();
        assert_eq!(src.task_lines, vec![Some(4), Some(6)]);
    }

    #[test]
    fn finds_task_lines_in_json() {
        let text = "{\"name\": \"x\",\n \"tasks\": [\n  {\"id\": \"a\", \"tool\": \"test:echo\"},\n  {\"id\": \"b\", \"tool\": \"test:echo\"}]}";
        let src = PlanSource::parse(text, Format::Json, None).unwrap();
        assert_eq!(src.task_lines, vec![Some(3), Some(4)]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = PlanSource::parse(
            "name: broken\ntasks:\n  - { id: a, tool: test:echo\n",
            Format::Yaml,
            Some("p.yaml"),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("p.yaml: line "), "{e}");
        let e =
            PlanSource::parse("name: x\ntasks: []\nbogus: 1\n", Format::Yaml, None).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn syntax_errors_say_what_the_value_should_be_not_a_rust_type() {
        for (text, want) in [
            (
                "- a\n",
                "expected a plan: a mapping with `name` and `tasks`",
            ),
            ("name: x\ntimeout_s: abc\ntasks: []\n", "expected a number"),
            (
                "name: x\ntasks:\n  - { id: a, tool: t, retry: { max: -1 } }\n",
                "expected a whole number, 0 or more",
            ),
        ] {
            let e = PlanSource::parse(text, Format::Yaml, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
            for rust in ["u32", "f64", "struct"] {
                assert!(!e.contains(rust), "{e}");
            }
        }
    }

    #[test]
    fn input_types_parse_command_line_text() {
        assert_eq!(InputType::Integer.parse_text("42"), Ok(Value::from(42)));
        assert!(InputType::Integer.parse_text("4.2").is_err());
        assert_eq!(InputType::Boolean.parse_text("true"), Ok(Value::Bool(true)));
        assert!(InputType::Array.parse_text("{}").is_err());
    }
}
