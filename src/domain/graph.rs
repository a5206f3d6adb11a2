//! The `TaskGraph` (a petgraph `DiGraph`, edges from a dependency to its dependent) and the
//! validation that builds it from a plan: every problem is reported, each naming its task and,
//! for files, its line.

use crate::domain::ids::TaskKey;
use crate::domain::plan::{Complexity, GateSpec, Plan, PlanSource, Priority, RetryPolicy};
use crate::domain::reference::{self, Reference};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

/// What validation needs to know about tools: whether one exists and what it accepts.
pub trait ToolCatalog {
    /// `None` when no tool has this name; otherwise the schema violations of `inputs`, each
    /// as (JSON pointer, message).
    fn check_inputs(&self, tool: &str, inputs: &Value) -> Option<Vec<(String, String)>>;
    /// Every tool name, for "did you mean" lists.
    fn names(&self) -> Vec<String>;
}

/// One problem found in a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The plan has no tasks.
    #[error("the plan has no tasks")]
    NoTasks,
    /// A task id is malformed.
    #[error("{0}")]
    BadTaskId(String),
    /// Two tasks share an id.
    #[error("task `{task}`: duplicate task id (first used on task #{first})")]
    DuplicateId {
        /// The id.
        task: String,
        /// 1-based position of the first task with it.
        first: usize,
    },
    /// `depends_on` names a task that does not exist.
    #[error("task `{task}` depends on unknown task `{missing}`")]
    UnknownDependency {
        /// The task.
        task: String,
        /// The missing id.
        missing: String,
    },
    /// The dependencies form a cycle.
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// The tool does not exist.
    #[error("task `{task}`: unknown tool `{tool}` (known tools: {known})")]
    UnknownTool {
        /// The task.
        task: String,
        /// The tool name given.
        tool: String,
        /// Registered tools.
        known: String,
    },
    /// The inputs do not match the tool's input schema.
    #[error("task `{task}`: inputs of tool `{tool}` are invalid at `{pointer}`: {message}")]
    BadInputs {
        /// The task.
        task: String,
        /// The tool.
        tool: String,
        /// Where in the inputs (JSON pointer; empty for the whole object).
        pointer: String,
        /// What is wrong.
        message: String,
    },
    /// A reference is malformed or points nowhere.
    #[error("task `{task}`: {why}")]
    BadReference {
        /// The task.
        task: String,
        /// What is wrong.
        why: String,
    },
    /// No agent has a capability the task needs.
    #[error("task `{task}` requires capability `{capability}`, which no agent has")]
    MissingCapability {
        /// The task.
        task: String,
        /// The capability.
        capability: String,
    },
    /// Each capability exists, but no one agent has them all.
    #[error(
        "task `{task}` requires capabilities {capabilities}, which no single agent has together"
    )]
    NoSingleAgent {
        /// The task.
        task: String,
        /// The capabilities.
        capabilities: String,
    },
    /// A required plan input was not given.
    #[error("missing required plan input `{0}`")]
    MissingInput(String),
    /// An input was given that the plan does not declare.
    #[error("unknown plan input `{name}` (the plan declares: {declared})")]
    UnknownInput {
        /// The name given.
        name: String,
        /// Declared names.
        declared: String,
    },
    /// An input value (or default) has the wrong type.
    #[error("plan input `{name}`: {why}")]
    BadInputValue {
        /// The input.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A gate is malformed.
    #[error("task `{task}`: gate #{index} ({kind}): {why}")]
    BadGate {
        /// The task.
        task: String,
        /// 1-based position of the gate.
        index: usize,
        /// Gate kind.
        kind: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The command policy refuses a command the task runs.
    #[error("task `{task}`: {why}")]
    CommandNotAllowed {
        /// The task.
        task: String,
        /// The policy's reason.
        why: String,
    },
    /// The task calls a model and no provider is configured.
    #[error("task `{task}`: {what}, but {how}")]
    NeedsModel {
        /// The task.
        task: String,
        /// `tool `llm:generate` uses a model`, …
        what: String,
        /// How to configure a provider.
        how: String,
    },
    /// A field has a value out of range.
    #[error("{field}: {why}")]
    BadField {
        /// `timeout_s`, `tasks[3].timeout_s`, …
        field: String,
        /// What is wrong.
        why: String,
    },
}

impl PlanError {
    /// The task the problem is in, when it is in one.
    pub fn task(&self) -> Option<&str> {
        match self {
            Self::DuplicateId { task, .. }
            | Self::UnknownDependency { task, .. }
            | Self::UnknownTool { task, .. }
            | Self::BadInputs { task, .. }
            | Self::BadReference { task, .. }
            | Self::MissingCapability { task, .. }
            | Self::NoSingleAgent { task, .. }
            | Self::BadGate { task, .. }
            | Self::CommandNotAllowed { task, .. }
            | Self::NeedsModel { task, .. } => Some(task),
            _ => None,
        }
    }

    /// The field the problem is about, when one is named: `inputs/PATH` of a task,
    /// `gates[N]`, `inputs.NAME` of the plan, or a plan field.
    pub fn field(&self) -> Option<String> {
        match self {
            Self::BadInputs { pointer, .. } => Some(format!("inputs{pointer}")),
            Self::UnknownDependency { .. } => Some("depends_on".into()),
            Self::UnknownTool { .. } => Some("tool".into()),
            Self::MissingCapability { .. } | Self::NoSingleAgent { .. } => {
                Some("capabilities".into())
            }
            Self::BadGate { index, .. } => Some(format!("gates[{}]", index.saturating_sub(1))),
            Self::MissingInput(name) => Some(format!("inputs.{name}")),
            Self::UnknownInput { name, .. } | Self::BadInputValue { name, .. } => {
                Some(format!("inputs.{name}"))
            }
            Self::BadField { field, .. } => Some(field.clone()),
            _ => None,
        }
    }
}

/// A problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanIssue {
    /// The file, when the plan came from one.
    pub origin: Option<String>,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The problem.
    pub error: PlanError,
}

impl fmt::Display for PlanIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.origin, self.line) {
            (Some(o), Some(l)) => write!(f, "{o}:{l}: {}", self.error),
            (Some(o), None) => write!(f, "{o}: {}", self.error),
            (None, Some(l)) => write!(f, "line {l}: {}", self.error),
            (None, None) => write!(f, "{}", self.error),
        }
    }
}

/// Every problem found in a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PlanErrors(pub Vec<PlanIssue>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        if n > 1 {
            writeln!(f, "the plan has {n} problems:")?;
        }
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if n > 1 {
                write!(f, "  ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// A validated task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Position in the plan.
    pub index: usize,
    /// Its id.
    pub key: TaskKey,
    /// The tool.
    pub tool: String,
    /// Indices of the tasks it depends on (declared and by reference).
    pub deps: Vec<usize>,
    /// Required capabilities.
    pub capabilities: Vec<String>,
    /// Complexity.
    pub complexity: Complexity,
    /// Priority.
    pub priority: Priority,
    /// Gates.
    pub gates: Vec<GateSpec>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Deadline of one attempt.
    pub timeout: Option<Duration>,
}

/// The validated DAG of a plan.
#[derive(Debug, Clone)]
pub struct TaskGraph {
    plan: std::sync::Arc<Plan>,
    graph: DiGraph<usize, ()>,
    tasks: Vec<Task>,
    by_key: HashMap<TaskKey, usize>,
}

impl TaskGraph {
    /// The tasks in plan order.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The task at `index`.
    ///
    /// # Panics
    /// When `index` is out of range; indices come from this graph.
    pub fn task(&self, index: usize) -> &Task {
        &self.tasks[index]
    }

    /// The inputs of the task at `index` as written (references are resolved just before
    /// each attempt).
    ///
    /// # Panics
    /// When `index` is out of range; indices come from this graph.
    pub fn inputs(&self, index: usize) -> &Map<String, Value> {
        &self.plan.tasks[index].inputs
    }

    /// The index of a task id.
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the graph has no tasks (never true for a validated plan).
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Tasks that depend directly on `index`.
    pub fn dependents(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(index), Direction::Outgoing)
            .map(|n| self.graph[n])
    }

    /// Number of direct dependencies of each task, by index: the starting in-degree counters
    /// from which readiness is tracked.
    pub fn in_degrees(&self) -> Vec<u32> {
        self.tasks.iter().map(|t| t.deps.len() as u32).collect()
    }
}

/// A plan that passed validation, with its inputs resolved.
#[derive(Debug, Clone)]
pub struct ValidatedPlan {
    /// The plan as written.
    pub plan: std::sync::Arc<Plan>,
    /// Plan inputs: given values, then defaults.
    pub inputs: Map<String, Value>,
    /// The DAG.
    pub graph: TaskGraph,
}

impl ValidatedPlan {
    /// The plan with every `${inputs.NAME}` in task inputs replaced by its value (references
    /// to task outputs stay as written): what would run, as a plan that runs the same.
    pub fn with_inputs_resolved(&self) -> Plan {
        let mut plan = self.plan.as_ref().clone();
        for t in &mut plan.tasks {
            if let Ok(Value::Object(m)) =
                reference::resolve_map(&t.inputs, &InputsOnly(&self.inputs), reference::inputs_only)
            {
                t.inputs = m;
            }
        }
        plan
    }
}

impl PlanErrors {
    /// Problems of the tasks at the given plan positions, with their lines from `source`.
    pub fn at_tasks(source: &PlanSource, problems: Vec<(usize, PlanError)>) -> Self {
        Self(
            problems
                .into_iter()
                .map(|(i, error)| PlanIssue {
                    origin: source.origin.clone(),
                    line: source.task_lines.get(i).copied().flatten(),
                    error,
                })
                .collect(),
        )
    }
}

/// Turns `--input NAME=TEXT` pairs into typed values, by the plan's declared types.
///
/// # Errors
/// Unknown names and values of the wrong type.
pub fn inputs_from_text(
    plan: &Plan,
    pairs: &[(String, String)],
) -> Result<Map<String, Value>, PlanErrors> {
    let mut out = Map::new();
    let mut errors = Vec::new();
    for (name, text) in pairs {
        match plan.inputs.get(name) {
            None => errors.push(issue(None, None, unknown_input(plan, name))),
            Some(spec) => match spec.kind.parse_text(text) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(why) => errors.push(issue(
                    None,
                    None,
                    PlanError::BadInputValue {
                        name: name.clone(),
                        why,
                    },
                )),
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(PlanErrors(errors))
    }
}

fn unknown_input(plan: &Plan, name: &str) -> PlanError {
    let declared: Vec<&str> = plan.inputs.keys().map(String::as_str).collect();
    PlanError::UnknownInput {
        name: name.to_string(),
        declared: if declared.is_empty() {
            "none".to_string()
        } else {
            declared.join(", ")
        },
    }
}

fn issue(origin: Option<&String>, line: Option<usize>, error: PlanError) -> PlanIssue {
    PlanIssue {
        origin: origin.cloned(),
        line,
        error,
    }
}

struct InputsOnly<'a>(&'a Map<String, Value>);

impl reference::Lookup for InputsOnly<'_> {
    fn input(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
    fn outputs(&self, _: &str) -> Option<&Value> {
        None
    }
}

fn positive_seconds(
    v: Option<f64>,
    field: String,
    errors: &mut Vec<(Option<usize>, PlanError)>,
    line: Option<usize>,
) -> Option<Duration> {
    let s = v?;
    if !(s.is_finite() && s > 0.0 && s <= 31_536_000.0) {
        errors.push((
            line,
            PlanError::BadField {
                field,
                why: format!("must be a number of seconds above 0 and at most one year, got {s}"),
            },
        ));
        return None;
    }
    Some(Duration::from_secs_f64(s))
}

/// Validates a plan and builds its graph.
///
/// `inputs` are the caller's values (already typed); `agents` are the registered agents (a
/// task needs one agent that has all its capabilities).
///
/// # Errors
/// Every problem found, each naming its task and line.
pub fn validate(
    source: &PlanSource,
    inputs: &Map<String, Value>,
    tools: &dyn ToolCatalog,
    agents: &[crate::domain::AgentSpec],
) -> Result<ValidatedPlan, PlanErrors> {
    let capabilities: HashSet<&str> = agents
        .iter()
        .flat_map(|a| a.capabilities.iter().map(String::as_str))
        .collect();
    let plan = &source.plan;
    let line_of = |i: usize| source.task_lines.get(i).copied().flatten();
    let mut errors: Vec<(Option<usize>, PlanError)> = Vec::new();

    // Plan inputs: given values, then defaults; every declared one must end up with a value.
    let mut resolved = Map::new();
    for name in inputs.keys() {
        if !plan.inputs.contains_key(name) {
            errors.push((None, unknown_input(plan, name)));
        }
    }
    for (name, spec) in &plan.inputs {
        if let Some(d) = &spec.default {
            if !spec.kind.accepts(d) {
                errors.push((
                    None,
                    PlanError::BadInputValue {
                        name: name.clone(),
                        why: format!("default {d} is not {}", spec.kind.described()),
                    },
                ));
            }
        }
        match inputs.get(name).or(spec.default.as_ref()) {
            Some(v) if spec.kind.accepts(v) => {
                resolved.insert(name.clone(), v.clone());
            }
            Some(v) => {
                if inputs.contains_key(name) {
                    errors.push((
                        None,
                        PlanError::BadInputValue {
                            name: name.clone(),
                            why: format!("value {v} is not {}", spec.kind.described()),
                        },
                    ));
                }
            }
            None => errors.push((None, PlanError::MissingInput(name.clone()))),
        }
    }
    positive_seconds(plan.timeout_s, "timeout_s".into(), &mut errors, None);

    if plan.tasks.is_empty() {
        errors.push((None, PlanError::NoTasks));
    }

    // Ids.
    let mut by_key: HashMap<TaskKey, usize> = HashMap::new();
    let mut keys: Vec<Option<TaskKey>> = Vec::with_capacity(plan.tasks.len());
    for (i, t) in plan.tasks.iter().enumerate() {
        match TaskKey::parse(&t.id) {
            Ok(k) => {
                if let Some(&first) = by_key.get(&k) {
                    errors.push((
                        line_of(i),
                        PlanError::DuplicateId {
                            task: t.id.clone(),
                            first: first + 1,
                        },
                    ));
                    keys.push(None);
                } else {
                    by_key.insert(k.clone(), i);
                    keys.push(Some(k));
                }
            }
            Err(why) => {
                errors.push((
                    line_of(i),
                    PlanError::BadTaskId(format!("task #{}: {why}", i + 1)),
                ));
                keys.push(None);
            }
        }
    }

    // Dependencies, references, tools, capabilities, gates.
    let known_tools = tools.names().join(", ");
    let mut tasks = Vec::with_capacity(plan.tasks.len());
    for (i, t) in plan.tasks.iter().enumerate() {
        let line = line_of(i);
        let inputs_value = Value::Object(t.inputs.clone());
        let mut deps: BTreeSet<usize> = BTreeSet::new();
        for d in &t.depends_on {
            match by_key.get(d.as_str()) {
                Some(&j) => {
                    deps.insert(j);
                }
                None => errors.push((
                    line,
                    PlanError::UnknownDependency {
                        task: t.id.clone(),
                        missing: d.clone(),
                    },
                )),
            }
        }
        let mut ref_pointers: Vec<String> = Vec::new();
        match reference::references_in(&inputs_value) {
            Err(e) => errors.push((
                line,
                PlanError::BadReference {
                    task: t.id.clone(),
                    why: e.to_string(),
                },
            )),
            Ok(refs) => {
                for (pointer, r) in refs {
                    match r {
                        Reference::Input(name) if !plan.inputs.contains_key(&name) => {
                            errors.push((
                                line,
                                PlanError::BadReference {
                                    task: t.id.clone(),
                                    why: format!("`${{inputs.{name}}}` names no input of the plan"),
                                },
                            ))
                        }
                        Reference::Input(_) => {}
                        Reference::TaskOutput { task, .. } => {
                            ref_pointers.push(pointer);
                            match by_key.get(task.as_str()) {
                                Some(&j) if j == i => errors.push((
                                    line,
                                    PlanError::BadReference {
                                        task: t.id.clone(),
                                        why: format!("`${{tasks.{task}.outputs…}}` refers to the task itself"),
                                    },
                                )),
                                Some(&j) => {
                                    deps.insert(j);
                                }
                                None => errors.push((
                                    line,
                                    PlanError::BadReference {
                                        task: t.id.clone(),
                                        why: format!(
                                            "`${{tasks.{task}.outputs…}}` refers to unknown task `{task}`"
                                        ),
                                    },
                                )),
                            }
                        }
                    }
                }
            }
        }
        // Schema check with plan inputs filled in; values still holding task references are
        // checked again when the task runs.
        let for_check = reference::resolve(
            &inputs_value,
            &InputsOnly(&resolved),
            reference::inputs_only,
        )
        .unwrap_or_else(|_| inputs_value.clone());
        match tools.check_inputs(&t.tool, &for_check) {
            None => errors.push((
                line,
                PlanError::UnknownTool {
                    task: t.id.clone(),
                    tool: t.tool.clone(),
                    known: known_tools.clone(),
                },
            )),
            Some(problems) => {
                for (pointer, message) in problems {
                    let touches_ref = ref_pointers
                        .iter()
                        .any(|r| r.starts_with(&pointer) || pointer.starts_with(r.as_str()));
                    if !touches_ref {
                        errors.push((
                            line,
                            PlanError::BadInputs {
                                task: t.id.clone(),
                                tool: t.tool.clone(),
                                pointer,
                                message,
                            },
                        ));
                    }
                }
            }
        }
        let mut all_known = true;
        for c in &t.capabilities {
            if !capabilities.contains(c.as_str()) {
                all_known = false;
                errors.push((
                    line,
                    PlanError::MissingCapability {
                        task: t.id.clone(),
                        capability: c.clone(),
                    },
                ));
            }
        }
        if all_known
            && t.capabilities.len() > 1
            && !agents.iter().any(|a| a.has_all(&t.capabilities))
        {
            errors.push((
                line,
                PlanError::NoSingleAgent {
                    task: t.id.clone(),
                    capabilities: t.capabilities.join(", "),
                },
            ));
        }
        let mut manual = 0;
        for (g, gate) in t.gates.iter().enumerate() {
            let mut problem = gate_problem(gate);
            if matches!(gate, GateSpec::Manual { .. }) {
                manual += 1;
                if manual > 1 {
                    problem = Some("a task has at most one manual gate".into());
                }
            }
            if let Some(why) = problem {
                errors.push((
                    line,
                    PlanError::BadGate {
                        task: t.id.clone(),
                        index: g + 1,
                        kind: gate.kind(),
                        why,
                    },
                ));
            }
        }
        let timeout = positive_seconds(
            t.timeout_s,
            format!("task `{}`: timeout_s", t.id),
            &mut errors,
            line,
        );
        if let Some(key) = keys[i].clone() {
            tasks.push(Task {
                index: i,
                key,
                tool: t.tool.clone(),
                deps: deps.into_iter().collect(),
                capabilities: t.capabilities.clone(),
                complexity: t.complexity,
                priority: t.priority,
                gates: t.gates.clone(),
                retry: t.retry,
                timeout,
            });
        }
    }

    // Cycles among the tasks that have an id, reported with every other problem.
    let mut graph = DiGraph::with_capacity(tasks.len(), tasks.len());
    let mut node_of: HashMap<usize, NodeIndex> = HashMap::with_capacity(tasks.len());
    for t in &tasks {
        node_of.insert(t.index, graph.add_node(t.index));
    }
    for t in &tasks {
        for d in &t.deps {
            if let Some(&from) = node_of.get(d) {
                graph.add_edge(from, node_of[&t.index], ());
            }
        }
    }
    for cycle in cycles(&graph) {
        let names: Vec<String> = cycle.iter().map(|&i| plan.tasks[i].id.clone()).collect();
        errors.push((line_of(cycle[0]), PlanError::Cycle(names)));
    }
    if errors.is_empty() {
        return Ok(ValidatedPlan {
            plan: source.plan.clone(),
            inputs: resolved,
            graph: TaskGraph {
                plan: source.plan.clone(),
                graph,
                tasks,
                by_key,
            },
        });
    }
    Err(PlanErrors(
        errors
            .into_iter()
            .map(|(line, e)| issue(source.origin.as_ref(), line, e))
            .collect(),
    ))
}

fn gate_problem(gate: &GateSpec) -> Option<String> {
    match gate {
        GateSpec::Pattern { regex, output } => {
            if output.is_empty() {
                return Some("`output` must name an output".into());
            }
            regex::Regex::new(regex)
                .err()
                .map(|e| format!("bad regex: {e}"))
        }
        GateSpec::JsonSchema { schema, .. } => jsonschema::validator_for(schema)
            .err()
            .map(|e| format!("bad schema: {e}")),
        GateSpec::Command { argv, timeout_s } => {
            if argv.is_empty() || argv[0].is_empty() {
                Some("`argv` must name a command".into())
            } else if matches!(timeout_s, Some(s) if !(s.is_finite() && *s > 0.0)) {
                Some("`timeout_s` must be above 0".into())
            } else {
                None
            }
        }
        GateSpec::Manual {
            approvers,
            timeout_s,
            ..
        } => {
            if approvers.iter().any(|a| a.trim().is_empty()) {
                Some("`approvers` must be names".into())
            } else if matches!(timeout_s, Some(s) if !(s.is_finite() && *s > 0.0)) {
                Some("`timeout_s` must be above 0".into())
            } else {
                None
            }
        }
        GateSpec::LlmJudge { rubric, output } => {
            if rubric.trim().is_empty() {
                Some("`rubric` must say what the outputs must satisfy".into())
            } else if output.as_deref().is_some_and(str::is_empty) {
                Some("`output` must name an output".into())
            } else {
                None
            }
        }
    }
}

/// Values for the plan's inputs that have no default (typed placeholders), so a template's
/// plan can be validated before anyone gives it inputs.
pub fn placeholder_inputs(plan: &Plan) -> Map<String, Value> {
    use super::plan::InputType;
    plan.inputs
        .iter()
        .filter(|(_, spec)| spec.default.is_none())
        .map(|(name, spec)| {
            let v = match spec.kind {
                InputType::String => Value::String("placeholder".into()),
                InputType::Integer | InputType::Number => Value::from(0),
                InputType::Boolean => Value::Bool(false),
                InputType::Object => Value::Object(Map::new()),
                InputType::Array => Value::Array(Vec::new()),
            };
            (name.clone(), v)
        })
        .collect()
}

/// Every dependency cycle, each as task indices in edge order starting from its first task
/// in plan order (the first task repeated at the end).
fn cycles(graph: &DiGraph<usize, ()>) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for scc in petgraph::algo::tarjan_scc(graph) {
        let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let members: HashSet<NodeIndex> = scc.iter().copied().collect();
        let start = *scc
            .iter()
            .min()
            .expect("a strongly connected component is never empty");
        // Walk to the smallest unvisited successor inside the component until back at start.
        let mut path = vec![start];
        let mut seen: HashSet<NodeIndex> = HashSet::from([start]);
        let mut cur = start;
        loop {
            let mut next: Vec<NodeIndex> = graph
                .neighbors_directed(cur, Direction::Outgoing)
                .filter(|n| members.contains(n))
                .collect();
            next.sort();
            if path.len() > 1 && next.contains(&start) && seen.len() == members.len() {
                break;
            }
            match next.into_iter().find(|n| !seen.contains(n)) {
                Some(n) => {
                    seen.insert(n);
                    path.push(n);
                    cur = n;
                }
                None => break,
            }
        }
        let mut cycle: Vec<usize> = if seen.len() == members.len() {
            path.iter().map(|n| graph[*n]).collect()
        } else {
            let mut all: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
            all.sort();
            all
        };
        cycle.push(graph[start]);
        out.push(cycle);
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::Format;

    struct Tools;
    impl ToolCatalog for Tools {
        fn check_inputs(&self, tool: &str, inputs: &Value) -> Option<Vec<(String, String)>> {
            match tool {
                "test:echo" => Some(vec![]),
                "needs-n" => Some(if inputs.get("n").is_some_and(Value::is_i64) {
                    vec![]
                } else {
                    vec![("/n".into(), "must be an integer".into())]
                }),
                _ => None,
            }
        }
        fn names(&self) -> Vec<String> {
            vec!["test:echo".into(), "needs-n".into()]
        }
    }

    fn check(text: &str) -> Result<ValidatedPlan, PlanErrors> {
        let src = PlanSource::parse(text, Format::Yaml, Some("p.yaml")).unwrap();
        let agents = [
            crate::domain::AgentSpec::new("a", crate::domain::Role::Worker)
                .with_capabilities(["shell"]),
        ];
        validate(&src, &Map::new(), &Tools, &agents)
    }

    #[test]
    fn cycle_lists_every_task_on_it() {
        let e = check("name: c\ntasks:\n  - { id: red, tool: test:echo, depends_on: [blue] }\n  - { id: green, tool: test:echo, depends_on: [red] }\n  - { id: blue, tool: test:echo, depends_on: [green] }\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.yaml:3: dependency cycle: red -> green -> blue -> red"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let e = check("name: x\ntasks:\n  - { id: a, tool: nope }\n  - { id: a, tool: test:echo }\n  - { id: b, tool: test:echo, depends_on: [zzz], capabilities: [gpu] }\n").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("p.yaml:3: task `a`: unknown tool `nope`"),
            "{text}"
        );
        assert!(
            text.contains("p.yaml:4: task `a`: duplicate task id"),
            "{text}"
        );
        assert!(
            text.contains("p.yaml:5: task `b` depends on unknown task `zzz`"),
            "{text}"
        );
        assert!(text.contains("capability `gpu`"), "{text}");
    }

    #[test]
    fn references_add_dependencies_and_are_checked() {
        let ok = check("name: x\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: b, tool: test:echo, inputs: { v: \"${tasks.a.outputs.x}\" } }\n").unwrap();
        assert_eq!(ok.graph.task(1).deps, vec![0]);
        assert_eq!(ok.graph.dependents(0).collect::<Vec<_>>(), vec![1]);
        let e = check("name: x\ntasks:\n  - { id: b, tool: test:echo, inputs: { v: \"${tasks.nope.outputs.x}\", w: \"${inputs.q}\" } }\n").unwrap_err();
        assert!(e.to_string().contains("unknown task `nope`"), "{e}");
        assert!(
            e.to_string().contains("`${inputs.q}` names no input"),
            "{e}"
        );
    }

    #[test]
    fn schema_errors_skip_values_that_hold_task_references() {
        check("name: x\ninputs: { n: { type: integer, default: 3 } }\ntasks:\n  - { id: a, tool: needs-n, inputs: { n: \"${inputs.n}\" } }\n").unwrap();
        check("name: x\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: b, tool: needs-n, inputs: { n: \"${tasks.a.outputs.n}\" } }\n").unwrap();
        let e = check("name: x\ntasks:\n  - { id: a, tool: needs-n, inputs: { n: nope } }\n")
            .unwrap_err();
        assert!(e.to_string().contains("invalid at `/n`"), "{e}");
    }

    #[test]
    fn missing_required_input_is_an_error() {
        let e = check(
            "name: x\ninputs: { who: { type: string } }\ntasks:\n  - { id: a, tool: test:echo }\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("missing required plan input `who`"),
            "{e}"
        );
    }
}
