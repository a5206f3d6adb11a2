//! `gather:plan`: the last task of a gathering run. It merges the answers of the
//! questionnaire's phases and turns them into a plan — a template instantiated with inputs
//! mapped from the answers, or the planner's plan for a goal written with them, given the
//! answers and the codebase analysis as context — checked like any plan. Its outputs are the
//! answers, the plan and how it was made; `answers.json` and `plan.json` are its artifacts.

use super::{Tool, ToolContext, ToolError, ToolOutput};
use crate::domain::plan::{Format, PlanSource};
use crate::domain::questionnaire::PLAN_TOOL;
use crate::planner::{self, PlannerError, PlannerOptions};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Makes a gathering run's plan.
pub struct GatherPlan;

/// Most bytes of the analysis given to the planner.
const MAX_CONTEXT: usize = 24 * 1024;

fn merged(answers: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for part in answers.as_array().into_iter().flatten() {
        if let Some(m) = part.as_object() {
            for (k, v) in m {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// What the planner is asked: the goal, the answers and what is known of the codebase.
pub(crate) fn goal_request(goal: &str, answers: &Map<String, Value>, analysis: &Value) -> String {
    let mut out = format!(
        "Goal: {goal}\n\nThe user's answers to the requirements questions, by question id:\n{}\n",
        Value::Object(answers.clone())
    );
    if analysis.as_object().is_some_and(|m| !m.is_empty()) {
        out.push_str(&format!(
            "\nWhat is known of the codebase (analysis without a model):\n{}\n",
            super::agent::cut(&analysis.to_string(), MAX_CONTEXT)
        ));
    }
    out
}

impl Tool for GatherPlan {
    fn name(&self) -> &str {
        PLAN_TOOL
    }

    fn description(&self) -> &str {
        "Makes a plan from gathered answers: a template with inputs mapped from them, or the planner's plan for a goal."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["answers"],
            "properties": {
                "questionnaire": {"type": "string"},
                "answers": {"type": "array", "items": {"type": "object"}},
                "analysis": {"type": "object"},
                "template": {"type": "string"},
                "inputs": {"type": "object"},
                "goal": {"type": "string", "minLength": 1}
            },
            "additionalProperties": false
        })
    }

    fn check_inputs(&self, inputs: &Value) -> Vec<(String, String)> {
        match (inputs.get("template"), inputs.get("goal")) {
            (Some(_), Some(_)) | (None, None) => {
                vec![(
                    String::new(),
                    "give `template` (with `inputs`) or `goal`".into(),
                )]
            }
            _ => Vec::new(),
        }
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let link = ctx.link.0.clone();
            let answers = merged(&ctx.inputs["answers"]);
            let analysis = ctx.inputs.get("analysis").cloned().unwrap_or(json!({}));
            let mut out = ToolOutput::default().output("answers", Value::Object(answers.clone()));
            if let Some(id) = ctx.inputs.get("template").and_then(Value::as_str) {
                let project = link
                    .store()
                    .run(ctx.corr.run)
                    .await
                    .map_err(|e| ToolError::Io(e.to_string()))?
                    .project;
                let t = link
                    .store()
                    .template(&project, id)
                    .await
                    .map_err(|e| ToolError::Io(e.to_string()))?
                    .ok_or_else(|| {
                        ToolError::failed(format!("no template `{id}` for project {project}"))
                    })?;
                let inputs = ctx
                    .inputs
                    .get("inputs")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let src = PlanSource {
                    plan: Arc::new(t.spec.plan.clone()),
                    origin: Some(format!("template {id}")),
                    task_lines: Vec::new(),
                };
                let checked =
                    crate::domain::plan::validate(&src, &inputs, link.tools(), link.agents())
                        .map_err(|e| {
                            ToolError::failed(format!("template `{id}` with the answers: {e}"))
                        })?;
                // The plan as it will run: the template's, its inputs filled in.
                let plan = checked.with_inputs_resolved();
                out = out
                    .output("source", "template")
                    .output("template", id)
                    .output("inputs", Value::Object(inputs))
                    .output("plan", serde_json::to_value(&plan).unwrap_or(Value::Null));
            } else {
                let goal = ctx
                    .inputs
                    .get("goal")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let system = planner::system_prompt(link.tools(), link.agents());
                let models = ctx.models.clone();
                let complete = |a| {
                    let models = models.clone();
                    async move { models.complete(&a).await }
                };
                let empty = Map::new();
                let answer = planner::ask_until_valid(
                    complete,
                    system,
                    goal_request(goal, &answers, &analysis),
                    PlannerOptions::default(),
                    |src| {
                        crate::domain::plan::validate(src, &empty, link.tools(), link.agents())
                            .map(|_| src.plan.clone())
                            .map_err(|e| e.to_string())
                    },
                )
                .await;
                let (plan, rounds, model) = match answer {
                    Ok((_, plan, rounds, model)) => (plan, rounds, model),
                    Err(PlannerError::Call(e)) => return Err(e.into()),
                    Err(e) => return Err(ToolError::failed(format!("the plan for the goal: {e}"))),
                };
                out = out
                    .output("source", "goal")
                    .output("goal", goal)
                    .output("inputs", json!({}))
                    .output("plan", serde_json::to_value(&*plan).unwrap_or(Value::Null))
                    .output("rounds", rounds)
                    .output("model", model);
            }
            for (name, key) in [("answers.json", "answers"), ("plan.json", "plan")] {
                let bytes = serde_json::to_vec_pretty(&out.outputs[key]).unwrap_or_default();
                let blob = ctx
                    .env
                    .blobs
                    .put(&bytes)
                    .await
                    .map_err(|e| ToolError::Io(e.to_string()))?;
                out.artifacts.push((name.to_string(), blob));
            }
            Ok(out)
        })
    }
}

/// A plan a gathering run made, as its `plan` output holds it.
///
/// # Errors
/// When the output is not a plan.
pub fn plan_of(outputs: &Value) -> Result<PlanSource, String> {
    let text = outputs
        .get("plan")
        .map(Value::to_string)
        .ok_or("the gathering run made no plan")?;
    PlanSource::parse(&text, Format::Json, Some("the gathered plan")).map_err(|e| e.to_string())
}
