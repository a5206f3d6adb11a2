//! From global flags to what commands use: the store URL, configuration files (agents,
//! command policy, models, templates) and a runtime builder.

use super::{Failure, Global};
use crate::config;
use crate::tools::CommandPolicy;
use crate::{AgentSpec, Runtime, RuntimeBuilder};
use std::path::{Path, PathBuf};

/// The store URL the flags name.
pub fn store_url(g: &Global) -> String {
    match &g.database_url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", g.data_dir.join("nofx.db").display()),
    }
}

pub fn describe_store(g: &Global) -> String {
    match &g.database_url {
        Some(u) if u.starts_with("postgres") => {
            // Never print a password.
            match (u.find("://"), u.rfind('@')) {
                (Some(s), Some(at)) if at > s => format!("{}://…@{}", &u[..s], &u[at + 1..]),
                _ => u.clone(),
            }
        }
        Some(u) => u.clone(),
        None => g.data_dir.join("nofx.db").display().to_string(),
    }
}

/// Opens a store that must exist already (commands that only read or change what is there):
/// a SQLite file that is not there is an error, not a new empty store.
pub async fn open_existing_store(g: &Global) -> Result<crate::store::Store, Failure> {
    let url = store_url(g);
    let file = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .filter(|p| *p != ":memory:");
    if let Some(f) = file {
        if !Path::new(f).exists() {
            return Err(Failure::Input(format!(
                "no store at {f}: nothing has run with this data directory yet (see --data-dir and --database-url)"
            )));
        }
    }
    open_store(g).await
}

/// Opens the store for reads (creating the data directory for the default SQLite file).
pub async fn open_store(g: &Global) -> Result<crate::store::Store, Failure> {
    if g.database_url.is_none() {
        std::fs::create_dir_all(&g.data_dir).map_err(|e| {
            Failure::Input(format!(
                "cannot create data directory {}: {e}",
                g.data_dir.display()
            ))
        })?;
    }
    Ok(crate::store::Store::open(&store_url(g)).await?)
}

pub fn dir_or_default(flag: &Option<PathBuf>, default: &str) -> Result<Option<PathBuf>, Failure> {
    match flag {
        Some(d) if d.is_dir() => Ok(Some(d.clone())),
        Some(d) => Err(Failure::Input(format!(
            "{} is not a directory",
            d.display()
        ))),
        None => Ok(Some(PathBuf::from(default)).filter(|p| p.is_dir())),
    }
}

/// The agents the flags name.
pub fn load_agents(g: &Global) -> Result<Vec<AgentSpec>, Failure> {
    Ok(match dir_or_default(&g.agents, "agents")? {
        Some(dir) => config::load_agents(&dir)?,
        None => config::builtin_agents(),
    })
}

/// The command policy the flags name; without a policy file, `default` applies (the CLI
/// allows any command, `nofx serve` none).
pub fn load_policy(g: &Global, default: CommandPolicy) -> Result<CommandPolicy, Failure> {
    Ok(match dir_or_default(&g.policies, "policies")? {
        Some(dir) => crate::tools::load_command_policy(&dir, default)?,
        None => default,
    })
}

/// Models configured from the policies directory and the environment (keys and base URLs
/// named by `models.toml`).
pub fn load_models(g: &Global) -> Result<crate::models::ModelsConfig, Failure> {
    let dir = dir_or_default(&g.policies, "policies")?;
    Ok(crate::models::ModelsConfig::load(dir.as_deref())?.with_env(|k| std::env::var(k).ok()))
}

/// A runtime configured from the flags.
pub async fn runtime(g: &Global) -> Result<Runtime, Failure> {
    runtime_with(g, CommandPolicy::allow_all()).await
}

/// A runtime configured from the flags, with `default_policy` when no tools.toml exists.
pub async fn runtime_with(g: &Global, default_policy: CommandPolicy) -> Result<Runtime, Failure> {
    Ok(builder(g, default_policy)?.build().await?)
}

/// The builder of `runtime_with`, for commands that set more. Every problem of the flags,
/// agents and policies is reported at once.
pub fn builder(g: &Global, default_policy: CommandPolicy) -> Result<RuntimeBuilder, Failure> {
    fn keep<T>(problems: &mut Vec<String>, r: Result<T, Failure>) -> Option<T> {
        match r {
            Ok(x) => Some(x),
            Err(Failure::Input(m) | Failure::Error(m)) => {
                problems.push(m);
                None
            }
            Err(_) => None,
        }
    }
    let mut problems: Vec<String> = Vec::new();
    let p = &mut problems;
    let ttl = keep(p, lease_ttl(g));
    let agents = keep(p, load_agents(g));
    let policy = keep(p, load_policy(g, default_policy));
    let checkpoints = keep(
        p,
        dir_or_default(&g.policies, "policies").and_then(|dir| {
            Ok(match dir {
                Some(dir) => config::load_checkpoint_policy(&dir)?,
                None => Default::default(),
            })
        }),
    );
    let limits = keep(
        p,
        dir_or_default(&g.policies, "policies").and_then(|dir| {
            Ok(match dir {
                Some(dir) => config::load_limits(&dir)?,
                None => Default::default(),
            })
        }),
    );
    let models = keep(p, load_models(g));
    let mcp = keep(p, super::mcp::load_mcp(g));
    let (
        Some(ttl),
        Some(agents),
        Some(policy),
        Some(checkpoints),
        Some(limits),
        Some(models),
        Some(mcp),
    ) = (ttl, agents, policy, checkpoints, limits, models, mcp)
    else {
        return Err(Failure::Input(problems.join("\n")));
    };
    Ok(Runtime::builder()
        .checkpoint_policy(checkpoints)
        .limits(limits)
        .data_dir(g.data_dir.clone())
        .database_url(store_url(g))
        .agents(agents)
        .command_policy(policy)
        .models(models)
        .mcp(mcp)
        .lease_ttl(ttl))
}

pub fn lease_ttl(g: &Global) -> Result<std::time::Duration, Failure> {
    if !(g.lease_ttl.is_finite() && (1.0..=3600.0).contains(&g.lease_ttl)) {
        return Err(Failure::Input(format!(
            "--lease-ttl must be between 1 and 3600 seconds, got {}",
            g.lease_ttl
        )));
    }
    Ok(std::time::Duration::from_secs_f64(g.lease_ttl))
}

/// Loads the shipped templates the flags name into the store (only the commands that serve
/// or list templates need them, so other commands start without this work).
pub async fn load_templates(g: &Global, rt: &Runtime) -> Result<(), Failure> {
    if let Some(dir) = dir_or_default(&g.templates, "templates")? {
        rt.load_templates(&dir).await?;
    }
    Ok(())
}
