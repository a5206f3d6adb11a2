//! PRPs (Product Requirements Prompts), pure: a PRD plus the context an agent needs to ship
//! on the first pass (goal and why, business goals, constraints, examples and documentation
//! each with why it matters, gotchas), an implementation blueprint of steps, and executable
//! validation. A PRP is checked (every problem names its key path, e.g.
//! `implementation.steps[2].gates[0]`) and compiles to the plan of a run: a `preconditions`
//! task whose gates are the preconditions, one task a step (one after another, in an order
//! that respects `depends_on`, each with its gates), a `postconditions` task, and a
//! `rollback` task that runs only when one of them failed.

use super::ids::TaskKey;
use super::nesting;
use super::plan::{Format, GateSpec, Plan, RetryPolicy, RunIf, TaskSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

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
const MAX_RETRY: u32 = 10;

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

/// A problem of a PRP: its key path, its line when known, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where, as a key path: `implementation.steps[2].gates[0]`.
    pub path: String,
    /// The 1-based line, when the PRP came from text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Every problem of a PRP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.origin, .problems))]
pub struct PrpErrors {
    /// The file, for messages.
    pub origin: Option<String>,
    /// The problems.
    pub problems: Vec<Problem>,
}

fn render(origin: &Option<String>, problems: &[Problem]) -> String {
    let n = problems.len();
    let mut out = if n > 1 {
        format!("the PRP has {n} problems:\n")
    } else {
        String::new()
    };
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if n > 1 {
            out.push_str("  ");
        }
        match (origin, p.line) {
            (Some(o), Some(l)) => out.push_str(&format!("{o}:{l}: ")),
            (Some(o), None) => out.push_str(&format!("{o}: ")),
            (None, Some(l)) => out.push_str(&format!("line {l}: ")),
            (None, None) => {}
        }
        if !p.path.is_empty() {
            out.push_str(&format!("{}: ", p.path));
        }
        out.push_str(&p.message);
    }
    out
}

impl PrpErrors {
    /// One problem with no place.
    pub fn one(origin: Option<&str>, path: &str, message: impl Into<String>) -> Self {
        Self {
            origin: origin.map(str::to_string),
            problems: vec![Problem {
                path: path.to_string(),
                line: None,
                message: message.into(),
            }],
        }
    }
}

/// A PRP read from text, with the line of each key path.
#[derive(Debug, Clone)]
pub struct PrpSource {
    /// The PRP.
    pub prp: Prp,
    /// Where it came from.
    pub origin: Option<String>,
    lines: HashMap<String, usize>,
}

impl PrpSource {
    /// Reads a PRP (its syntax and shape; [`Prp::problems`] checks the rest).
    ///
    /// # Errors
    /// Too large or deep, not YAML/JSON, or not a PRP: the problem with its key path and
    /// line.
    pub fn parse(text: &str, format: Format, origin: Option<&str>) -> Result<Self, PrpErrors> {
        let fail = |path: String, line: Option<usize>, message: String| PrpErrors {
            origin: origin.map(str::to_string),
            problems: vec![Problem {
                path,
                line,
                message,
            }],
        };
        if text.len() > MAX_BYTES {
            return Err(fail(
                String::new(),
                None,
                format!(
                    "the PRP is {} bytes; at most {MAX_BYTES} are allowed",
                    text.len()
                ),
            ));
        }
        let deep = match format {
            Format::Json => nesting::check_json(text),
            Format::Yaml => nesting::check_yaml(text),
        };
        deep.map_err(|e| fail(String::new(), Some(e.line), e.to_string()))?;
        let lines = key_lines(text);
        let parsed: Result<Prp, (String, Option<usize>, String)> = match format {
            Format::Json => {
                let de = &mut serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let line = e.inner().line();
                    (
                        e.path().to_string(),
                        Some(line),
                        without_position(&e.inner().to_string()),
                    )
                })
            }
            Format::Yaml => match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
                Err(e) => Err((
                    String::new(),
                    e.location().map(|l| l.line()),
                    without_position(&e.to_string()),
                )),
                Ok(value) => serde_path_to_error::deserialize(value).map_err(|e| {
                    let path = e.path().to_string();
                    let line = line_of(&lines, &path);
                    (path, line, without_position(&e.inner().to_string()))
                }),
            },
        };
        let prp = parsed.map_err(|(path, line, message)| {
            let path = if path == "." { String::new() } else { path };
            fail(path, line, message)
        })?;
        Ok(Self {
            prp,
            origin: origin.map(str::to_string),
            lines,
        })
    }

    /// The problems of `found` with their lines.
    pub fn errors(&self, found: Vec<(String, String)>) -> PrpErrors {
        PrpErrors {
            origin: self.origin.clone(),
            problems: found
                .into_iter()
                .map(|(path, message)| Problem {
                    line: line_of(&self.lines, &path),
                    path,
                    message,
                })
                .collect(),
        }
    }
}

fn without_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The line of `path`, or of the nearest enclosing key path that has one.
fn line_of(lines: &HashMap<String, usize>, path: &str) -> Option<usize> {
    let mut p = path;
    loop {
        if let Some(l) = lines.get(p) {
            return Some(*l);
        }
        let cut = p.rfind(['.', '['])?;
        p = &p[..cut];
    }
}

/// The 1-based line of every key path of a YAML (or JSON) text: `a.b[2].c`.
fn key_lines(text: &str) -> HashMap<String, usize> {
    use yaml_rust2::parser::{Event, Parser};
    enum Frame {
        Map {
            key: Option<String>,
            expect_key: bool,
        },
        Seq {
            next: usize,
        },
    }
    fn path(stack: &[Frame]) -> String {
        let mut out = String::new();
        for f in stack {
            match f {
                Frame::Map { key: Some(k), .. } => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Frame::Seq { next } => out.push_str(&format!("[{}]", next.saturating_sub(1))),
                Frame::Map { key: None, .. } => {}
            }
        }
        out
    }
    let mut out = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Ok((event, mark)) = parser.next_token() {
        let line = mark.line();
        // A value starts: a sequence item gets its index, a mapping value its key's place.
        let starts_value = |stack: &mut Vec<Frame>, out: &mut HashMap<String, usize>| {
            if let Some(Frame::Seq { next }) = stack.last_mut() {
                *next += 1;
                out.entry(path(stack)).or_insert(line);
            }
        };
        match event {
            Event::StreamEnd => break,
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                starts_value(&mut stack, &mut out);
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map {
                        key: None,
                        expect_key: true,
                    }
                } else {
                    Frame::Seq { next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                if let Some(Frame::Map { expect_key, .. }) = stack.last_mut() {
                    *expect_key = true;
                }
            }
            Event::Scalar(value, ..) => {
                let is_key = matches!(
                    stack.last(),
                    Some(Frame::Map {
                        expect_key: true,
                        ..
                    })
                );
                if is_key {
                    if let Some(Frame::Map { key, expect_key }) = stack.last_mut() {
                        *key = Some(value);
                        *expect_key = false;
                    }
                    out.entry(path(&stack)).or_insert(line);
                } else {
                    starts_value(&mut stack, &mut out);
                    if let Some(Frame::Map { expect_key, .. }) = stack.last_mut() {
                        *expect_key = true;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether a gate decides by itself, without a model or a person.
fn deterministic(g: &GateSpec) -> bool {
    matches!(
        g,
        GateSpec::Command { .. } | GateSpec::Pattern { .. } | GateSpec::JsonSchema { .. }
    )
}

/// A relative path that stays below its base (no `..`, not absolute), as text problems.
pub fn relative_path_problem(p: &str) -> Option<String> {
    let path = std::path::Path::new(p);
    if p.trim().is_empty() {
        return Some("the path is empty".into());
    }
    if path.is_absolute() || p.starts_with('/') || p.starts_with('\\') {
        return Some(format!(
            "`{p}` is absolute; paths are relative to the workspace"
        ));
    }
    if path.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    }) {
        return Some(format!("`{p}` leaves the workspace (`..`)"));
    }
    None
}

impl Prp {
    /// The gates `refs` name (rules resolved), with the problems of each at `at[N]`.
    fn resolve(
        &self,
        refs: &[GateRef],
        at: &str,
        out: &mut Vec<(String, String)>,
    ) -> Vec<GateSpec> {
        let mut gates = Vec::with_capacity(refs.len());
        for (n, r) in refs.iter().enumerate() {
            match r {
                GateRef::Inline(g) => gates.push(g.clone()),
                GateRef::Named(name) => match self.context.validation_rules.get(name) {
                    Some(g) => gates.push(g.clone()),
                    None => {
                        let known: Vec<&str> = self
                            .context
                            .validation_rules
                            .keys()
                            .map(String::as_str)
                            .collect();
                        out.push((
                            format!("{at}[{n}]"),
                            format!(
                                "no validation rule is named `{name}` (context.validation_rules: {})",
                                super::names_or_none(&known)
                            ),
                        ));
                    }
                },
            }
        }
        gates
    }

    /// Every problem the document shows by itself (tools, inputs and commands are checked
    /// against a runtime by the compiled plan): each as (key path, message). `exists` says
    /// whether a context file is there (relative to the workspace).
    pub fn problems(&self, exists: &dyn Fn(&str) -> Result<(), String>) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        if self.name.trim().is_empty() {
            out.push(("name".into(), "must not be empty".into()));
        }
        if self.goal.trim().is_empty() {
            out.push(("goal".into(), "must not be empty".into()));
        }
        for (key, list) in [
            ("context.examples", &self.context.examples),
            ("context.documentation", &self.context.documentation),
        ] {
            for (n, s) in list.iter().enumerate() {
                let at = format!("{key}[{n}]");
                match (&s.file, &s.url) {
                    (Some(_), Some(_)) | (None, None) => out.push((
                        at.clone(),
                        "give one of `file` (a workspace file) or `url`".into(),
                    )),
                    (Some(f), None) => match relative_path_problem(f) {
                        Some(why) => out.push((format!("{at}.file"), why)),
                        None => {
                            if let Err(why) = exists(f) {
                                out.push((format!("{at}.file"), why));
                            }
                        }
                    },
                    (None, Some(u)) => {
                        if !(u.starts_with("https://") || u.starts_with("http://")) {
                            out.push((format!("{at}.url"), format!("`{u}` is not an http(s) URL")));
                        }
                    }
                }
                if s.why.trim().is_empty() {
                    out.push((format!("{at}.why"), "say why it matters".into()));
                }
            }
        }
        for (name, g) in &self.context.validation_rules {
            if matches!(g, GateSpec::Manual { .. }) {
                out.push((
                    format!("context.validation_rules.{name}"),
                    "a PRP's gates are checked by nofx; a `manual` gate waits for a person and cannot be a validation rule".into(),
                ));
            }
        }
        let steps = &self.implementation.steps;
        if steps.is_empty() {
            out.push(("implementation.steps".into(), "lists no step".into()));
        }
        if steps.len() > MAX_STEPS {
            out.push((
                "implementation.steps".into(),
                format!("{} steps; at most {MAX_STEPS} are allowed", steps.len()),
            ));
        }
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            let at = format!("implementation.steps[{i}]");
            match TaskKey::parse(&s.id) {
                Err(why) => out.push((format!("{at}.id"), why)),
                Ok(_) if [PRE_TASK, POST_TASK, ROLLBACK_TASK].contains(&s.id.as_str()) => {
                    out.push((
                        format!("{at}.id"),
                        format!(
                            "`{}` is the id of a task every PRP run has; choose another",
                            s.id
                        ),
                    ))
                }
                Ok(_) => {
                    if let Some(j) = first.insert(s.id.as_str(), i) {
                        first.insert(s.id.as_str(), j);
                        out.push((
                            format!("{at}.id"),
                            format!(
                                "duplicate step id `{}` (first used by implementation.steps[{j}])",
                                s.id
                            ),
                        ));
                    }
                }
            }
            if s.description.trim().is_empty() {
                out.push((format!("{at}.description"), "must not be empty".into()));
            }
            let kinds = [s.tool.is_some(), s.agent.is_some(), s.codegen.is_some()];
            match kinds.iter().filter(|k| **k).count() {
                1 => {}
                0 => out.push((
                    at.clone(),
                    "give one of `tool` (with `inputs`), `agent` or `codegen`".into(),
                )),
                _ => out.push((
                    at.clone(),
                    "give only one of `tool`, `agent` and `codegen`".into(),
                )),
            }
            if s.tool.is_none() && !s.inputs.is_empty() {
                out.push((format!("{at}.inputs"), "`inputs` go with `tool`".into()));
            }
            if let Some(a) = &s.agent {
                if a.prompt.trim().is_empty() {
                    out.push((format!("{at}.agent.prompt"), "must not be empty".into()));
                }
            }
            if let Some(dir) = s.codegen.as_ref().and_then(|c| c.dir.as_deref()) {
                if let Some(why) = relative_path_problem(dir) {
                    out.push((format!("{at}.codegen.dir"), why));
                }
            }
            for d in &s.depends_on {
                if !steps.iter().any(|o| &o.id == d) {
                    out.push((
                        format!("{at}.depends_on"),
                        format!("no step is named `{d}`"),
                    ));
                } else if d == &s.id {
                    out.push((
                        format!("{at}.depends_on"),
                        "a step cannot depend on itself".into(),
                    ));
                }
            }
            let gates = self.resolve(&s.gates, &format!("{at}.gates"), &mut out);
            if gates.len() == s.gates.len() && !gates.iter().any(deterministic) {
                out.push((
                    format!("{at}.gates"),
                    "needs at least one deterministic gate (`command`, `pattern` or `json_schema`): an `llm_judge` alone does not check a step".into(),
                ));
            }
            for (n, g) in gates.iter().enumerate() {
                if matches!(g, GateSpec::Manual { .. }) {
                    out.push((
                        format!("{at}.gates[{n}]"),
                        "a `manual` gate cannot check a PRP step".into(),
                    ));
                }
            }
            if let Some(cmd) = s.rollback.command() {
                if cmd.is_empty() || cmd[0].trim().is_empty() {
                    out.push((format!("{at}.rollback.command"), "names no command".into()));
                }
            }
            if s.retry.max > MAX_RETRY {
                out.push((
                    format!("{at}.retry.max"),
                    format!("at most {MAX_RETRY} retries are allowed"),
                ));
            }
        }
        if let Some(cycle) = self.cycle() {
            out.push((
                "implementation.steps".into(),
                format!("the steps' depends_on make a cycle: {}", cycle.join(" -> ")),
            ));
        }
        self.resolve(&self.preconditions, "preconditions", &mut out);
        self.resolve(&self.postconditions, "postconditions", &mut out);
        for (key, list) in [
            ("preconditions", &self.preconditions),
            ("postconditions", &self.postconditions),
        ] {
            for (n, g) in list.iter().enumerate() {
                if matches!(g, GateRef::Inline(GateSpec::Manual { .. })) {
                    out.push((
                        format!("{key}[{n}]"),
                        "a `manual` gate cannot be a condition of a PRP".into(),
                    ));
                }
            }
        }
        for (n, p) in self.protected.iter().enumerate() {
            let at = format!("protected[{n}]");
            if let Some(why) = relative_path_problem(p) {
                out.push((at, why));
            } else if let Err(e) = globset::Glob::new(p) {
                out.push((at, format!("not a valid glob: {e}")));
            }
        }
        if let Some(c) = &self.confidence {
            if !(1..=10).contains(&c.score) {
                out.push((
                    "confidence.score".into(),
                    format!("{} is not between 1 and 10", c.score),
                ));
            }
        }
        out
    }

    /// A cycle among the steps' `depends_on`, as step ids.
    fn cycle(&self) -> Option<Vec<String>> {
        let steps = &self.implementation.steps;
        let index: HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        // 0 unvisited, 1 on the path, 2 done.
        let mut mark = vec![0u8; steps.len()];
        fn visit(
            i: usize,
            steps: &[Step],
            index: &HashMap<&str, usize>,
            mark: &mut [u8],
            path: &mut Vec<usize>,
        ) -> Option<Vec<usize>> {
            mark[i] = 1;
            path.push(i);
            for d in &steps[i].depends_on {
                let Some(&j) = index.get(d.as_str()) else {
                    continue;
                };
                if j == i {
                    continue;
                }
                if mark[j] == 1 {
                    let from = path.iter().position(|&p| p == j).unwrap_or(0);
                    let mut c = path[from..].to_vec();
                    c.push(j);
                    return Some(c);
                }
                if mark[j] == 0 {
                    if let Some(c) = visit(j, steps, index, mark, path) {
                        return Some(c);
                    }
                }
            }
            path.pop();
            mark[i] = 2;
            None
        }
        for i in 0..steps.len() {
            if mark[i] == 0 {
                if let Some(c) = visit(i, steps, &index, &mut mark, &mut Vec::new()) {
                    return Some(c.into_iter().rev().map(|k| steps[k].id.clone()).collect());
                }
            }
        }
        None
    }

    /// The steps in the order they run: the written order, except that a step comes after
    /// the steps it depends on. `None` when they make a cycle.
    pub fn order(&self) -> Option<Vec<usize>> {
        let steps = &self.implementation.steps;
        let index: HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut placed: HashSet<usize> = HashSet::new();
        let mut out = Vec::with_capacity(steps.len());
        while out.len() < steps.len() {
            let next = (0..steps.len()).find(|&i| {
                !placed.contains(&i)
                    && steps[i].depends_on.iter().all(|d| {
                        index
                            .get(d.as_str())
                            .is_none_or(|j| placed.contains(j) || *j == i)
                    })
            })?;
            placed.insert(next);
            out.push(next);
        }
        Some(out)
    }

    /// What the model or agent of a step is told besides its task: goal, why, business
    /// goals, constraints, gotchas, examples and documentation with why each matters, test
    /// strategy and success criteria.
    pub fn context_text(&self) -> String {
        let mut out = format!("# {}\n\nGoal: {}\n", self.name, self.goal);
        if !self.why.is_empty() {
            out.push_str(&format!("Why: {}\n", self.why));
        }
        let list = |title: &str, items: &[String], out: &mut String| {
            if !items.is_empty() {
                out.push_str(&format!("\n## {title}\n"));
                for i in items {
                    out.push_str(&format!("- {i}\n"));
                }
            }
        };
        list("Business goals", &self.context.business_goals, &mut out);
        list(
            "Technical constraints",
            &self.context.technical_constraints,
            &mut out,
        );
        list("Gotchas", &self.context.gotchas, &mut out);
        if !self.context.documentation.is_empty() {
            out.push_str("\n## Documentation\n");
            for d in &self.context.documentation {
                let what = d.url.as_deref().or(d.file.as_deref()).unwrap_or_default();
                out.push_str(&format!("- {what}: {}\n", d.why));
            }
        }
        if let Some(t) = &self.implementation.test_strategy {
            out.push_str(&format!("\n## Test strategy\n{t}\n"));
        }
        list("Success criteria", &self.success_criteria, &mut out);
        if !self.protected.is_empty() {
            out.push_str(&format!(
                "\n## Protected (never change these; a change fails the step)\n{}\n",
                self.protected.join("\n")
            ));
        }
        out
    }

    /// The plan that checks what each step runs (its real tool, inputs and gates) against a
    /// runtime; a problem of its task `ID` is a problem of the step `ID`.
    pub fn check_plan(&self) -> Plan {
        let mut none = Vec::new();
        let mut tasks = vec![TaskSpec {
            gates: self.resolve(&self.preconditions, "", &mut none),
            ..TaskSpec::new(PRE_TASK, "test:echo")
        }];
        for s in &self.implementation.steps {
            let (tool, inputs) = match (&s.tool, &s.agent, &s.codegen) {
                (Some(t), _, _) => (t.clone(), s.inputs.clone()),
                (None, Some(a), _) => {
                    let mut m = Map::new();
                    m.insert("prompt".into(), Value::String(a.prompt.clone()));
                    if let Some(t) = &a.tools {
                        m.insert("tools".into(), json!(t));
                    }
                    ("agent".to_string(), m)
                }
                (None, None, Some(c)) => {
                    let mut m = Map::new();
                    m.insert(
                        "prompt".into(),
                        Value::String(c.prompt.clone().unwrap_or_else(|| s.description.clone())),
                    );
                    if let Some(d) = &c.dir {
                        m.insert("dir".into(), Value::String(d.clone()));
                    }
                    ("codegen".to_string(), m)
                }
                _ => ("test:echo".to_string(), Map::new()),
            };
            tasks.push(TaskSpec {
                inputs,
                depends_on: s.depends_on.clone(),
                capabilities: s.capabilities.clone(),
                gates: self.resolve(&s.gates, "", &mut none),
                retry: s.retry,
                timeout_s: s.timeout_s,
                ..TaskSpec::new(s.id.clone(), tool)
            });
        }
        let mut rollback_cmds = Vec::new();
        for s in &self.implementation.steps {
            if let Some(cmd) = s.rollback.command() {
                rollback_cmds.push(GateSpec::Command {
                    argv: cmd.to_vec(),
                    timeout_s: None,
                });
            }
        }
        tasks.push(TaskSpec {
            gates: self.resolve(&self.postconditions, "", &mut none),
            ..TaskSpec::new(POST_TASK, "test:echo")
        });
        tasks.push(TaskSpec {
            gates: rollback_cmds,
            ..TaskSpec::new(ROLLBACK_TASK, "test:echo")
        });
        Plan {
            name: self.name.clone(),
            inputs: BTreeMap::new(),
            tasks,
            timeout_s: None,
            project: None,
            checkpoints: None,
        }
    }

    /// The problems of the check plan ([`Prp::check_plan`]) at the steps' key paths.
    pub fn plan_problems(&self, errors: &super::plan::PlanErrors) -> Vec<(String, String)> {
        errors
            .0
            .iter()
            .map(|issue| {
                let path = match issue.error.task() {
                    Some(task) => self.path_of(task, issue.error.field().as_deref()),
                    None => String::new(),
                };
                (path, issue.error.to_string())
            })
            .collect()
    }

    /// The key path of a problem the check plan found in task `task` at `field` (as
    /// [`crate::plan::PlanError::field`] names it).
    pub fn path_of(&self, task: &str, field: Option<&str>) -> String {
        let field = field.unwrap_or_default();
        let gate = |list: &str| match field.strip_prefix("gates") {
            Some(rest) => format!("{list}{rest}"),
            None => list.to_string(),
        };
        match task {
            PRE_TASK => gate("preconditions"),
            POST_TASK => gate("postconditions"),
            ROLLBACK_TASK => {
                // The check plan's rollback task has one command gate a step with a command.
                let n: usize = field
                    .strip_prefix("gates[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                match self
                    .implementation
                    .steps
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.rollback.command().is_some())
                    .nth(n)
                {
                    Some((i, _)) => format!("implementation.steps[{i}].rollback.command"),
                    None => "implementation.steps".into(),
                }
            }
            id => match self.implementation.steps.iter().position(|s| s.id == id) {
                Some(i) => {
                    let s = &self.implementation.steps[i];
                    let at = format!("implementation.steps[{i}]");
                    let inner = if field.starts_with("gates") {
                        field.to_string()
                    } else if let Some(p) = field.strip_prefix("inputs/") {
                        match (&s.tool, &s.agent) {
                            (Some(_), _) => format!("inputs.{}", p.replace('/', ".")),
                            (None, Some(_)) => format!("agent.{}", p.replace('/', ".")),
                            _ => format!("codegen.{}", p.replace('/', ".")),
                        }
                    } else if field == "tool" && s.agent.is_some() {
                        "agent".into()
                    } else if field == "tool" && s.codegen.is_some() {
                        "codegen".into()
                    } else {
                        field.to_string()
                    };
                    if inner.is_empty() {
                        at
                    } else {
                        format!("{at}.{inner}")
                    }
                }
                None => String::new(),
            },
        }
    }

    /// The plan of a run of this PRP (checked by [`Prp::problems`] and its check plan
    /// first): preconditions, the steps one after another, postconditions, and the rollback
    /// task that undoes by `policy` when one of them failed.
    pub fn compile(&self, policy: RollbackPolicy) -> Plan {
        let mut none = Vec::new();
        let order = self
            .order()
            .unwrap_or_else(|| (0..self.implementation.steps.len()).collect());
        let steps = &self.implementation.steps;
        let context = self.context_text();
        let mut tasks = vec![TaskSpec {
            inputs: obj(json!({"phase": "pre"})),
            gates: self.resolve(&self.preconditions, "", &mut none),
            ..TaskSpec::new(PRE_TASK, CHECK_TOOL)
        }];
        let mut previous = PRE_TASK.to_string();
        let mut earlier: Vec<String> = Vec::new();
        for &i in &order {
            let s = &steps[i];
            let work = match (&s.tool, &s.agent, &s.codegen) {
                (Some(t), _, _) => json!({"tool": t, "inputs": s.inputs}),
                (None, Some(a), _) => json!({"agent": a}),
                (None, None, Some(c)) => json!({"codegen": c}),
                _ => json!({}),
            };
            let examples: Vec<Value> = self
                .context
                .examples
                .iter()
                .filter_map(|e| e.file.as_ref().map(|f| json!({"file": f, "why": e.why})))
                .collect();
            tasks.push(TaskSpec {
                inputs: obj(json!({
                    "step": s.id,
                    "description": s.description,
                    "work": work,
                    "context": context,
                    "examples": examples,
                    "earlier": earlier,
                    "protected": self.protected,
                })),
                depends_on: vec![previous.clone()],
                capabilities: s.capabilities.clone(),
                gates: self.resolve(&s.gates, "", &mut none),
                retry: s.retry,
                timeout_s: s.timeout_s,
                ..TaskSpec::new(s.id.clone(), STEP_TOOL)
            });
            earlier.push(s.id.clone());
            previous = s.id.clone();
        }
        tasks.push(TaskSpec {
            inputs: obj(json!({"phase": "post", "first": order.first().map(|&i| steps[i].id.clone()), "success_criteria": self.success_criteria})),
            depends_on: vec![previous],
            gates: self.resolve(&self.postconditions, "", &mut none),
            ..TaskSpec::new(POST_TASK, CHECK_TOOL)
        });
        let undo: Vec<Value> = order
            .iter()
            .map(|&i| json!({"step": steps[i].id, "rollback": steps[i].rollback}))
            .collect();
        let mut after = vec![PRE_TASK.to_string()];
        after.extend(order.iter().map(|&i| steps[i].id.clone()));
        after.push(POST_TASK.to_string());
        tasks.push(TaskSpec {
            inputs: obj(json!({"policy": policy, "steps": undo, "protected": self.protected, "prp": {"name": self.name, "confidence": self.confidence}})),
            depends_on: after,
            run_if: RunIf::Failed,
            ..TaskSpec::new(ROLLBACK_TASK, ROLLBACK_TOOL)
        });
        Plan {
            name: self.name.clone(),
            inputs: BTreeMap::new(),
            tasks,
            timeout_s: None,
            project: None,
            checkpoints: None,
        }
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The JSON Schema of a PRP, as printed by `nofx schema prp`.
pub fn prp_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Prp)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

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
