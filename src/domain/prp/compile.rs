//! A checked PRP as the plan of a run: preconditions, the steps one after another,
//! postconditions, and the rollback task that runs when one of them failed; and the context
//! its agents and models are given.

use super::{
    Prp, RollbackPolicy, CHECK_TOOL, POST_TASK, PRE_TASK, ROLLBACK_TASK, ROLLBACK_TOOL, STEP_TOOL,
};
use crate::domain::plan::{Plan, RunIf, TaskSpec};
use serde_json::{json, Map, Value};

impl Prp {
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
            tasks,
            ..Plan::new(self.name.clone())
        }
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
