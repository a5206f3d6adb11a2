//! The plan check: every reason a run is refused before it starts (the plan's graph, inputs,
//! tools and gates; the command policy; model tools with no provider configured), in one
//! place that needs no store, so `nofx validate`, `nofx run --dry-run`, `POST /runs` and
//! [`crate::Runtime::submit`] agree on what runs.

use crate::domain::plan::PlanSource;
use crate::domain::plan::{self, PlanError, PlanErrors, ValidatedPlan};
use crate::domain::AgentSpec;
use crate::models::Models;
use crate::tools::{CommandPolicy, ToolRegistry};
use serde_json::{Map, Value};

/// Checks `plan` with `inputs` against what a runtime has; lists every problem at once: the
/// plan's own, then the command policy's, then the model tools'.
pub(crate) fn check_plan(
    plan: &PlanSource,
    inputs: &Map<String, Value>,
    tools: &ToolRegistry,
    agents: &[AgentSpec],
    policy: &CommandPolicy,
    models: &Models,
) -> Result<ValidatedPlan, PlanErrors> {
    let v = plan::validate(plan, inputs, tools, agents);
    let mut denied = policy.plan_problems(&plan.plan);
    if !models.is_configured() {
        for (i, t) in plan.plan.tasks.iter().enumerate() {
            let users = plan.plan.model_users(i);
            if !users.is_empty() {
                denied.push((
                    i,
                    PlanError::NeedsModel {
                        task: t.id.clone(),
                        what: format!(
                            "{} {} a model",
                            users.join(" and "),
                            if users.len() == 1 { "uses" } else { "use" }
                        ),
                        how: models.how_to_configure().to_string(),
                    },
                ));
            }
        }
    }
    match (v, denied.is_empty()) {
        (Ok(v), true) => Ok(v),
        (Ok(_), false) => Err(PlanErrors::at_tasks(plan, denied)),
        (Err(mut e), _) => {
            e.0.extend(PlanErrors::at_tasks(plan, denied).0);
            Err(e)
        }
    }
}
