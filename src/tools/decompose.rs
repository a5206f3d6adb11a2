//! The decomposing agent's part of a decomposed task: the attempt an agent takes when the
//! supervisor delegates the task to it. A static sub-plan or a `for_each` needs nothing of
//! the agent but its acceptance (the coordinator expands and checks the sub-plan, so the
//! agent that took it becomes the subtasks' parent agent); a planned sub-plan is written by
//! the agent's model through the planner (catalogue of tools and agents, the sub-plan
//! checked in the scope its subtasks will have, bounded repair).

use super::{Tool, ToolContext, ToolError, ToolOutput};
use crate::domain::plan::{subplan, Plan, TaskSpec};
use crate::planner::{self, PlannerError, PlannerOptions};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// What a decomposed task's attempt does.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Accept the task: the sub-plan is in the plan or made from a list.
    Accept,
    /// Ask the agent's model for the sub-plan.
    Plan(Box<Planning>),
}

/// What the planner of a sub-plan needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Planning {
    /// The decomposed task's id.
    pub parent: String,
    /// What the sub-plan achieves.
    pub goal: String,
    /// The run's plan (its declared inputs) and input values.
    pub plan: Arc<Plan>,
    pub inputs: Map<String, Value>,
    /// Outside tasks the subtasks may name: name used → full id.
    pub names: HashMap<String, String>,
    /// Most subtasks allowed.
    pub most: u32,
}

impl Planning {
    /// The problems of a sub-plan in the scope its subtasks will have, or its tasks.
    pub(crate) fn check(
        &self,
        tasks: &[TaskSpec],
        tools: &dyn crate::domain::plan::ToolCatalog,
        agents: &[crate::domain::AgentSpec],
    ) -> Result<(), String> {
        if tasks.is_empty() {
            return Err("the plan has no tasks".into());
        }
        if tasks.len() > self.most as usize {
            return Err(format!(
                "the plan has {} tasks; at most {} are allowed",
                tasks.len(),
                self.most
            ));
        }
        let outer = |n: &str| self.names.get(n).cloned();
        let no_line = |_: usize| None;
        let scope = subplan::Scope {
            parent: Some(&self.parent),
            outer: &outer,
            item: None,
            declared: &self.plan.inputs,
            resolved: &self.inputs,
            line: &no_line,
            tools,
            agents,
        };
        let mut errors = subplan::Found::new();
        for t in tasks {
            if t.id == "outputs" {
                errors.push((
                    None,
                    crate::domain::plan::PlanError::BadTaskId(
                        "`outputs` cannot be a task id".into(),
                    ),
                ));
            }
        }
        let checked = subplan::check_tasks(tasks, &scope, &mut errors);
        subplan::report_cycles(&checked, &self.parent, None, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            let lines: Vec<String> = errors.into_iter().map(|(_, e)| e.to_string()).collect();
            Err(lines.join("\n"))
        }
    }
}

/// The tool of a decomposed task's attempt.
pub(crate) struct Decomposer {
    pub step: Step,
}

impl Tool for Decomposer {
    fn name(&self) -> &str {
        crate::domain::plan::DECOMPOSE_TOOL
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object"})
    }

    fn description(&self) -> &str {
        "Splits a task into subtasks and merges their results."
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            if ctx.cancel.is_cancelled() {
                return Err(ToolError::Cancelled);
            }
            match &self.step {
                Step::Accept => Ok(ToolOutput::default()),
                Step::Plan(p) => plan(p, ctx).await,
            }
        })
    }
}

async fn plan(p: &Planning, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
    let link = ctx.link.0.clone();
    let system = planner::system_prompt(link.tools(), link.agents());
    let mut names: Vec<&str> = p.names.keys().map(String::as_str).collect();
    names.sort_unstable();
    let request = planner::subplan_request(&p.parent, &p.goal, &ctx.inputs, &names, p.most);
    let models = ctx.models.clone();
    let complete = |a| {
        let models = models.clone();
        async move { models.complete(&a).await }
    };
    let answer = planner::ask_until_valid(
        complete,
        system,
        request,
        PlannerOptions::default(),
        |src| {
            p.check(&src.plan.tasks, link.tools(), link.agents())
                .map(|()| src.plan.tasks.clone())
        },
    )
    .await;
    match answer {
        Ok((_, tasks, rounds, model)) => Ok(ToolOutput::default()
            .output(
                "subtasks",
                serde_json::to_value(tasks).unwrap_or(Value::Null),
            )
            .output("rounds", rounds)
            .output("model", model)),
        Err(PlannerError::Call(e)) => Err(e.into()),
        Err(e @ PlannerError::Rejected { .. }) => Err(ToolError::failed(format!(
            "the sub-plan of `{}`: {e}",
            p.parent
        ))),
    }
}
