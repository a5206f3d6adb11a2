//! `nofx mcp ls [SERVER]`: starts the configured MCP servers (policies/mcp.toml) in the
//! current directory, lists the tools agents may use with their annotations, and stops them.

use super::{dir_or_default, CliResult, Failure, Global};
use crate::mcp::{list_tools, McpConfig};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum McpCommand {
    /// Start the configured MCP servers (or one) and list their tools with annotations.
    Ls {
        /// Only this server.
        server: Option<String>,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// The MCP servers the flags' policies directory configures (none without `mcp.toml`).
pub fn load_mcp(g: &Global) -> Result<McpConfig, Failure> {
    Ok(match dir_or_default(&g.policies, "policies")? {
        Some(dir) => McpConfig::load(&dir)?,
        None => McpConfig::default(),
    })
}

pub async fn dispatch(g: &Global, c: McpCommand) -> CliResult {
    let McpCommand::Ls { server, json } = c;
    let config = load_mcp(g)?;
    let servers: Vec<_> = match &server {
        Some(name) => match config.servers.get(name) {
            Some(s) => vec![s.clone()],
            None => return Err(Failure::Input(config.unknown(name))),
        },
        None => config.servers.values().cloned().collect(),
    };
    if servers.is_empty() && !json {
        println!("no MCP servers are configured (policies/mcp.toml)");
        return Ok(());
    }
    let dir = std::env::current_dir().map_err(|e| Failure::Error(e.to_string()))?;
    let mut docs = Vec::new();
    let mut failed = false;
    for s in &servers {
        match list_tools(s, &dir).await {
            Ok(tools) => {
                if !json {
                    println!("{} ({} tools)", s.name, tools.len());
                    for t in &tools {
                        let a = t.annotations();
                        let hints: Vec<String> =
                            ["readOnlyHint", "idempotentHint", "destructiveHint"]
                                .iter()
                                .filter_map(|k| a[*k].as_bool().map(|v| format!("{k}={v}")))
                                .collect();
                        println!(
                            "  mcp:{}.{:<24} {}{}",
                            s.name,
                            t.name,
                            t.description.lines().next().unwrap_or_default(),
                            if hints.is_empty() {
                                String::new()
                            } else {
                                format!("  [{}]", hints.join(" "))
                            }
                        );
                    }
                }
                docs.push(json!({
                    "server": s.name,
                    "tools": tools.iter().map(|t| json!({
                        "name": t.name,
                        "tool": format!("mcp:{}.{}", s.name, t.name),
                        "description": t.description,
                        "inputSchema": t.input_schema,
                        "annotations": t.annotations(),
                    })).collect::<Vec<_>>(),
                }));
            }
            Err(e) => {
                failed = true;
                eprintln!("error: {e}");
                docs.push(json!({"server": s.name, "error": e}));
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "servers": docs }))
                .map_err(|e| Failure::Error(e.to_string()))?
        );
    }
    if failed {
        Err(Failure::RunFailed)
    } else {
        Ok(())
    }
}
