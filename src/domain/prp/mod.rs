//! PRPs (Product Requirements Prompts), pure: a PRD plus the context an agent needs to ship
//! on the first pass (goal and why, business goals, constraints, examples and documentation
//! each with why it matters, gotchas), an implementation blueprint of steps, and executable
//! validation. A PRP is checked (every problem names its key path, e.g.
//! `implementation.steps[2].gates[0]`) and compiles to the plan of a run: a `preconditions`
//! task whose gates are the preconditions, one task a step (one after another, in an order
//! that respects `depends_on`, each with its gates), a `postconditions` task, and a
//! `rollback` task that runs only when one of them failed.

mod check;
mod compile;
mod source;

pub use source::{Problem, PrpErrors, PrpSource};

use super::plan::{GateSpec, RetryPolicy};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The id of the task that checks the preconditions.
pub const PRE_TASK: &str = "preconditions";
/// The id of the task that checks the postconditions.
pub const POST_TASK: &str = "postconditions";
/// The id of the task that undoes what the steps did when one of them failed.
pub const ROLLBACK_TASK: &str = "rollback";
/// The tool of a step's task.
pub const STEP_TOOL: &str = "prp:step";
/// The tool of the pre- and postcondition tasks.
pub const CHECK_TOOL: &str = "prp:check";
/// The tool of the rollback task.
pub const ROLLBACK_TOOL: &str = "prp:rollback";
/// Whether a tool is one of a PRP run's own (`prp:…`), which only its compiled plan uses.
pub fn is_prp_tool(name: &str) -> bool {
    name.starts_with("prp:")
}

/// Most steps a PRP may have.
pub const MAX_STEPS: usize = 100;
/// Most bytes of a PRP document.
pub const MAX_BYTES: usize = 1024 * 1024;
/// Most attempts after the first a step may ask for.
pub(crate) const MAX_RETRY: u32 = 10;

/// A PRP as written (YAML or JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prp {
    /// A short name.
    pub name: String,
    /// What the change achieves.
    pub goal: String,
    /// Why it matters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// What the implementer must know.
    #[serde(default)]
    pub context: Context,
    /// How it is built.
    pub implementation: Implementation,
    /// Gates that must pass before any step runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preconditions: Vec<GateRef>,
    /// Gates that must pass after the last step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub postconditions: Vec<GateRef>,
    /// What done means, in words (reported with the outcome).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success_criteria: Vec<String>,
    /// Paths or globs (relative to the workspace) no step may change: a step that does fails
    /// and is rolled back, whatever its gates say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected: Vec<String>,
    /// How likely the PRP is to succeed in one pass, as its author (or the model that wrote
    /// it) judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
}

/// The context of a PRP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// What the business wants from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub business_goals: Vec<String>,
    /// Limits the implementation must respect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub technical_constraints: Vec<String>,
    /// Code to follow, each with why it matters (a `file` of the workspace or a `url`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Source>,
    /// Documentation to read, each with why it matters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documentation: Vec<Source>,
    /// Traps known in advance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gotchas: Vec<String>,
    /// Named gates, referred to by name from steps, preconditions and postconditions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub validation_rules: BTreeMap<String, GateSpec>,
}

/// An example or a document: a workspace file or a URL, and why it matters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A file, relative to the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// An http(s) URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Why it matters.
    pub why: String,
}

/// The implementation blueprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Implementation {
    /// The steps.
    pub steps: Vec<Step>,
    /// How the change is tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_strategy: Option<String>,
    /// How the change is rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_plan: Option<String>,
}

/// One step: a tool with inputs, an agent that reasons, or code a model writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Its id (letters, digits, `_`, `-`); the run's task id.
    pub id: String,
    /// What it does (agents and codegen get it in their prompt).
    pub description: String,
    /// A tool that does the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The tool's inputs (`${tasks.STEP.outputs.NAME}` references allowed).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub inputs: Map<String, Value>,
    /// An agent that reasons does the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentStep>,
    /// A model writes files for the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codegen: Option<CodegenStep>,
    /// Steps that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Gates checked after the step (names from `context.validation_rules`, or inline); at
    /// least one must be deterministic (`command`, `pattern` or `json_schema`).
    #[serde(default)]
    pub gates: Vec<GateRef>,
    /// How the step is undone.
    #[serde(default, skip_serializing_if = "Rollback::is_default")]
    pub rollback: Rollback,
    /// Attempts after a failed one; each retry is told what the gate said.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Capabilities the agent that runs the step needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Deadline of one attempt, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
}

/// A step an agent that reasons does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentStep {
    /// What to do (the PRP's context and the step's description come with it).
    pub prompt: String,
    /// Narrows the agent's tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
}

/// A step whose files a model writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodegenStep {
    /// What to write (default: the step's description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Workspace subdirectory the files go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
}

/// A gate: the name of a validation rule, or the gate itself.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum GateRef {
    /// A rule of `context.validation_rules`.
    Named(String),
    /// A gate written in place.
    Inline(GateSpec),
}

impl<'de> Deserialize<'de> for GateRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A name, or a gate whose own error says what is wrong with it.
        match Value::deserialize(d)? {
            Value::String(name) => Ok(Self::Named(name)),
            other => GateSpec::deserialize(other)
                .map(Self::Inline)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// How a step is undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Rollback {
    /// `restore` (its workspace snapshot is put back) or `none`.
    Mode(RollbackMode),
    /// A command run in the workspace (then its snapshot is put back).
    Command {
        /// The command and its arguments.
        command: Vec<String>,
    },
}

impl Default for Rollback {
    fn default() -> Self {
        Self::Mode(RollbackMode::Restore)
    }
}

/// `restore` or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RollbackMode {
    /// Put the step's workspace snapshot back.
    Restore,
    /// Nothing to undo.
    None,
}

impl Rollback {
    fn is_default(&self) -> bool {
        matches!(self, Self::Mode(RollbackMode::Restore))
    }

    /// The command it runs, if any.
    pub fn command(&self) -> Option<&[String]> {
        match self {
            Self::Command { command } => Some(command),
            _ => None,
        }
    }

    /// Whether the step's snapshot is put back.
    pub fn restores(&self) -> bool {
        !matches!(self, Self::Mode(RollbackMode::None))
    }
}

/// A judged likelihood of success in one pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Confidence {
    /// 1 (unlikely) to 10 (certain).
    pub score: u8,
    /// Why.
    pub reason: String,
}

/// What a run does when a step (or a postcondition) fails, after the step's retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RollbackPolicy {
    /// Undo the failed step (the default).
    #[default]
    Step,
    /// Undo every step that ran, last first: the workspace ends as before the first.
    All,
    /// Leave everything as it is.
    None,
}

impl RollbackPolicy {
    /// `step`, `all` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Step => "step",
            Self::All => "all",
            Self::None => "none",
        }
    }

    /// Parses `step`, `all` or `none`.
    ///
    /// # Errors
    /// Any other text.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "step" => Ok(Self::Step),
            "all" => Ok(Self::All),
            "none" => Ok(Self::None),
            other => Err(format!(
                "unknown rollback `{other}` (one of: step, all, none)"
            )),
        }
    }
}

/// The JSON Schema of a PRP, as printed by `nofx schema prp`.
pub fn prp_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Prp)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::{Format, RunIf};
    use serde_json::json;

    const GOOD: &str = r#"name: greet
goal: Add a greeting function
context:
  validation_rules:
    tests: { kind: command, argv: [sh, -c, "test -f greet.txt"] }
implementation:
  steps:
    - id: write
      description: write the file
      tool: shell
      inputs: { argv: [sh, -c, "echo hi > greet.txt"] }
      gates: [tests]
      rollback: { command: [rm, -f, marker] }
    - id: judge
      description: judged only
      codegen: {}
      depends_on: [write]
      gates:
        - { kind: llm_judge, rubric: nice }
        - missing
protected: ["tests/**", "[bad"]
confidence: { score: 11, reason: sure }
"#;

    fn parse(text: &str) -> PrpSource {
        PrpSource::parse(text, Format::Yaml, Some("p.yaml")).unwrap()
    }

    #[test]
    fn problems_name_their_key_path_and_line() {
        let src = parse(GOOD);
        let found = src.prp.problems(&|_| Ok(()));
        let errs = src.errors(found);
        let paths: Vec<&str> = errs.problems.iter().map(|p| p.path.as_str()).collect();
        assert!(
            paths.contains(&"implementation.steps[1].gates[1]"),
            "{paths:?}"
        );
        assert!(paths.contains(&"protected[1]"), "{paths:?}");
        assert!(paths.contains(&"confidence.score"), "{paths:?}");
        let gate = errs
            .problems
            .iter()
            .find(|p| p.path == "implementation.steps[1].gates[1]")
            .unwrap();
        assert_eq!(gate.line, Some(20));
        assert!(gate.message.contains("`missing`"), "{}", gate.message);
    }

    #[test]
    fn a_step_with_only_a_judge_is_refused() {
        let text = GOOD.replace("        - missing\n", "");
        let src = parse(&text);
        let found = src.prp.problems(&|_| Ok(()));
        assert!(
            found
                .iter()
                .any(|(p, m)| p == "implementation.steps[1].gates" && m.contains("deterministic")),
            "{found:?}"
        );
    }

    #[test]
    fn shape_errors_name_their_path() {
        let text = GOOD.replace(
            "description: judged only",
            "description: judged only\n      colour: red",
        );
        let e = PrpSource::parse(&text, Format::Yaml, None).unwrap_err();
        assert_eq!(e.problems[0].path, "implementation.steps[1].colour");
        assert_eq!(e.problems[0].line, Some(16));
        assert!(e.problems[0].message.contains("colour"), "{e}");
    }

    #[test]
    fn steps_run_after_what_they_depend_on_and_cycles_are_named() {
        let text = GOOD.replace("depends_on: [write]", "").replace(
            "      rollback: { command: [rm, -f, marker] }\n",
            "      rollback: { command: [rm, -f, marker] }\n      depends_on: [judge]\n",
        );
        let src = parse(&text);
        assert_eq!(src.prp.order(), Some(vec![1, 0]));
        let cyclic = text.replace("codegen: {}", "codegen: {}\n      depends_on: [write]");
        let src = parse(&cyclic);
        assert_eq!(src.prp.order(), None);
        let found = src.prp.problems(&|_| Ok(()));
        assert!(found.iter().any(|(_, m)| m.contains("cycle")), "{found:?}");
    }

    #[test]
    fn a_prp_compiles_to_a_chain_with_a_rollback_that_runs_on_failure() {
        let src = parse(GOOD);
        let plan = src.prp.compile(RollbackPolicy::All);
        let ids: Vec<&str> = plan.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, [PRE_TASK, "write", "judge", POST_TASK, ROLLBACK_TASK]);
        assert_eq!(plan.tasks[2].depends_on, ["write"]);
        assert_eq!(plan.tasks[1].gates.len(), 1, "the named rule is resolved");
        let rb = &plan.tasks[4];
        assert_eq!(rb.run_if, RunIf::Failed);
        assert_eq!(rb.inputs["policy"], "all");
        assert_eq!(rb.inputs["steps"][0]["rollback"]["command"][0], "rm");
        assert_eq!(plan.tasks[2].inputs["earlier"], json!(["write"]));
    }

    #[test]
    fn rollback_reads_restore_none_and_a_command() {
        let r: Rollback = serde_json::from_value(json!("none")).unwrap();
        assert!(!r.restores());
        let r: Rollback = serde_json::from_value(json!({"command": ["x"]})).unwrap();
        assert_eq!(r.command(), Some(&["x".to_string()][..]));
        assert!(serde_json::from_value::<Rollback>(json!("undo")).is_err());
    }
}
