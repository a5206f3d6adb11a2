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

/// Problems of `agent` tasks: a `tools` list wider than what an agent that may run the task
/// allows (it may only narrow the agent's list).
fn agent_tool_problems(
    plan: &crate::domain::Plan,
    agents: &[AgentSpec],
) -> Vec<(usize, PlanError)> {
    let mut out = Vec::new();
    for (i, (id, t)) in plan
        .tasks
        .iter()
        .enumerate()
        .flat_map(|(i, top)| top.with_nested().into_iter().map(move |x| (i, x)))
    {
        if t.tool != "agent" {
            continue;
        }
        let Some(list) = t.inputs.get("tools").and_then(Value::as_array) else {
            continue;
        };
        let narrow: Vec<String> = list
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.contains("${"))
            .map(str::to_string)
            .collect();
        for a in agents.iter().filter(|a| a.has_all(&t.capabilities)) {
            let wider = crate::tools::agent::offers::wider(&narrow, &a.tools);
            if !wider.is_empty() {
                out.push((
                    i,
                    PlanError::BadInputs {
                        task: id.clone(),
                        tool: t.tool.clone(),
                        pointer: "/tools".into(),
                        message: format!(
                            "`tools` may only narrow the tools of the agent that runs the task, and agent `{}` (which may run it) does not allow {}; give the task capabilities only agents allowing them have, or narrow less",
                            a.id,
                            wider.join(", ")
                        ),
                    },
                ));
            }
        }
    }
    out
}

/// The first `agent` task of `plan` whose loop may run commands on the host: an agent that
/// may run it can call `shell`, directly or through the agents it may ask (`agent:ID`),
/// within the task's narrowed `tools`. Described for messages.
pub(crate) fn agent_command_user(
    plan: &crate::domain::Plan,
    agents: &[AgentSpec],
) -> Option<String> {
    fn runs_shell(tools: &[String], agents: &[AgentSpec], seen: &mut Vec<String>) -> bool {
        tools.iter().any(|t| {
            if t == "shell" {
                return true;
            }
            let Some(id) = t.strip_prefix("agent:") else {
                return false;
            };
            if seen.iter().any(|s| s == id) {
                return false;
            }
            seen.push(id.to_string());
            agents
                .iter()
                .find(|a| a.id == id)
                .is_some_and(|a| runs_shell(&a.tools, agents, seen))
        })
    }
    // Subtasks of static sub-plans and for_each templates run agents too.
    plan.tasks
        .iter()
        .flat_map(|t| t.with_nested())
        .filter(|(_, t)| t.tool == "agent")
        .find_map(|(id, t)| {
            let narrow: Option<Vec<String>> =
                t.inputs.get("tools").and_then(Value::as_array).map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                });
            agents
                .iter()
                .filter(|a| a.has_all(&t.capabilities))
                .find(|a| {
                    let tools = narrow.as_ref().unwrap_or(&a.tools);
                    runs_shell(tools, agents, &mut vec![a.id.clone()])
                })
                .map(|a| {
                    format!(
                        "task `{id}` (tool `agent`: agent `{}` may call `shell`)",
                        a.id
                    )
                })
        })
}

/// Problems of the agents' reasoning settings: each entry of `tools` must name a tool of the
/// runtime (not `agent` itself), an agent (`agent:ID`) or a configured MCP server's tools
/// (which tools a server offers is known once it runs).
pub(crate) fn agent_problems(
    agents: &[AgentSpec],
    tools: &ToolRegistry,
    mcp: &crate::mcp::McpConfig,
) -> Vec<String> {
    let mut out = Vec::new();
    for a in agents {
        for p in &a.tools {
            if let Some(id) = p.strip_prefix("agent:") {
                if !agents.iter().any(|b| b.id == id) {
                    out.push(format!(
                        "agent `{}`: `tools` entry `{p}` names no agent",
                        a.id
                    ));
                }
            } else if let Some(rest) = p.strip_prefix("mcp:") {
                let server = rest.split_once('.').map_or(rest, |(s, _)| s);
                if !mcp.servers.contains_key(server) {
                    out.push(format!(
                        "agent `{}`: `tools` entry `{p}`: {}",
                        a.id,
                        mcp.unknown(server)
                    ));
                }
            } else if p == "agent" || tools.get(p).is_none() {
                out.push(format!(
                    "agent `{}`: `tools` entry `{p}` names no tool of this runtime",
                    a.id
                ));
            }
        }
    }
    out
}

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
    denied.extend(agent_tool_problems(&plan.plan, agents));
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
