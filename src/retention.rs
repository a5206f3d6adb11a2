//! Retention: the store and the data directory do not grow without bound. Past its project's
//! retention, a finished run's events, metrics, checkpoints and workspace are deleted (the
//! run and task rows, artifacts and usage rows stay); a run keeps at most its project's
//! number of checkpoints; artifact files no row refers to are deleted once older than a grace
//! period (so a file written but not yet committed is never taken).
//!
//! `policies/retention.toml`:
//!
//! ```toml
//! days = 30                     # 0: keep forever
//! max_checkpoints_per_run = 20  # 0: no limit
//! artifact_grace_hours = 24
//! sweep_every_minutes = 60      # `nofx serve`
//!
//! [projects.acme]               # any of days / max_checkpoints_per_run
//! days = 7
//! ```

use crate::config::{parse_toml, ConfigErrors, ConfigIssue};
use crate::domain::RunId;
use crate::store::{Blobs, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Rows deleted per statement (each its own transaction).
const CHUNK: i64 = 1000;
/// Expired runs handled per query.
const RUNS_PER_QUERY: i64 = 200;

/// A retention failure.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A store query failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file or directory could not be read or removed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// What one project keeps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionRule {
    /// Days a finished run keeps its events, metrics, checkpoints and workspace (0: forever).
    pub days: f64,
    /// Checkpoints a run keeps, newest first (0: all).
    pub max_checkpoints_per_run: u32,
}

/// The retention policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    /// Every project without its own rule.
    pub default: RetentionRule,
    /// Rules by project.
    pub projects: BTreeMap<String, RetentionRule>,
    /// Age above which an artifact file no row refers to is deleted.
    pub artifact_grace: Duration,
    /// How often `nofx serve` sweeps.
    pub sweep_every: Duration,
}

/// The shipped `policies/retention.toml`: what applies without a file, and to the keys a
/// file leaves out.
const SHIPPED: &str = include_str!("../policies/retention.toml");

impl Default for RetentionPolicy {
    /// The shipped `policies/retention.toml`.
    fn default() -> Self {
        Self::from_toml(SHIPPED, "policies/retention.toml (built in)")
            .expect("the shipped retention policy loads (tested)")
    }
}

type Number = toml::Spanned<f64>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    days: Option<Number>,
    max_checkpoints_per_run: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    days: Option<Number>,
    max_checkpoints_per_run: Option<u32>,
    artifact_grace_hours: Option<Number>,
    sweep_every_minutes: Option<Number>,
    #[serde(default)]
    projects: BTreeMap<String, RawRule>,
}

impl RetentionPolicy {
    /// The rule of `project`.
    pub fn rule(&self, project: &str) -> RetentionRule {
        self.projects.get(project).copied().unwrap_or(self.default)
    }

    /// Parses `retention.toml`; every bad value is reported with file, line and key.
    ///
    /// # Errors
    /// Syntax errors, unknown keys, negative or non-finite numbers.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, ConfigErrors> {
        let raw: RawPolicy = parse_toml(text, file).map_err(ConfigErrors)?;
        let shipped: RawPolicy =
            parse_toml(SHIPPED, "policies/retention.toml").map_err(ConfigErrors)?;
        let fallback = |n: Option<Number>| n.map(|v| *v.get_ref()).unwrap_or_default();
        let mut issues = Vec::new();
        // A number of 0 or more (`positive`: above 0), else an issue naming its line.
        let mut check = |key: String, v: Option<Number>, default: f64, positive: bool| {
            let Some(v) = v else { return default };
            let n = *v.get_ref();
            let ok = n.is_finite() && if positive { n > 0.0 } else { n >= 0.0 };
            if !ok {
                issues.push(ConfigIssue {
                    file: file.to_string(),
                    line: Some(crate::config::line_at(text, v.span().start)),
                    message: format!(
                        "`{key}` must be a number {}, got {n}",
                        if positive { "above 0" } else { "of 0 or more" }
                    ),
                });
            }
            n
        };
        let days = check("days".into(), raw.days, fallback(shipped.days), false);
        let grace = check(
            "artifact_grace_hours".into(),
            raw.artifact_grace_hours,
            fallback(shipped.artifact_grace_hours),
            false,
        );
        let every = check(
            "sweep_every_minutes".into(),
            raw.sweep_every_minutes,
            fallback(shipped.sweep_every_minutes),
            true,
        );
        let default = RetentionRule {
            days,
            max_checkpoints_per_run: raw
                .max_checkpoints_per_run
                .or(shipped.max_checkpoints_per_run)
                .unwrap_or_default(),
        };
        let mut projects = BTreeMap::new();
        for (name, r) in raw.projects {
            let days = check(format!("projects.{name}.days"), r.days, default.days, false);
            projects.insert(
                name,
                RetentionRule {
                    days,
                    max_checkpoints_per_run: r
                        .max_checkpoints_per_run
                        .unwrap_or(default.max_checkpoints_per_run),
                },
            );
        }
        if !issues.is_empty() {
            return Err(ConfigErrors(issues));
        }
        Ok(Self {
            default,
            projects,
            artifact_grace: Duration::from_secs_f64(grace.max(0.0) * 3600.0),
            sweep_every: Duration::from_secs_f64(every.max(0.001) * 60.0),
        })
    }

    /// Loads `retention.toml` from a policies directory; without the file, the shipped
    /// policy.
    ///
    /// # Errors
    /// As [`RetentionPolicy::from_toml`]; an unreadable file.
    pub fn load(dir: &Path) -> Result<Self, ConfigErrors> {
        let (text, file) = crate::config::read_policy(Some(dir), "retention.toml", SHIPPED)
            .map_err(|e| ConfigErrors(vec![e]))?;
        Self::from_toml(&text, &file)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_policy_loads() {
        let p = super::RetentionPolicy::default();
        assert_eq!(p.default.days, 30.0);
        assert_eq!(p.default.max_checkpoints_per_run, 20);
        assert_eq!(p.artifact_grace, std::time::Duration::from_secs(24 * 3600));
        assert_eq!(p.sweep_every, std::time::Duration::from_secs(3600));
    }
}

/// What a sweep deleted (or, dry, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// Nothing was deleted: these are the counts a sweep would delete now.
    pub dry_run: bool,
    /// Finished runs past retention whose events, metrics, checkpoints, agent journals and
    /// workspace went.
    pub runs_pruned: u64,
    /// Events deleted.
    pub events: u64,
    /// Metrics rows deleted.
    pub metrics: u64,
    /// Checkpoints of pruned runs deleted.
    pub checkpoints_expired: u64,
    /// Agent loops of pruned runs deleted, with their turns and tool calls.
    pub agent_loops: u64,
    /// Checkpoints over a run's limit deleted.
    pub checkpoints_over_limit: u64,
    /// Run workspaces removed.
    pub workspaces: u64,
    /// Artifact files no row refers to, removed.
    pub artifact_files: u64,
    /// Their bytes.
    pub artifact_bytes: u64,
}

/// One line, as `nofx gc` prints it.
impl std::fmt::Display for GcReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} finished run(s) past retention ({} events, {} metrics rows, {} checkpoints, {} agent loops, {} workspaces), {} checkpoint(s) over the per-run limit, {} unreferenced artifact file(s) ({} bytes)",
            if self.dry_run { "would prune" } else { "pruned" },
            self.runs_pruned,
            self.events,
            self.metrics,
            self.checkpoints_expired,
            self.agent_loops,
            self.workspaces,
            self.checkpoints_over_limit,
            self.artifact_files,
            self.artifact_bytes
        )
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GcError + '_ {
    move |source| GcError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Removes (with `dry_run`: counts) the run directories under `runs_dir` whose run is in
/// `gone` or marked pruned in the store; returns how many.
async fn sweep_workspaces(
    store: &Store,
    runs_dir: &Path,
    gone: &HashSet<RunId>,
    dry_run: bool,
) -> Result<u64, GcError> {
    let mut entries = match tokio::fs::read_dir(runs_dir).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(runs_dir)(e)),
    };
    let mut dirs: Vec<RunId> = Vec::new();
    while let Some(e) = entries.next_entry().await.map_err(io(runs_dir))? {
        // Only directories named by a run id; anything else here is not nofx's.
        if let Some(id) = e.file_name().to_str().and_then(|n| n.parse::<RunId>().ok()) {
            if e.file_type().await.map_err(io(runs_dir))?.is_dir() {
                dirs.push(id);
            }
        }
    }
    let others: Vec<RunId> = dirs.iter().copied().filter(|r| !gone.contains(r)).collect();
    let pruned = store.pruned_among(&others).await?;
    let mut removed = 0;
    for id in dirs {
        if !(gone.contains(&id) || pruned.contains(&id)) {
            continue;
        }
        removed += 1;
        if !dry_run {
            let dir = runs_dir.join(id.to_string());
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&dir)(e)),
            }
        }
    }
    Ok(removed)
}

/// Applies `policy` at time `now` (ms): prunes finished runs past retention, trims
/// checkpoints over the limit, removes unreferenced artifact files past the grace period.
/// With `dry_run`, only counts.
///
/// # Errors
/// Store and file failures (what was deleted before stays deleted; a later sweep goes on).
pub async fn sweep(
    store: &Store,
    data_dir: &Path,
    policy: &RetentionPolicy,
    dry_run: bool,
    now: i64,
) -> Result<GcReport, GcError> {
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    // Finished runs past retention, project by project.
    let named: Vec<String> = policy.projects.keys().cloned().collect();
    let mut scopes: Vec<(Option<&str>, RetentionRule)> = vec![(None, policy.default)];
    for (name, rule) in &policy.projects {
        scopes.push((Some(name.as_str()), *rule));
    }
    // The stored workspaces are absolute; so is the directory they are compared with.
    let data_dir = &std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let runs_dir = data_dir.join("runs");
    // What this sweep deletes (a dry run: would delete) stops protecting artifact files.
    let mut gone_runs = HashSet::new();
    let mut gone_checkpoints = HashSet::new();
    for (project, rule) in scopes {
        if rule.days <= 0.0 {
            continue;
        }
        let cutoff = now - (rule.days * 86_400_000.0) as i64;
        let mut seen = HashSet::new();
        loop {
            let runs = store
                .expired_runs(project, &named, cutoff, RUNS_PER_QUERY)
                .await?;
            let fresh: Vec<_> = runs.into_iter().filter(|r| seen.insert(r.id)).collect();
            if fresh.is_empty() {
                break;
            }
            for run in fresh {
                let rows = if dry_run {
                    store.run_rows(run.id).await?
                } else {
                    store.prune_run(run.id, CHUNK, now).await?
                };
                report.runs_pruned += 1;
                gone_runs.insert(run.id);
                report.events += rows.events;
                report.metrics += rows.metrics;
                report.checkpoints_expired += rows.checkpoints;
                report.agent_loops += rows.agent_loops;
            }
            if dry_run {
                // Nothing was marked: the same runs would come back.
                break;
            }
        }
    }
    // Workspaces under this data directory of runs pruned now or by an earlier sweep (a
    // sweep that could not remove one, or a node with another data directory, leaves it for
    // the next).
    report.workspaces = sweep_workspaces(store, &runs_dir, &gone_runs, dry_run).await?;
    // Checkpoints over a run's limit.
    let smallest = std::iter::once(policy.default)
        .chain(policy.projects.values().copied())
        .map(|r| r.max_checkpoints_per_run)
        .filter(|&k| k > 0)
        .min();
    if let Some(k) = smallest {
        for (run, project, n) in store.checkpoint_counts(i64::from(k)).await? {
            let keep = policy.rule(&project).max_checkpoints_per_run;
            if keep == 0 || n <= i64::from(keep) {
                continue;
            }
            if gone_runs.contains(&run) {
                continue;
            }
            report.checkpoints_over_limit += if dry_run {
                let over = (n - i64::from(keep)) as usize;
                let oldest = store.checkpoints(run).await?.into_iter().take(over);
                gone_checkpoints.extend(oldest.map(|c| c.id));
                over as u64
            } else {
                store.trim_checkpoints(run, i64::from(keep)).await?
            };
        }
    }
    // Artifact files no row refers to, older than the grace period.
    let referenced = store
        .referenced_hashes(&gone_runs, &gone_checkpoints)
        .await?;
    let blobs = Blobs::new(data_dir.join("artifacts"));
    let grace_until = SystemTime::UNIX_EPOCH + Duration::from_millis(now.max(0) as u64)
        - policy
            .artifact_grace
            .min(Duration::from_millis(now.max(0) as u64));
    let old = |meta: &std::fs::Metadata| meta.modified().map(|m| m < grace_until).unwrap_or(false);
    let shards = blobs.root().join("sha256");
    let mut dirs = match tokio::fs::read_dir(&shards).await {
        Ok(d) => Some(d),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&shards)(e)),
    };
    while let Some(d) = dirs.as_mut() {
        let Some(shard) = d.next_entry().await.map_err(io(&shards))? else {
            break;
        };
        let prefix = shard.file_name().to_string_lossy().to_string();
        let shard_path = shard.path();
        if !shard.file_type().await.map_err(io(&shard_path))?.is_dir() {
            continue;
        }
        let mut files = tokio::fs::read_dir(&shard_path)
            .await
            .map_err(io(&shard_path))?;
        while let Some(f) = files.next_entry().await.map_err(io(&shard_path))? {
            let hash = format!("{prefix}{}", f.file_name().to_string_lossy());
            if referenced.contains(&hash) {
                continue;
            }
            let path = f.path();
            let meta = match tokio::fs::metadata(&path).await {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path)(e)),
            };
            if !meta.is_file() || !old(&meta) {
                continue;
            }
            report.artifact_files += 1;
            report.artifact_bytes += meta.len();
            if !dry_run {
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path)(e)),
                }
            }
        }
    }
    // Temporary files of writes that never finished (a crash), past the grace period.
    let tmp = blobs.root().join("tmp");
    if let Ok(mut entries) = tokio::fs::read_dir(&tmp).await {
        while let Some(f) = entries.next_entry().await.map_err(io(&tmp))? {
            let path = f.path();
            if let Ok(meta) = tokio::fs::metadata(&path).await {
                if meta.is_file() && old(&meta) && !dry_run {
                    let _ = tokio::fs::remove_file(&path).await;
                }
            }
        }
    }
    Ok(report)
}
