//! `nofx route`: which model the routing rules choose for a described request, and with
//! `--explain`, why (each rule's conditions up to the one that matched).

use super::{load_models, CliResult, Failure, Global};
use crate::models::budget::usd;
use crate::models::routing::RouteRequest;
use crate::models::Models;
use crate::{Priority, Role};
use clap::{Args, ValueEnum};

#[derive(Args)]
pub struct RouteArgs {
    /// Show each rule's conditions up to the one that matched.
    #[arg(long)]
    explain: bool,
    /// The calling tool.
    #[arg(long, default_value = "llm:generate", value_name = "TOOL")]
    tool: String,
    /// Estimated input tokens.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    tokens: u64,
    /// Output tokens asked for (max_tokens).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    output_tokens: u64,
    /// The task's priority.
    #[arg(long, value_enum, default_value = "normal")]
    priority: PriorityArg,
    /// The task requires reasoning.
    #[arg(long)]
    reasoning: bool,
    /// The calling agent's role.
    #[arg(long, value_enum)]
    role: Option<RoleArg>,
    /// A capability the task requires (repeatable).
    #[arg(long = "capability", value_name = "NAME")]
    capabilities: Vec<String>,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum PriorityArg {
    Low,
    Normal,
    High,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Coordinator,
    Specialist,
    Worker,
}

pub fn route(g: &Global, a: RouteArgs) -> CliResult {
    let models = Models::build(load_models(g)?, None)?;
    let configured = models.is_configured();
    let req = RouteRequest {
        input_tokens: a.tokens,
        max_output_tokens: a.output_tokens,
        tool: a.tool.clone(),
        priority: match a.priority {
            PriorityArg::Low => Priority::Low,
            PriorityArg::Normal => Priority::Normal,
            PriorityArg::High => Priority::High,
        },
        requires_reasoning: a.reasoning,
        agent_role: a.role.map(|r| match r {
            RoleArg::Coordinator => Role::Coordinator,
            RoleArg::Specialist => Role::Specialist,
            RoleArg::Worker => Role::Worker,
        }),
        capabilities: a.capabilities.clone(),
    };
    // Without a configured provider, explain over the whole catalogue.
    let available = |m: &crate::models::catalog::ModelSpec| !configured || models.available(m);
    let ex = models.router().explain(&req, models.catalog(), &available);
    if a.json {
        let doc = serde_json::json!({
            "providersConfigured": models.providers().collect::<Vec<_>>(),
            "rules": ex.checks,
            "decision": ex.decision.as_ref().ok(),
            "error": ex.decision.as_ref().err().map(|e| e.to_string()),
        });
        println!("{doc}");
        return ex
            .decision
            .map(|_| ())
            .map_err(|e| Failure::Input(e.to_string()));
    }
    if !configured {
        eprintln!("note: no model provider is configured; routing over the whole catalogue");
    }
    if a.explain {
        let n = ex.checks.len();
        for (i, c) in ex.checks.iter().enumerate() {
            let verdict = if c.matched { "MATCH" } else { "no" };
            let why: Vec<&str> = if c.matched {
                c.conditions.iter().map(|x| x.text.as_str()).collect()
            } else {
                c.conditions
                    .iter()
                    .filter(|x| !x.holds)
                    .map(|x| x.text.as_str())
                    .collect()
            };
            let why = if why.is_empty() {
                "no conditions".to_string()
            } else {
                why.join("; ")
            };
            let label = if c.rule == "default" && i + 1 == n {
                "default".to_string()
            } else {
                format!("rule {} `{}`", i + 1, c.rule)
            };
            println!("{label}: {verdict} — {why}");
        }
    }
    let d = ex.decision.map_err(|e| Failure::Input(e.to_string()))?;
    let spec = &models.catalog().models[&d.model];
    println!(
        "model: {} ({} `{}`), rule `{}`: {}",
        d.model, spec.provider, spec.name, d.rule, d.reason
    );
    println!("fallbacks: {}", crate::domain::names_or_none(&d.fallbacks));
    println!(
        "estimate: {} tokens, {}",
        d.estimated_tokens,
        usd(d.estimated_cost_micro_usd)
    );
    Ok(())
}
