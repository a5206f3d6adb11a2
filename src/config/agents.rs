//! Agent manifests: one TOML file an agent.
//!
//! ```toml
//! id = "builder"
//! role = "specialist"            # coordinator | specialist | worker
//! capabilities = ["shell", "data"]
//! model = "claude-sonnet"        # optional
//! max_concurrency = 4            # tasks in flight, at least 1
//! rate = 20.0                    # tasks started per second; omit for no limit
//! affinity = ["lead"]            # agents it works well under
//!
//! # When it reasons (`agent` tasks):
//! instructions = "You are …"     # system prompt; or instructions_file = "builder.md"
//! tools = ["shell", "mcp:files.*", "agent:reviewer"]
//! require_approval = ["shell"]   # calls that wait for a person
//! max_turns = 20
//! ```

use super::{line_at, parse_toml};
use super::{ConfigErrors, ConfigIssue};
use crate::domain::{AgentSpec, Role};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    id: Spanned<String>,
    role: Spanned<String>,
    #[serde(default)]
    capabilities: Vec<Spanned<String>>,
    #[serde(default)]
    model: Option<Spanned<String>>,
    #[serde(default)]
    max_concurrency: Option<Spanned<i64>>,
    #[serde(default)]
    rate: Option<Spanned<f64>>,
    #[serde(default)]
    affinity: Vec<Spanned<String>>,
    #[serde(default)]
    instructions: Option<Spanned<String>>,
    #[serde(default)]
    instructions_file: Option<Spanned<String>>,
    #[serde(default)]
    tools: Vec<Spanned<String>>,
    #[serde(default)]
    require_approval: Vec<Spanned<String>>,
    #[serde(default)]
    max_turns: Option<Spanned<i64>>,
}

/// Why `pattern` is not a tool pattern of an agent's `tools` or `require_approval`: a tool
/// name, `mcp:SERVER.TOOL`, `mcp:SERVER.*` or `agent:ID`.
pub(crate) fn tool_pattern_error(pattern: &str) -> Option<String> {
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if pattern.trim().is_empty() {
        return Some("tool entries must not be empty".into());
    }
    if let Some(rest) = pattern.strip_prefix("mcp:") {
        let ok = rest.split_once('.').is_some_and(|(server, tool)| {
            word(server) && !tool.is_empty() && !tool.contains(char::is_whitespace)
        });
        return (!ok).then(|| format!("{pattern:?} is not `mcp:SERVER.TOOL` or `mcp:SERVER.*`"));
    }
    if let Some(id) = pattern.strip_prefix("agent:") {
        return (!word(id)).then(|| format!("{pattern:?} is not `agent:ID` (an agent id)"));
    }
    if pattern == "agent" {
        return Some(
            "`agent` cannot be called from a loop; name the agent to ask: `agent:ID`".into(),
        );
    }
    None
}

/// Parses one manifest.
///
/// # Errors
/// Every bad key, each naming file and line.
///
/// ```
/// let e = nofx::config::parse_agent("id = \"a\"\nrole = \"worker\"\nmax_concurrency = 0\n", "agents/a.toml").unwrap_err();
/// assert_eq!(e[0].to_string(), "agents/a.toml:3: `max_concurrency` must be at least 1, got 0");
/// ```
pub fn parse_agent(text: &str, file: &str) -> Result<AgentSpec, Vec<ConfigIssue>> {
    let issue = |offset: usize, message: String| ConfigIssue {
        file: file.to_string(),
        line: Some(line_at(text, offset)),
        message,
    };
    let raw: RawAgent = parse_toml(text, file)?;
    let mut errors = Vec::new();
    let id = raw.id.get_ref().trim().to_string();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        errors.push(issue(
            raw.id.span().start,
            format!(
                "`id` must be ASCII letters, digits, `_` or `-`, got {:?}",
                raw.id.get_ref()
            ),
        ));
    }
    let role = match raw.role.get_ref().as_str() {
        "coordinator" => Some(Role::Coordinator),
        "specialist" => Some(Role::Specialist),
        "worker" => Some(Role::Worker),
        other => {
            errors.push(issue(
                raw.role.span().start,
                format!("`role` must be coordinator, specialist or worker, got {other:?}"),
            ));
            None
        }
    };
    let mut capabilities = Vec::new();
    for c in &raw.capabilities {
        if c.get_ref().trim().is_empty() {
            errors.push(issue(
                c.span().start,
                "`capabilities` entries must not be empty".into(),
            ));
        } else {
            capabilities.push(c.get_ref().trim().to_string());
        }
    }
    let max_concurrency = match &raw.max_concurrency {
        None => 1,
        Some(m) if *m.get_ref() >= 1 && *m.get_ref() <= 100_000 => *m.get_ref() as u32,
        Some(m) if *m.get_ref() < 1 => {
            errors.push(issue(
                m.span().start,
                format!("`max_concurrency` must be at least 1, got {}", m.get_ref()),
            ));
            1
        }
        Some(m) => {
            errors.push(issue(
                m.span().start,
                format!(
                    "`max_concurrency` must be at most 100000, got {}",
                    m.get_ref()
                ),
            ));
            1
        }
    };
    let rate = match &raw.rate {
        None => None,
        Some(r) if r.get_ref().is_finite() && *r.get_ref() > 0.0 && *r.get_ref() <= 1_000_000.0 => {
            Some(*r.get_ref())
        }
        Some(r) => {
            errors.push(issue(
                r.span().start,
                format!(
                    "`rate` must be a number of tasks per second above 0 (at most 1000000), got {}",
                    r.get_ref()
                ),
            ));
            None
        }
    };
    let model = match &raw.model {
        Some(m) if m.get_ref().trim().is_empty() => {
            errors.push(issue(
                m.span().start,
                "`model` must not be empty (omit it instead)".into(),
            ));
            None
        }
        Some(m) => Some(m.get_ref().trim().to_string()),
        None => None,
    };
    let instructions = match (&raw.instructions, &raw.instructions_file) {
        (Some(_), Some(f)) => {
            errors.push(issue(
                f.span().start,
                "give `instructions` or `instructions_file`, not both".into(),
            ));
            None
        }
        (Some(i), None) => Some(i.get_ref().clone()),
        (None, Some(f)) => {
            let path = Path::new(file)
                .parent()
                .unwrap_or(Path::new(""))
                .join(f.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(text) => Some(text),
                Err(e) => {
                    errors.push(issue(
                        f.span().start,
                        format!("cannot read `instructions_file` {}: {e}", path.display()),
                    ));
                    None
                }
            }
        }
        (None, None) => None,
    };
    let mut patterns = |list: &[Spanned<String>], key: &str| -> Vec<String> {
        let mut out = Vec::new();
        for t in list {
            let p = t.get_ref().trim();
            match tool_pattern_error(p) {
                Some(why) => errors.push(issue(t.span().start, format!("`{key}`: {why}"))),
                None if !out.iter().any(|o| o == p) => out.push(p.to_string()),
                None => {}
            }
        }
        out
    };
    let tools = patterns(&raw.tools, "tools");
    let require_approval = patterns(&raw.require_approval, "require_approval");
    let max_turns = match &raw.max_turns {
        None => crate::domain::DEFAULT_MAX_TURNS,
        Some(m) if (1..=1000).contains(m.get_ref()) => *m.get_ref() as u32,
        Some(m) => {
            errors.push(issue(
                m.span().start,
                format!("`max_turns` must be from 1 to 1000, got {}", m.get_ref()),
            ));
            1
        }
    };
    match (role, errors.is_empty()) {
        (Some(role), true) => Ok(AgentSpec {
            id,
            role,
            capabilities,
            model,
            max_concurrency,
            rate,
            affinity: raw
                .affinity
                .iter()
                .map(|a| a.get_ref().trim().to_string())
                .collect(),
            instructions,
            tools,
            require_approval,
            max_turns,
        }),
        _ => Err(errors),
    }
}

/// Loads every `*.toml` in a directory (sorted by name).
///
/// # Errors
/// Every bad manifest and duplicate id, and an empty directory.
pub fn load_agents(dir: &Path) -> Result<Vec<AgentSpec>, ConfigErrors> {
    let dir_name = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ConfigErrors(vec![ConfigIssue {
            file: dir_name.clone(),
            line: None,
            message: format!("cannot read agents directory: {e}"),
        }])
    })?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut errors = Vec::new();
    let mut agents: Vec<AgentSpec> = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for path in files {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(ConfigIssue {
                    file,
                    line: None,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        match parse_agent(&text, &file) {
            Ok(a) => {
                if let Some(first) = seen.get(&a.id) {
                    errors.push(ConfigIssue {
                        file: file.clone(),
                        line: Some(1),
                        message: format!("`id` {:?} is already used by {first}", a.id),
                    });
                } else {
                    seen.insert(a.id.clone(), file);
                    agents.push(a);
                }
            }
            Err(mut es) => errors.append(&mut es),
        }
    }
    if agents.is_empty() && errors.is_empty() {
        errors.push(ConfigIssue {
            file: dir_name,
            line: None,
            message: "no agent manifests (*.toml) in the agents directory".into(),
        });
    }
    if errors.is_empty() {
        Ok(agents)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The agents used when no agents directory exists: one of each role, none rate-limited.
pub fn builtin_agents() -> Vec<AgentSpec> {
    vec![
        AgentSpec::new("lead", Role::Coordinator)
            .with_capabilities(["planning", "review", "shell"])
            .with_limits(4, None),
        AgentSpec::new("builder", Role::Specialist)
            .with_capabilities(["shell", "data", "report"])
            .with_limits(4, None)
            .with_affinity(["lead"]),
        AgentSpec::new("worker", Role::Worker)
            .with_capabilities(["shell", "data"])
            .with_limits(8, None)
            .with_affinity(["lead"]),
    ]
}
