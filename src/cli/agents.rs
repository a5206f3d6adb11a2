//! `nofx agents`: the registered agents.

use super::{load_agents, CliResult, Failure, Global};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum AgentsCommand {
    /// List the agents.
    Ls {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub fn agents_ls(g: &Global, json: bool) -> CliResult {
    let agents = load_agents(g)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "agents": agents }))
                .map_err(|e| Failure::Error(e.to_string()))?
        );
        return Ok(());
    }
    println!(
        "{:<16} {:<12} {:>4} {:>8}  {:<28} AFFINITY",
        "ID", "ROLE", "MAX", "RATE/S", "CAPABILITIES"
    );
    for a in agents {
        println!(
            "{:<16} {:<12} {:>4} {:>8}  {:<28} {}",
            a.id,
            a.role,
            a.max_concurrency,
            a.rate.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            a.capabilities.join(","),
            a.affinity.join(",")
        );
        if !a.tools.is_empty() || a.model.is_some() || a.instructions.is_some() {
            println!(
                "{:<16} reasons with model {}, tools {}{}, at most {} turns",
                "",
                a.model.as_deref().unwrap_or("(routed)"),
                crate::domain::names_or_none(&a.tools),
                if a.require_approval.is_empty() {
                    String::new()
                } else {
                    format!(" (approval: {})", a.require_approval.join(","))
                },
                a.max_turns
            );
        }
    }
    Ok(())
}
