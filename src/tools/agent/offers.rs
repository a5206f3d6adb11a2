//! What a reasoning loop offers its model: each allowed tool under a name providers accept,
//! with its description, input schema, whether a repeat is safe and how to run it.

use crate::domain::AgentSpec;
use crate::models::ToolSpec;
use crate::tools::{Tool, ToolRegistry};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;

/// How an offered tool runs.
#[derive(Clone)]
pub(crate) enum Exec {
    /// A tool of the runtime's registry.
    Local(Arc<dyn Tool>),
    /// Another agent, as a loop of its own.
    Agent(String),
    /// A tool of an MCP server of the run.
    Mcp {
        /// The server.
        server: String,
        /// The tool's name on it.
        tool: String,
    },
    /// A tool the loop's journal lists that this runtime no longer has.
    Gone,
}

/// One tool offered to a loop's model.
#[derive(Clone)]
pub(crate) struct Offer {
    /// The name the model calls (letters, digits, `_`, `-`; at most 64).
    pub name: String,
    /// The tool as nofx names it (`shell`, `agent:reviewer`, `mcp:files.read_file`).
    pub tool: String,
    pub description: String,
    pub input_schema: Value,
    /// Whether a call interrupted by a crash may run again.
    pub idempotent: bool,
    pub exec: Exec,
    /// The compiled input schema of a tool outside the registry (the registry compiles its
    /// own); `None` when it does not compile (the call is then not checked here).
    pub validator: Option<Arc<jsonschema::Validator>>,
}

/// The validator of `schema`, compiled once for every call of an offer.
fn compiled(schema: &Value) -> Option<Arc<jsonschema::Validator>> {
    jsonschema::validator_for(schema).ok().map(Arc::new)
}

impl Offer {
    /// What the provider is told.
    pub fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            input_schema: self.input_schema.clone(),
        }
    }

    /// How the journal records it.
    pub fn recorded(&self) -> Value {
        json!({
            "name": self.name,
            "tool": self.tool,
            "description": self.description,
            "inputSchema": self.input_schema,
            "idempotent": self.idempotent,
        })
    }
}

/// Whether `pattern` (an entry of an agent's `tools` or `require_approval`) covers `tool`.
pub(crate) fn covers(pattern: &str, tool: &str) -> bool {
    if pattern == tool {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) if pattern.starts_with("mcp:") => tool
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1),
        _ => false,
    }
}

/// The entries of `narrow` that `allowed` does not cover (a narrowing entry is covered by an
/// equal entry, or `mcp:S.T` by `mcp:S.*`).
pub(crate) fn wider(narrow: &[String], allowed: &[String]) -> Vec<String> {
    narrow
        .iter()
        .filter(|n| !allowed.iter().any(|a| covers(a, n)))
        .cloned()
        .collect()
}

/// Tools one loop may be offered.
const MAX_OFFERS: usize = 256;
/// Longest input schema (as JSON text) an MCP tool may have.
const MAX_SCHEMA: usize = 64 * 1024;
/// Longest description of an MCP tool the model is given; the rest is cut.
const MAX_DESCRIPTION: usize = 4 * 1024;

/// `text` cut to at most `limit` bytes (at a character boundary).
pub(super) fn clip(text: &str, limit: usize) -> String {
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// A provider-safe name for `tool`, unique among `taken`.
fn model_name(tool: &str, taken: &mut HashSet<String>) -> String {
    let base: String = tool
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    let mut name = base.clone();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

/// The schema of an `agent:ID` tool.
fn agent_schema() -> Value {
    json!({
        "type": "object",
        "required": ["prompt"],
        "properties": {
            "prompt": {"type": "string", "minLength": 1, "description": "A self-contained question or instruction for the agent."}
        },
        "additionalProperties": false
    })
}

/// The offers for the tool patterns `patterns`, resolved against the runtime's tools and
/// agents and the run's MCP servers (started here when a pattern names one).
///
/// # Errors
/// A pattern naming no tool or agent of this runtime, an MCP server that does not start, or
/// a tool the server does not offer.
pub(crate) async fn resolve(
    patterns: &[String],
    tools: &ToolRegistry,
    agents: &[AgentSpec],
    mcp: &crate::mcp::RunServers,
) -> Result<Vec<Offer>, String> {
    let mut taken = HashSet::new();
    let mut out = Vec::new();
    for p in patterns {
        if let Some(rest) = p.strip_prefix("mcp:") {
            let (server, wanted) = rest.split_once('.').unwrap_or((rest, "*"));
            let session = mcp.session(server).await?;
            let offered = session.tools();
            let chosen: Vec<&crate::mcp::McpTool> = if wanted == "*" {
                offered.iter().collect()
            } else {
                match offered.iter().find(|t| t.name == wanted) {
                    Some(t) => vec![t],
                    None => {
                        let names: Vec<&str> = offered.iter().map(|t| t.name.as_str()).collect();
                        return Err(format!(
                            "MCP server `{server}` offers no tool `{wanted}` (it offers: {})",
                            crate::domain::names_or_none(&names)
                        ));
                    }
                }
            };
            for t in chosen {
                let tool = format!("mcp:{server}.{}", t.name);
                if out.iter().any(|o: &Offer| o.tool == tool) {
                    continue;
                }
                let schema_size = t.input_schema.to_string().len();
                if schema_size > MAX_SCHEMA {
                    return Err(format!(
                        "tool `{}` of MCP server `{server}` has an input schema of {schema_size} bytes (at most {MAX_SCHEMA})",
                        t.name
                    ));
                }
                if out.len() >= MAX_OFFERS {
                    return Err(format!(
                        "more than {MAX_OFFERS} tools would be offered; narrow `{p}` (e.g. `mcp:{server}.TOOL` or the server's `tools` list)"
                    ));
                }
                out.push(Offer {
                    name: model_name(&tool, &mut taken),
                    tool,
                    description: if t.description.is_empty() {
                        format!("Tool `{}` of MCP server `{server}`.", t.name)
                    } else {
                        clip(&t.description, MAX_DESCRIPTION)
                    },
                    input_schema: t.input_schema.clone(),
                    idempotent: t.repeat_safe(),
                    exec: Exec::Mcp {
                        server: server.to_string(),
                        tool: t.name.clone(),
                    },
                    validator: compiled(&t.input_schema),
                });
            }
            continue;
        }
        if let Some(id) = p.strip_prefix("agent:") {
            let Some(a) = agents.iter().find(|a| a.id == id) else {
                return Err(format!("`{p}` names no agent of this runtime"));
            };
            out.push(Offer {
                name: model_name(p, &mut taken),
                tool: p.clone(),
                description: format!(
                    "Ask agent `{}` ({}{}) and get its answer. It works on its own with its own tools; give it everything it needs in `prompt`.",
                    a.id,
                    a.role,
                    if a.capabilities.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", a.capabilities.join(", "))
                    }
                ),
                input_schema: agent_schema(),
                // Its own journal makes a repeat a resume.
                idempotent: true,
                exec: Exec::Agent(a.id.clone()),
                validator: compiled(&agent_schema()),
            });
        } else {
            let Some(t) = tools.get(p) else {
                return Err(format!("`{p}` names no tool of this runtime"));
            };
            let description = match t.description() {
                "" => format!("The nofx tool `{p}`."),
                d => d.to_string(),
            };
            out.push(Offer {
                name: model_name(p, &mut taken),
                tool: p.clone(),
                description,
                input_schema: t.input_schema(),
                idempotent: t.idempotent(),
                exec: Exec::Local(t),
                validator: None,
            });
        }
    }
    Ok(out)
}

/// The offers a journal recorded, each bound to what runs it now (or [`Exec::Gone`]).
pub(crate) fn from_record(
    recorded: &Value,
    tools: &ToolRegistry,
    agents: &[AgentSpec],
) -> Vec<Offer> {
    let list = recorded.as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|o| {
            let tool = o["tool"].as_str().unwrap_or_default().to_string();
            let exec = if let Some((server, name)) =
                tool.strip_prefix("mcp:").and_then(|r| r.split_once('.'))
            {
                Exec::Mcp {
                    server: server.to_string(),
                    tool: name.to_string(),
                }
            } else if let Some(id) = tool.strip_prefix("agent:") {
                if agents.iter().any(|a| a.id == id) {
                    Exec::Agent(id.to_string())
                } else {
                    Exec::Gone
                }
            } else {
                tools.get(&tool).map_or(Exec::Gone, Exec::Local)
            };
            let validator = match exec {
                Exec::Local(_) => None,
                _ => compiled(&o["inputSchema"]),
            };
            Offer {
                name: o["name"].as_str().unwrap_or_default().to_string(),
                tool,
                description: o["description"].as_str().unwrap_or_default().to_string(),
                input_schema: o["inputSchema"].clone(),
                idempotent: o["idempotent"].as_bool().unwrap_or(false),
                exec,
                validator,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_cover_exact_names_and_mcp_wildcards_only() {
        assert!(covers("shell", "shell"));
        assert!(covers("mcp:files.*", "mcp:files.read"));
        assert!(!covers("mcp:files.*", "mcp:filesystem.read"));
        assert!(!covers("mcp:files.*", "mcp:files."));
        assert!(!covers("shell", "shell2"));
        let allowed = vec!["shell".to_string(), "mcp:files.*".to_string()];
        assert!(wider(&["mcp:files.read".into(), "shell".into()], &allowed).is_empty());
        assert_eq!(
            wider(&["test:echo".into(), "mcp:files.*".into()], &allowed),
            vec!["test:echo".to_string()]
        );
        assert_eq!(
            wider(&["mcp:files.*".into()], &["mcp:files.read".into()]),
            vec!["mcp:files.*".to_string()]
        );
    }

    #[test]
    fn model_names_are_provider_safe_and_unique() {
        let mut taken = HashSet::new();
        assert_eq!(model_name("test:echo", &mut taken), "test_echo");
        assert_eq!(model_name("test.echo", &mut taken), "test_echo_2");
        assert_eq!(
            model_name("mcp:files.read_file", &mut taken),
            "mcp_files_read_file"
        );
    }
}
