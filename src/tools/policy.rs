//! Command policy (`policies/tools.toml`): which commands `shell` tasks and command gates may
//! run. The CLI allows any command when no policy file exists; a server allows none until the
//! policy lists them.
//!
//! Commands are matched by the real file they run: a name in the policy is looked up on
//! `PATH` when the policy is loaded, and a task's `argv[0]` is looked up the same way (or, with
//! a `/`, taken as a path in the workspace) and every symlink resolved, so an executable
//! a task makes and names `sh` is not the `sh` the policy allows. The command that runs is
//! the file that was checked. Allowing an interpreter (`sh`, `bash`, `python3`, …) allows
//! whatever it is told to run.
//!
//! ```toml
//! [commands]
//! allow = ["wc", "/usr/local/bin/report"]   # or ["*"] for any command
//! deny = ["rm"]
//! ```

use crate::config::{line_at, ConfigErrors, ConfigIssue};
use crate::domain::plan::PlanError;
use crate::domain::plan::{GateSpec, Plan};
use crate::process::locate;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
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
    /// Real paths of the allowed commands.
    allow: BTreeSet<PathBuf>,
    /// Real paths of the denied commands, and their names as written (a denied name is
    /// refused whatever file it names).
    deny: BTreeSet<PathBuf>,
    deny_names: BTreeSet<String>,
}

/// The real file (every symlink resolved) an existing path names.
fn real(p: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(p).ok()
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
            ..Self::deny_all()
        }
    }

    /// No command may run.
    pub fn deny_all() -> Self {
        Self {
            allow_any: false,
            allow: BTreeSet::new(),
            deny: BTreeSet::new(),
            deny_names: BTreeSet::new(),
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
        // A command that is not installed cannot run; its entry matches nothing.
        let resolve = |names: &BTreeSet<String>| -> BTreeSet<PathBuf> {
            names
                .iter()
                .filter_map(|n| locate(n, None).and_then(|p| real(&p)))
                .collect()
        };
        Ok(Self {
            allow_any,
            allow: resolve(&allow),
            deny: resolve(&deny),
            deny_names: deny
                .iter()
                .map(|d| {
                    Path::new(d)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or(d)
                        .to_string()
                })
                .collect(),
        })
    }

    /// Whether `program` (as written in `argv[0]`) may run, judged before the workspace
    /// exists: a path relative to the workspace is only allowed by `"*"`.
    ///
    /// # Errors
    /// A sentence naming the command and the rule that refuses it.
    ///
    /// ```
    /// let p = nofx::tools::CommandPolicy::from_toml("[commands]\nallow = [\"sh\"]\n", "tools.toml").unwrap();
    /// assert!(p.check("sh").is_ok());
    /// assert!(p.check("/bin/sh").is_ok());
    /// assert!(p.check("./sh").is_err());
    /// assert!(p.check("curl").is_err());
    /// ```
    pub fn check(&self, program: &str) -> Result<(), String> {
        self.resolve(program, None).map(|_| ())
    }

    /// The file to run for `program` in workspace `cwd` when the policy allows it: the very
    /// file that was checked, so nothing can stand in for it between the check and the start.
    /// `None` (only with `"*"`) when no such file exists; starting it then fails as usual.
    ///
    /// # Errors
    /// A sentence naming the command and the rule that refuses it.
    pub fn resolve(&self, program: &str, cwd: Option<&Path>) -> Result<Option<PathBuf>, String> {
        let name = Path::new(program)
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or(program);
        let found = locate(program, cwd);
        let real_path = found.as_deref().and_then(real);
        if self.deny_names.contains(name)
            || real_path.as_ref().is_some_and(|r| self.deny.contains(r))
        {
            return Err(format!(
                "command `{program}` is denied by the command policy (commands.deny)"
            ));
        }
        if self.allow_any {
            return Ok(found);
        }
        match real_path {
            Some(r) if self.allow.contains(&r) => Ok(found),
            Some(r) => Err(format!(
                "command `{program}` is not allowed by the command policy (it runs {}); add it to `commands.allow` in policies/tools.toml",
                r.display()
            )),
            None if program.contains('/') && !Path::new(program).is_absolute() => Err(format!(
                "command `{program}` runs a file of the workspace, which the command policy does not allow (only `\"*\"` does)"
            )),
            None if program.contains('/') => Err(format!("command `{program}` does not exist")),
            None => Err(format!(
                "command `{program}` is not found on PATH, so the command policy cannot allow it"
            )),
        }
    }
}

impl CommandPolicy {
    /// Commands of a plan that this policy refuses, found before anything runs: the `argv[0]`
    /// of `shell` tasks and of command gates, when it is written out (not a reference).
    pub fn plan_problems(&self, plan: &Plan) -> Vec<(usize, PlanError)> {
        let mut out = Vec::new();
        // Subtasks of static sub-plans and for_each templates run commands too.
        for (i, (id, t)) in plan
            .tasks
            .iter()
            .enumerate()
            .flat_map(|(i, top)| top.with_nested().into_iter().map(move |x| (i, x)))
        {
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
                            task: id.clone(),
                            why,
                        },
                    ));
                }
            }
        }
        out
    }
}

impl From<PolicyError> for ConfigIssue {
    fn from(e: PolicyError) -> Self {
        Self {
            file: e.file,
            line: Some(e.line),
            message: e.message,
        }
    }
}

/// Loads `tools.toml` from a policies directory; without the file, `default` applies (the
/// command policy's file is read here, with the policy, so configuration needs no tools).
///
/// # Errors
/// Every bad entry.
pub fn load_command_policy(
    dir: &Path,
    default: CommandPolicy,
) -> Result<CommandPolicy, ConfigErrors> {
    let path = dir.join("tools.toml");
    let display = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => CommandPolicy::from_toml(&text, &display)
            .map_err(|es| ConfigErrors(es.into_iter().map(ConfigIssue::from).collect())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(default),
        Err(e) => Err(ConfigErrors(vec![ConfigIssue {
            file: display,
            line: None,
            message: format!("cannot read: {e}"),
        }])),
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

    #[test]
    fn an_allowed_name_does_not_allow_another_file_of_that_name() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("sh");
        std::fs::copy("/bin/true", &fake).unwrap();
        let p = CommandPolicy::from_toml("[commands]\nallow = [\"sh\"]\n", "t").unwrap();
        assert!(p.check("sh").is_ok());
        assert!(p.resolve("sh", Some(dir.path())).unwrap().is_some());
        let e = p.check(fake.to_str().unwrap()).unwrap_err();
        assert!(e.contains("is not allowed"), "{e}");
        let e = p.resolve("./sh", Some(dir.path())).unwrap_err();
        assert!(e.contains("is not allowed"), "{e}");
        assert!(p
            .check("./sh")
            .unwrap_err()
            .contains("runs a file of the workspace"));
    }
}
