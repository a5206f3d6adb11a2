//! `policies/mcp.toml`: the MCP servers agents may use.
//!
//! ```toml
//! [servers.files]
//! command = ["npx", "-y", "@modelcontextprotocol/server-filesystem", "."]  # stdio
//! cwd = "."            # relative to the run's workspace (the default)
//! timeout_s = 30       # starting, and each call
//! tools = ["read_file", "list_directory"]   # allow-list (default: every tool)
//!
//! [servers.github]
//! url = "https://mcp.example.com/mcp"     # streamable HTTP
//! env = { TOKEN = "${env.GITHUB_TOKEN}" }  # secrets only by reference, resolved at start
//! ```
//!
//! `command[0]` is looked up on `PATH`, or, when it has a `/`, is a path (relative to the
//! directory nofx runs in). A server's environment is `PATH`, `HOME` and `LANG` plus its `env`; nothing else of
//! nofx's environment reaches it. An `env` value may name variables of nofx's environment
//! as `${env.NAME}`; the values are read when the server starts and never stored, logged or
//! put in events. For a `url` server, `env` entries are sent as HTTP headers
//! (`Authorization = "Bearer ${env.TOKEN}"`).

use crate::config::{line_at, parse_toml, read_policy, ConfigErrors, ConfigIssue};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// How nofx reaches a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTransport {
    /// A child process speaking MCP over stdio: its argv.
    Command(Vec<String>),
    /// A streamable HTTP endpoint.
    Url(String),
}

/// One configured server.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServer {
    /// Its name (`mcp:NAME.TOOL`).
    pub name: String,
    /// How to reach it.
    pub transport: McpTransport,
    /// Its environment (a child's) or headers (a URL's), values with `${env.NAME}`
    /// references unresolved.
    pub env: BTreeMap<String, String>,
    /// Where a child runs, relative to the run's workspace (`None`: the workspace).
    pub cwd: Option<PathBuf>,
    /// How long starting it, and each call, may take.
    pub timeout: Duration,
    /// The tools agents may see (`None`: all).
    pub tools: Option<Vec<String>>,
}

/// The configured servers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct McpConfig {
    /// By name.
    pub servers: BTreeMap<String, McpServer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    servers: BTreeMap<String, Spanned<RawServer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default)]
    command: Option<Vec<String>>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    timeout_s: Option<f64>,
    #[serde(default)]
    tools: Option<Vec<String>>,
}

/// Default for starting a server and for each call.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why `${env.…}` references of `value` cannot be read, or the value with them replaced.
pub(crate) fn resolve_env(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${env.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let Some(end) = after.find('}') else {
            return Err("an unclosed `${env.` reference".into());
        };
        let name = &after[..end];
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("`${{env.{name}}}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl McpConfig {
    /// Parses `mcp.toml`.
    ///
    /// # Errors
    /// Every bad entry, each naming file, line and key.
    ///
    /// ```
    /// let c = nofx::mcp::McpConfig::from_toml("[servers.files]\ncommand = [\"files-server\"]\n", "mcp.toml").unwrap();
    /// assert!(c.servers.contains_key("files"));
    /// let e = nofx::mcp::McpConfig::from_toml("[servers.x]\ncommand = [\"a\"]\nurl = \"http://h\"\n", "mcp.toml").unwrap_err();
    /// assert!(e[0].to_string().contains("give either `command` (stdio) or `url`"));
    /// ```
    pub fn from_toml(text: &str, file: &str) -> Result<Self, Vec<ConfigIssue>> {
        let raw: RawFile = parse_toml(text, file)?;
        let mut errors = Vec::new();
        let mut servers = BTreeMap::new();
        for (name, s) in raw.servers {
            let line = Some(line_at(text, s.span().start));
            let mut issue = |message: String| {
                errors.push(ConfigIssue {
                    file: file.to_string(),
                    line,
                    message: format!("`servers.{name}`: {message}"),
                })
            };
            if !is_name(&name) {
                issue("a server name is ASCII letters, digits, `_` or `-`".into());
                continue;
            }
            let s = s.into_inner();
            let transport = match (s.command, s.url) {
                (Some(argv), None) if !argv.is_empty() && !argv[0].trim().is_empty() => {
                    McpTransport::Command(argv)
                }
                (Some(_), None) => {
                    issue("`command` must name a program".into());
                    continue;
                }
                (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
                    McpTransport::Url(url)
                }
                (None, Some(url)) => {
                    issue(format!("`url` must be an http(s) URL, got {url:?}"));
                    continue;
                }
                _ => {
                    issue("give either `command` (stdio) or `url` (streamable HTTP)".into());
                    continue;
                }
            };
            let timeout = match s.timeout_s {
                None => DEFAULT_TIMEOUT,
                Some(t) if t.is_finite() && t > 0.0 && t <= 86_400.0 => Duration::from_secs_f64(t),
                Some(t) => {
                    issue(format!(
                        "`timeout_s` must be above 0 and at most 86400, got {t}"
                    ));
                    continue;
                }
            };
            let mut bad = false;
            for (k, v) in &s.env {
                if k.is_empty() || k.contains('=') || k.contains('\0') {
                    issue(format!("`env` key {k:?} is not a variable name"));
                    bad = true;
                } else if let Err(why) = resolve_env(v, &|_| Some(String::new())) {
                    issue(format!("`env.{k}`: {why}"));
                    bad = true;
                }
            }
            if let Some(tools) = &s.tools {
                if tools.iter().any(|t| t.trim().is_empty()) {
                    issue("`tools` entries must not be empty".into());
                    bad = true;
                }
            }
            if bad {
                continue;
            }
            servers.insert(
                name.clone(),
                McpServer {
                    name,
                    transport,
                    env: s.env,
                    cwd: s.cwd.map(PathBuf::from),
                    timeout,
                    tools: s.tools,
                },
            );
        }
        if errors.is_empty() {
            Ok(Self { servers })
        } else {
            Err(errors)
        }
    }

    /// What to say of a server `name` that is not configured.
    pub(crate) fn unknown(&self, name: &str) -> String {
        let known: Vec<&str> = self.servers.keys().map(String::as_str).collect();
        format!(
            "no MCP server `{name}` is configured (policies/mcp.toml has: {})",
            crate::domain::names_or_none(&known)
        )
    }

    /// Loads `mcp.toml` from a policies directory; none configured when there is no such
    /// file.
    ///
    /// # Errors
    /// A file that cannot be read or has bad entries.
    pub fn load(dir: &Path) -> Result<Self, ConfigErrors> {
        let (text, file) =
            read_policy(Some(dir), "mcp.toml", "").map_err(|e| ConfigErrors(vec![e]))?;
        Self::from_toml(&text, &file).map_err(ConfigErrors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_are_resolved_and_a_missing_one_named_not_shown() {
        let env = |k: &str| (k == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(
            resolve_env("Bearer ${env.TOKEN}", &env).unwrap(),
            "Bearer s3cret"
        );
        assert_eq!(resolve_env("plain", &env).unwrap(), "plain");
        let e = resolve_env("${env.OTHER}", &env).unwrap_err();
        assert_eq!(e, "`${env.OTHER}` is not set");
        assert!(resolve_env("${env.TOKEN", &env).is_err());
    }

    #[test]
    fn bad_entries_name_the_server_and_key() {
        let e = McpConfig::from_toml(
            "[servers.a]\nurl = \"ftp://x\"\n[servers.b]\ncommand = [\"x\"]\ntimeout_s = 0\n",
            "mcp.toml",
        )
        .unwrap_err();
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(
            text[0].starts_with("mcp.toml:1: `servers.a`: `url`"),
            "{text:?}"
        );
        assert!(text[1].contains("`servers.b`: `timeout_s`"), "{text:?}");
    }
}
