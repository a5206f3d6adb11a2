//! The plan check of the plan alone: every problem of a plan's graph, inputs, tools, gates
//! and capabilities, reported at once, each naming its task and, for files, its line; and
//! the typed inputs it runs with.

use super::error::issue;
use super::subplan::{check_tasks, positive_seconds, with_plan_inputs, Checked, Found, Scope};
use super::{Plan, PlanError, PlanErrors, PlanSource};
use crate::domain::graph::TaskGraph;
use serde_json::{Map, Value};

/// What validation needs to know about tools: whether one exists and what it accepts.
pub trait ToolCatalog {
    /// `None` when no tool has this name; otherwise the schema violations of `inputs`, each
    /// as (JSON pointer, message).
    fn check_inputs(&self, tool: &str, inputs: &Value) -> Option<Vec<(String, String)>>;
    /// Every tool name, for "did you mean" lists.
    fn names(&self) -> Vec<String>;
    /// The JSON Schema of a tool's inputs (what a planner is shown).
    fn input_schema(&self, _tool: &str) -> Option<Value> {
        None
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
            if let Value::Object(m) =
                with_plan_inputs(&Value::Object(std::mem::take(&mut t.inputs)), &self.inputs)
            {
                t.inputs = m;
            }
        }
        plan
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
        declared: crate::domain::names_or_none(&declared),
    }
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
    let plan = &source.plan;
    let line_of = |i: usize| source.task_lines.get(i).copied().flatten();
    let mut errors: Found = Vec::new();

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

    let line = |i: usize| line_of(i);
    let no_outer = |_: &str| None;
    let scope = Scope {
        parent: None,
        outer: &no_outer,
        item: None,
        declared: &plan.inputs,
        resolved: &resolved,
        line: &line,
        tools,
        agents,
    };
    let Checked { tasks, by_key, .. } = check_tasks(&plan.tasks, &scope, &mut errors);

    // Cycles among the tasks that have an id, reported with every other problem.
    let graph = match TaskGraph::build(source.plan.clone(), tasks, by_key) {
        Ok(graph) => Some(graph),
        Err(cycles) => {
            for cycle in cycles {
                let names: Vec<String> = cycle.iter().map(|&i| plan.tasks[i].id.clone()).collect();
                errors.push((line_of(cycle[0]), PlanError::Cycle(names)));
            }
            None
        }
    };
    if let (true, Some(graph)) = (errors.is_empty(), graph) {
        return Ok(ValidatedPlan {
            plan: source.plan.clone(),
            inputs: resolved,
            graph,
        });
    }
    Err(PlanErrors(
        errors
            .into_iter()
            .map(|(line, e)| issue(source.origin.as_ref(), line, e))
            .collect(),
    ))
}

/// Values for the plan's inputs that have no default (typed placeholders), so a template's
/// plan can be validated before anyone gives it inputs.
pub fn placeholder_inputs(plan: &Plan) -> Map<String, Value> {
    use super::InputType;
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
