//! Configuration files: agent manifests (`agents/*.toml`) and policies (`policies/*.toml`).
//! Each file is parsed into plain serde structs (`deny_unknown_fields`), then validated into
//! domain types; a load reports every bad entry, each naming file, line and key.

mod agents;

pub(crate) use agents::tool_pattern_error;
pub use agents::{builtin_agents, load_agents, parse_agent};

use std::fmt;
use std::path::Path;

/// The 1-based line of a byte offset in `text`.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses a TOML file into its raw serde struct; a syntax error, unknown key or wrong type
/// becomes one issue naming the file and line.
///
/// # Errors
/// The first problem serde meets.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<T, Vec<ConfigIssue>> {
    toml::from_str(text).map_err(|e| {
        vec![ConfigIssue {
            file: file.to_string(),
            line: e.span().map(|s| line_at(text, s.start)),
            message: e.message().trim_end().to_string(),
        }]
    })
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The file.
    pub file: String,
    /// 1-based line (when known).
    pub line: Option<usize>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found while loading configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A policy file of `dir` (its text and the name to report), or the shipped text when `dir`
/// is not given or has no such file.
///
/// # Errors
/// A file that exists but cannot be read.
pub(crate) fn read_policy(
    dir: Option<&Path>,
    file: &str,
    shipped: &'static str,
) -> Result<(String, String), ConfigIssue> {
    let built_in = || (shipped.to_string(), format!("policies/{file} (built in)"));
    let Some(dir) = dir else {
        return Ok(built_in());
    };
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok((t, path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(built_in()),
        Err(e) => Err(ConfigIssue {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot read: {e}"),
        }),
    }
}

const SHIPPED_CHECKPOINTS: &str = include_str!("../../policies/checkpoints.toml");

/// Loads `checkpoints.toml` (`every`, `before_approval`) from a policies directory: when
/// runs whose plan has no `checkpoints` key are checkpointed. Without the file, the shipped
/// one.
///
/// # Errors
/// A syntax error, unknown key or wrong type, naming file and line.
pub fn load_checkpoint_policy(
    dir: &Path,
) -> Result<crate::domain::plan::CheckpointPolicy, ConfigErrors> {
    let (text, file) = read_policy(Some(dir), "checkpoints.toml", SHIPPED_CHECKPOINTS)
        .map_err(|e| ConfigErrors(vec![e]))?;
    parse_toml(&text, &file).map_err(ConfigErrors)
}

const SHIPPED_LIMITS: &str = include_str!("../../policies/limits.toml");

/// Loads `limits.toml` (`max_depth`, `max_subtasks`, `max_for_each`, `max_tasks`) from a
/// policies directory: how far and how wide tasks may decompose. Without the file, the
/// shipped one.
///
/// # Errors
/// A syntax error, unknown key, wrong type or a limit of 0, naming file and line.
pub fn load_limits(dir: &Path) -> Result<crate::domain::plan::Limits, ConfigErrors> {
    let (text, file) =
        read_policy(Some(dir), "limits.toml", SHIPPED_LIMITS).map_err(|e| ConfigErrors(vec![e]))?;
    let limits: crate::domain::plan::Limits = parse_toml(&text, &file).map_err(ConfigErrors)?;
    let zero: Vec<ConfigIssue> = limits
        .named()
        .into_iter()
        .filter(|(_, v)| *v == 0)
        .map(|(name, _)| ConfigIssue {
            file: file.clone(),
            line: text
                .find(&format!("{name} ="))
                .or_else(|| text.find(name))
                .map(|at| line_at(&text, at)),
            message: format!("`{name}` must be at least 1"),
        })
        .collect();
    if zero.is_empty() {
        Ok(limits)
    } else {
        Err(ConfigErrors(zero))
    }
}
