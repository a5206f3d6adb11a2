//! The check of a list of tasks: the plan's own, or a decomposition's sub-plan (static in the
//! plan, planned by a model, or made from a `for_each` template). Ids, dependencies,
//! references, tools, capabilities, gates and `decompose` keys are checked the same way at
//! every depth; a sub-plan's tasks may name their siblings and, outside them, the tasks their
//! decomposed task depends on (those have succeeded before the subtasks exist). At run time
//! a checked sub-plan is rewritten to full ids (`PARENT.CHILD`) before it joins the graph.

use super::{reserved_id, Form, GateSpec, InputSpec, Merge, PlanError, TaskSpec, ToolCatalog};
use crate::domain::graph::Task;
use crate::domain::ids::TaskKey;
use crate::domain::reference::{self, Reference};
use crate::domain::AgentSpec;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// Problems found, each with the line it is on (when known).
pub(crate) type Found = Vec<(Option<usize>, PlanError)>;

/// Where a list of tasks sits and what it may name.
pub(crate) struct Scope<'a> {
    /// Full id of the decomposed task whose sub-plan this is (none for the plan's tasks).
    pub parent: Option<&'a str>,
    /// The full id of a task outside the list that a name used inside it stands for, when
    /// the tasks may name it (it is done before they run).
    pub outer: &'a dyn Fn(&str) -> Option<String>,
    /// The item's name inside a `for_each` template (`${item.NAME}`).
    pub item: Option<&'a str>,
    /// The plan's declared inputs.
    pub declared: &'a BTreeMap<String, InputSpec>,
    /// The plan's input values.
    pub resolved: &'a Map<String, Value>,
    /// The line of the task at a position of the list, when known.
    pub line: &'a dyn Fn(usize) -> Option<usize>,
    /// Tools.
    pub tools: &'a dyn ToolCatalog,
    /// Registered agents.
    pub agents: &'a [AgentSpec],
}

impl Scope<'_> {
    /// The full id of sibling `id`.
    fn full(&self, id: &str) -> String {
        match self.parent {
            Some(p) => format!("{p}.{id}"),
            None => id.to_string(),
        }
    }
}

/// A checked list: its tasks (indices and dependencies within the list, keys as written) and
/// the full ids of the outside tasks its tasks name, by the name used.
pub(crate) struct Checked {
    pub tasks: Vec<Task>,
    pub by_key: HashMap<TaskKey, usize>,
    pub outer: HashMap<String, String>,
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

/// Fills in plan inputs only (task and item references stay as written).
pub(crate) fn with_plan_inputs(value: &Value, resolved: &Map<String, Value>) -> Value {
    reference::resolve(value, &InputsOnly(resolved), reference::inputs_only)
        .unwrap_or_else(|_| value.clone())
}

pub(crate) fn positive_seconds(
    v: Option<f64>,
    field: String,
    errors: &mut Found,
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

/// Checks `specs` in `scope`, recording every problem in `errors`.
pub(crate) fn check_tasks(specs: &[TaskSpec], scope: &Scope<'_>, errors: &mut Found) -> Checked {
    let capabilities: HashSet<&str> = scope
        .agents
        .iter()
        .flat_map(|a| a.capabilities.iter().map(String::as_str))
        .collect();

    // Ids.
    let mut by_key: HashMap<TaskKey, usize> = HashMap::with_capacity(specs.len());
    let mut keys: Vec<Option<TaskKey>> = Vec::with_capacity(specs.len());
    for (i, t) in specs.iter().enumerate() {
        match TaskKey::parse(&t.id) {
            Ok(k) => {
                if let Some(&first) = by_key.get(&k) {
                    errors.push((
                        (scope.line)(i),
                        PlanError::DuplicateId {
                            task: scope.full(&t.id),
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
                let whose = match scope.parent {
                    Some(p) => format!("subtask #{} of `{p}`", i + 1),
                    None => format!("task #{}", i + 1),
                };
                errors.push((
                    (scope.line)(i),
                    PlanError::BadTaskId(format!("{whose}: {why}")),
                ));
                keys.push(None);
            }
        }
    }

    let mut outer_used: HashMap<String, String> = HashMap::new();
    let known_tools = scope.tools.names().join(", ");
    let mut tasks = Vec::with_capacity(specs.len());
    for (i, t) in specs.iter().enumerate() {
        let line = (scope.line)(i);
        let name = scope.full(&t.id);
        let mut deps: BTreeSet<usize> = BTreeSet::new();
        // A name a task uses for another: a sibling (a dependency) or an outside task.
        let mut name_task = |other: &str, errors: &mut Found, unknown: PlanError| {
            if let Some(&j) = by_key.get(other) {
                if j == i {
                    return Some(j);
                }
                deps.insert(j);
                return Some(j);
            }
            match (scope.outer)(other) {
                Some(full) => {
                    outer_used.insert(other.to_string(), full);
                }
                None => errors.push((line, unknown)),
            }
            None
        };
        for d in &t.depends_on {
            let unknown = PlanError::UnknownDependency {
                task: name.clone(),
                missing: d.clone(),
            };
            if name_task(d, errors, unknown) == Some(i) {
                errors.push((line, PlanError::Cycle(vec![name.clone(), name.clone()])));
            }
        }
        if t.run_if == super::RunIf::Failed && t.depends_on.is_empty() {
            errors.push((
                line,
                PlanError::BadTool {
                    task: name.clone(),
                    why:
                        "`run_if: failed` needs `depends_on`: the task runs when one of them failed"
                            .into(),
                },
            ));
        }
        let inputs_value = Value::Object(t.inputs.clone());
        let mut ref_pointers: Vec<String> = Vec::new();
        let mut refs = match reference::references_in(&inputs_value) {
            Ok(refs) => refs,
            Err(e) => {
                errors.push((
                    line,
                    PlanError::BadReference {
                        task: name.clone(),
                        why: e.to_string(),
                    },
                ));
                Vec::new()
            }
        };
        // A `for_each` list is read like an input of the task.
        if let Some(list) = t.decompose.as_ref().and_then(|d| d.for_each.as_deref()) {
            match reference::references(list) {
                Ok(found) if found.len() == 1 && list.trim().starts_with("${") && list.trim().ends_with('}') => {
                    refs.push(("/decompose/for_each".into(), found[0].clone()))
                }
                Ok(_) => errors.push((
                    line,
                    PlanError::BadDecompose {
                        task: name.clone(),
                        why: format!("`for_each` must be one reference to a list (`${{tasks.ID.outputs.PATH}}` or `${{inputs.NAME}}`), got `{list}`"),
                    },
                )),
                Err(e) => errors.push((
                    line,
                    PlanError::BadReference {
                        task: name.clone(),
                        why: e.to_string(),
                    },
                )),
            }
        }
        for (pointer, r) in refs {
            let bad = |why: String| PlanError::BadReference {
                task: name.clone(),
                why,
            };
            match r {
                Reference::Input(n) if !scope.declared.contains_key(&n) => errors.push((
                    line,
                    bad(format!("`${{inputs.{n}}}` names no input of the plan")),
                )),
                Reference::Input(_) => {}
                Reference::Item { name: item, .. } => {
                    ref_pointers.push(pointer);
                    match scope.item {
                        Some(n) if n == item => {}
                        Some(n) => errors.push((
                            line,
                            bad(format!(
                                "`${{item.{item}}}` names no item: the item here is `{n}`"
                            )),
                        )),
                        None => errors.push((
                            line,
                            bad(format!(
                                "`${{item.{item}}}` is known only inside a `for_each` task"
                            )),
                        )),
                    }
                }
                Reference::TaskOutput { task, .. } => {
                    ref_pointers.push(pointer);
                    let unknown = bad(format!(
                        "`${{tasks.{task}.outputs…}}` refers to unknown task `{task}`"
                    ));
                    if name_task(&task, errors, unknown) == Some(i) {
                        errors.push((
                            line,
                            bad(format!(
                                "`${{tasks.{task}.outputs…}}` refers to the task itself"
                            )),
                        ));
                    }
                }
            }
        }
        check_tool(t, &name, line, scope, &ref_pointers, &known_tools, errors);
        let mut all_known = true;
        for c in &t.capabilities {
            if !capabilities.contains(c.as_str()) {
                all_known = false;
                errors.push((
                    line,
                    PlanError::MissingCapability {
                        task: name.clone(),
                        capability: c.clone(),
                    },
                ));
            }
        }
        if all_known
            && t.capabilities.len() > 1
            && !scope.agents.iter().any(|a| a.has_all(&t.capabilities))
        {
            errors.push((
                line,
                PlanError::NoSingleAgent {
                    task: name.clone(),
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
                        task: name.clone(),
                        index: g + 1,
                        kind: gate.kind(),
                        why,
                    },
                ));
            }
        }
        let timeout = positive_seconds(
            t.timeout_s,
            format!("task `{name}`: timeout_s"),
            errors,
            line,
        );
        if let Some(key) = keys[i].clone() {
            tasks.push(Task {
                index: i,
                key,
                tool: t.tool_name().to_string(),
                deps: deps.into_iter().collect(),
                capabilities: t.capabilities.clone(),
                complexity: t.complexity,
                priority: t.priority,
                gates: t.gates.clone(),
                retry: t.retry,
                timeout,
                parent: None,
                depth: 0,
                run_if: t.run_if,
            });
        }
    }

    // Decompositions, once every sibling's dependencies are known.
    let positions: HashMap<usize, usize> = tasks
        .iter()
        .enumerate()
        .map(|(p, t)| (t.index, p))
        .collect();
    for t in &tasks {
        if specs[t.index].decompose.is_some() {
            check_decompose(specs, t.index, &tasks, &positions, scope, errors);
        }
    }
    Checked {
        tasks,
        by_key,
        outer: outer_used,
    }
}

/// Its tool exists and accepts its inputs (with plan inputs filled in; values still holding
/// references are checked again when the task runs); a decomposed task names no tool.
fn check_tool(
    t: &TaskSpec,
    name: &str,
    line: Option<usize>,
    scope: &Scope<'_>,
    ref_pointers: &[String],
    known_tools: &str,
    errors: &mut Found,
) {
    if t.decompose.is_some() {
        if !t.tool.is_empty() {
            errors.push((line, PlanError::BadTool {
                task: name.to_string(),
                why: format!("a task with `decompose` names no `tool` (got `{}`): its subtasks name theirs", t.tool),
            }));
        }
        return;
    }
    if t.tool.is_empty() {
        errors.push((
            line,
            PlanError::BadTool {
                task: name.to_string(),
                why: format!("names no `tool` (known tools: {known_tools}) and has no `decompose`"),
            },
        ));
        return;
    }
    let for_check = with_plan_inputs(&Value::Object(t.inputs.clone()), scope.resolved);
    match scope.tools.check_inputs(&t.tool, &for_check) {
        None => errors.push((
            line,
            PlanError::UnknownTool {
                task: name.to_string(),
                tool: t.tool.clone(),
                known: known_tools.to_string(),
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
                            task: name.to_string(),
                            tool: t.tool.clone(),
                            pointer,
                            message,
                        },
                    ));
                }
            }
        }
    }
}

/// The checks of task `i`'s `decompose`: its form, merge and limits keys, and its static
/// sub-plan or `for_each` template, checked in the scope its subtasks will have.
fn check_decompose(
    specs: &[TaskSpec],
    i: usize,
    tasks: &[Task],
    positions: &HashMap<usize, usize>,
    scope: &Scope<'_>,
    errors: &mut Found,
) {
    let t = &specs[i];
    let Some(d) = t.decompose.as_deref() else {
        return;
    };
    let line = (scope.line)(i);
    let name = scope.full(&t.id);
    let bad = |why: String| {
        (
            line,
            PlanError::BadDecompose {
                task: name.clone(),
                why,
            },
        )
    };
    let form = match d.form() {
        Ok(f) => f,
        Err(why) => return errors.push(bad(why)),
    };
    if d.merge() == Merge::Llm && d.merge_instructions().is_none_or(|s| s.trim().is_empty()) {
        errors.push(bad(
            "`merge: llm` needs `instructions` (merge: { kind: llm, instructions: \"…\" })".into(),
        ));
    }
    if d.merge_output().is_some_and(str::is_empty) {
        errors.push(bad("`merge.output` must name an output".into()));
    }
    if d.max_subtasks == Some(0) {
        errors.push(bad("`max_subtasks` must be at least 1".into()));
    }
    // What the subtasks may name outside themselves: this task's dependencies, transitively
    // (by their names in this list), then what this list may name.
    let mut closure: HashSet<usize> = HashSet::new();
    let mut stack: Vec<usize> = positions
        .get(&i)
        .map(|&p| tasks[p].deps.clone())
        .unwrap_or_default();
    while let Some(j) = stack.pop() {
        if closure.insert(j) {
            if let Some(&p) = positions.get(&j) {
                stack.extend(tasks[p].deps.iter().copied());
            }
        }
    }
    let outer = |n: &str| -> Option<String> {
        match specs.iter().position(|s| s.id == n) {
            Some(j) if closure.contains(&j) => Some(scope.full(n)),
            Some(_) => None,
            None => (scope.outer)(n),
        }
    };
    let whole_line = |_: usize| line;
    let inner = Scope {
        parent: Some(&name),
        outer: &outer,
        item: scope.item,
        declared: scope.declared,
        resolved: scope.resolved,
        line: &whole_line,
        tools: scope.tools,
        agents: scope.agents,
    };
    match form {
        Form::Static(subtasks) => {
            if subtasks.is_empty() {
                errors.push(bad("`subtasks` is empty".into()));
            }
            for s in subtasks {
                if let Some(why) = reserved_id(&s.id, d) {
                    errors.push(bad(why.into()));
                }
            }
            let checked = check_tasks(subtasks, &inner, errors);
            report_cycles(&checked, &name, line, errors);
        }
        Form::ForEach { item, task, .. } => {
            if let Err(why) = TaskKey::parse(item) {
                errors.push(bad(format!("`as`: {why}")));
            }
            // Named `PARENT.ITEM` in messages: it stands for every item's subtask.
            let template = TaskSpec {
                id: "ITEM".into(),
                ..task.clone()
            };
            let scope = Scope {
                item: Some(item),
                ..inner
            };
            check_tasks(std::slice::from_ref(&template), &scope, errors);
        }
        Form::Planner { .. } => {}
    }
}

/// Dependency cycles among checked siblings, as errors naming full ids.
pub(crate) fn report_cycles(
    checked: &Checked,
    parent: &str,
    line: Option<usize>,
    errors: &mut Found,
) {
    for cycle in crate::domain::graph::cycles_among(&checked.tasks) {
        let names = cycle
            .iter()
            .map(|&i| {
                checked
                    .tasks
                    .iter()
                    .find(|t| t.index == i)
                    .map(|t| format!("{parent}.{}", t.key))
                    .unwrap_or_default()
            })
            .collect();
        errors.push((line, PlanError::Cycle(names)));
    }
}

pub(crate) fn gate_problem(gate: &GateSpec) -> Option<String> {
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

/// A sub-plan of task `parent` checked in `scope` and rewritten to full ids: each subtask's
/// id is `PARENT.ID`; references to siblings and outside tasks, in its inputs and its own
/// `for_each` list, name them by full id; `depends_on` lists every dependency by full id.
///
/// # Errors
/// Every problem of the sub-plan.
pub(crate) fn rewrite(
    parent: &str,
    mut specs: Vec<TaskSpec>,
    scope: &Scope<'_>,
) -> Result<Vec<TaskSpec>, Found> {
    let mut errors = Found::new();
    let checked = check_tasks(&specs, scope, &mut errors);
    report_cycles(&checked, parent, None, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let full = |id: &str| format!("{parent}.{id}");
    let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
    let rename = |n: &str| -> Option<String> {
        if checked.by_key.contains_key(n) {
            Some(full(n))
        } else {
            checked.outer.get(n).cloned()
        }
    };
    for (spec, task) in specs.iter_mut().zip(&checked.tasks) {
        let bad = |e: reference::BadReference, id: &str| {
            (
                None,
                PlanError::BadReference {
                    task: full(id),
                    why: e.to_string(),
                },
            )
        };
        match reference::rename_tasks(&Value::Object(std::mem::take(&mut spec.inputs)), &rename) {
            Ok(Value::Object(m)) => spec.inputs = m,
            Ok(_) => {}
            Err(e) => return Err(vec![bad(e, &spec.id)]),
        }
        if let Some(d) = spec.decompose.as_deref_mut() {
            if let Some(list) = &d.for_each {
                match reference::rename_tasks(&Value::String(list.clone()), &rename) {
                    Ok(Value::String(s)) => d.for_each = Some(s),
                    Ok(_) => {}
                    Err(e) => return Err(vec![bad(e, &spec.id)]),
                }
            }
        }
        spec.depends_on = task.deps.iter().map(|&j| full(&ids[j])).collect();
        spec.id = full(&spec.id);
    }
    Ok(specs)
}
