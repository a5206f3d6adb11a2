//! Command policy (`policies/tools.toml`): which commands `shell` tasks and command gates may
//! run. The CLI allows any command when no policy file exists; a server allows none until the
//! policy lists them.
//!
//! ```toml
//! [commands]
//! allow = ["sh", "wc", "/usr/local/bin/report"]   # or ["*"] for any command
//! deny = ["rm"]
//! ```

use crate::config::line_at;
use crate::domain::graph::PlanError;
use crate::domain::plan::{GateSpec, Plan};
use serde::Deserialize;
use std::collections::BTreeSet;
use toml::Spanned;

/// A policy file problem.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct PolicyError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong, naming the key.
    pub message: String,
}

/// Which commands may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPolicy {
    allow_any: bool,
    allow: BTreeSet<String>,
    deny: BTreeSet<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    commands: Option<RawCommands>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommands {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
}

impl CommandPolicy {
    /// Any command may run.
    pub fn allow_all() -> Self {
        Self {
            allow_any: true,
            allow: BTreeSet::new(),
            deny: BTreeSet::new(),
        }
    }

    /// No command may run.
    pub fn deny_all() -> Self {
        Self {
            allow_any: false,
            allow: BTreeSet::new(),
            deny: BTreeSet::new(),
        }
    }

    /// Parses `tools.toml`.
    ///
    /// # Errors
    /// Every bad entry, each naming file, line and key.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, Vec<PolicyError>> {
        let raw: RawFile = crate::config::parse_toml(text, file).map_err(|issues| {
            issues
                .into_iter()
                .map(|i| PolicyError {
                    file: i.file,
                    line: i.line.unwrap_or(1),
                    message: i.message,
                })
                .collect::<Vec<_>>()
        })?;
        let Some(cmds) = raw.commands else {
            return Ok(Self::deny_all());
        };
        let mut errors = Vec::new();
        let mut check = |list: &[Spanned<String>], key: &str| -> BTreeSet<String> {
            let mut out = BTreeSet::new();
            for item in list {
                let v = item.get_ref().trim();
                if v.is_empty() || v.contains(char::is_whitespace) {
                    errors.push(PolicyError {
                        file: file.to_string(),
                        line: line_at(text, item.span().start),
                        message: format!(
                            "`commands.{key}` entries must be command names or paths, got {:?}",
                            item.get_ref()
                        ),
                    });
                } else {
                    out.insert(v.to_string());
                }
            }
            out
        };
        let mut allow = check(&cmds.allow, "allow");
        let deny = check(&cmds.deny, "deny");
        if !errors.is_empty() {
            return Err(errors);
        }
        let allow_any = allow.remove("*");
        Ok(Self {
            allow_any,
            allow,
            deny,
        })
    }

    /// Whether `program` (as written in `argv[0]`) may run.
    ///
    /// # Errors
    /// A sentence naming the command and the rule that refuses it.
    ///
    /// ```
    /// let p = nofx::tools::CommandPolicy::from_toml("[commands]\nallow = [\"sh\"]\n", "tools.toml").unwrap();
    /// assert!(p.check("sh").is_ok());
    /// assert!(p.check("/bin/sh").is_ok());
    /// assert!(p.check("curl").is_err());
    /// ```
    pub fn check(&self, program: &str) -> Result<(), String> {
        let base = std::path::Path::new(program)
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or(program);
        let listed = |set: &BTreeSet<String>| set.contains(program) || set.contains(base);
        if listed(&self.deny) {
            return Err(format!(
                "command `{program}` is denied by the command policy (commands.deny)"
            ));
        }
        if self.allow_any || listed(&self.allow) {
            return Ok(());
        }
        Err(format!(
            "command `{program}` is not allowed by the command policy; add it to `commands.allow` in policies/tools.toml"
        ))
    }
}

impl CommandPolicy {
    /// Commands of a plan that this policy refuses, found before anything runs: the `argv[0]`
    /// of `shell` tasks and of command gates, when it is written out (not a reference).
    pub fn plan_problems(&self, plan: &Plan) -> Vec<(usize, PlanError)> {
        let mut out = Vec::new();
        for (i, t) in plan.tasks.iter().enumerate() {
            let mut programs: Vec<&str> = Vec::new();
            if t.tool == "shell" {
                if let Some(p) = t
                    .inputs
                    .get("argv")
                    .and_then(|a| a.get(0))
                    .and_then(|p| p.as_str())
                {
                    programs.push(p);
                }
            }
            for g in &t.gates {
                if let GateSpec::Command { argv, .. } = g {
                    if let Some(p) = argv.first() {
                        programs.push(p);
                    }
                }
            }
            for p in programs {
                if p.contains("${") {
                    continue;
                }
                if let Err(why) = self.check(p) {
                    out.push((
                        i,
                        PlanError::CommandNotAllowed {
                            task: t.id.clone(),
                            why,
                        },
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_entries_name_file_line_and_key() {
        let e = CommandPolicy::from_toml(
            "[commands]\nallow = [\n  \"sh\",\n  \"\",\n]\n",
            "policies/tools.toml",
        )
        .unwrap_err();
        assert_eq!(e[0].to_string(), "policies/tools.toml:4: `commands.allow` entries must be command names or paths, got \"\"");
        let e = CommandPolicy::from_toml("[commands]\nallows = []\n", "t.toml").unwrap_err();
        assert!(
            e[0].to_string()
                .starts_with("t.toml:2: unknown field `allows`"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn deny_wins_over_allow_any() {
        let p = CommandPolicy::from_toml("[commands]\nallow = [\"*\"]\ndeny = [\"rm\"]\n", "t")
            .unwrap();
        assert!(p.check("ls").is_ok());
        assert!(p.check("/bin/rm").is_err());
    }
}
