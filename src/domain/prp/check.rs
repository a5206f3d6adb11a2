//! What is wrong with a PRP by itself (every problem at its key path), the order its steps
//! run in, and the check plan that has a runtime check what each step runs.

use super::{GateRef, Prp, MAX_RETRY, MAX_STEPS, POST_TASK, PRE_TASK, ROLLBACK_TASK};
use crate::domain::graph::cycles;
use crate::domain::ids::TaskKey;
use crate::domain::plan::{GateSpec, Plan, PlanSource, TaskSpec};
use petgraph::graph::DiGraph;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

/// Whether a gate decides by itself, without a model or a person.
fn deterministic(g: &GateSpec) -> bool {
    matches!(
        g,
        GateSpec::Command { .. } | GateSpec::Pattern { .. } | GateSpec::JsonSchema { .. }
    )
}

impl Prp {
    /// The gates `refs` name (rules resolved), with the problems of each at `at[N]`.
    pub(super) fn resolve(
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
                                crate::domain::names_or_none(&known)
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
                    (Some(f), None) => match crate::domain::relative_path(f, "file").err() {
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
                if let Err(why) = crate::domain::relative_path(dir, "`dir`") {
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
            if let Err(why) = crate::domain::relative_path(p, "path") {
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

    /// Each step's position, by id.
    fn step_index(&self) -> HashMap<&str, usize> {
        self.implementation
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect()
    }

    /// A cycle among the steps' `depends_on`, as step ids (the first repeated at the end).
    fn cycle(&self) -> Option<Vec<String>> {
        let steps = &self.implementation.steps;
        let index = self.step_index();
        let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(steps.len(), steps.len());
        let nodes: Vec<_> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
        for (i, s) in steps.iter().enumerate() {
            // A step naming itself is reported as such, not as a cycle.
            for j in s.depends_on.iter().filter_map(|d| index.get(d.as_str())) {
                if *j != i {
                    graph.add_edge(nodes[*j], nodes[i], ());
                }
            }
        }
        let cycle = cycles(&graph).into_iter().next()?;
        Some(cycle.into_iter().map(|k| steps[k].id.clone()).collect())
    }

    /// The steps in the order they run: the written order, except that a step comes after
    /// the steps it depends on. `None` when they make a cycle.
    pub fn order(&self) -> Option<Vec<usize>> {
        let steps = &self.implementation.steps;
        let index = self.step_index();
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
            tasks,
            ..Plan::new(self.name.clone())
        }
    }

    /// Every problem: the document's own ([`Prp::problems`]), then — when its steps are
    /// well formed — what `check` (a runtime's plan check) finds in its check plan
    /// ([`Prp::check_plan`]), at the steps' key paths.
    pub fn all_problems(
        &self,
        exists: &dyn Fn(&str) -> Result<(), String>,
        check: impl FnOnce(&PlanSource) -> Result<(), crate::domain::plan::PlanErrors>,
    ) -> Vec<(String, String)> {
        let mut found = self.problems(exists);
        if found
            .iter()
            .all(|(p, _)| !p.starts_with("implementation.steps"))
        {
            if let Err(errors) = check(&PlanSource::from_plan(self.check_plan())) {
                found.extend(self.plan_problems(&errors));
            }
        }
        found
    }

    /// The problems of the check plan ([`Prp::check_plan`]) at the steps' key paths.
    fn plan_problems(&self, errors: &crate::domain::plan::PlanErrors) -> Vec<(String, String)> {
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
}
