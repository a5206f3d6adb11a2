//! `nofx gc [--dry-run]`: apply `policies/retention.toml` now.

use super::{dir_or_default, open_existing_store, CliResult, Failure, Global};
use clap::Args;
use nofx::retention::{self, GcReport, RetentionPolicy};

#[derive(Args)]
pub struct GcArgs {
    /// Count what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// The retention policy the flags name (the shipped one without a file).
pub fn load_retention(g: &Global) -> Result<RetentionPolicy, Failure> {
    Ok(match dir_or_default(&g.policies, "policies")? {
        Some(dir) => RetentionPolicy::load(&dir)?,
        None => RetentionPolicy::default(),
    })
}

/// One line a person reads.
pub fn describe(r: &GcReport) -> String {
    format!(
        "{} {} finished run(s) past retention ({} events, {} metrics rows, {} checkpoints, {} workspaces), {} checkpoint(s) over the per-run limit, {} unreferenced artifact file(s) ({} bytes)",
        if r.dry_run { "would prune" } else { "pruned" },
        r.runs_pruned,
        r.events,
        r.metrics,
        r.checkpoints_expired,
        r.workspaces,
        r.checkpoints_over_limit,
        r.artifact_files,
        r.artifact_bytes
    )
}

pub async fn gc(g: &Global, a: GcArgs) -> CliResult {
    let policy = load_retention(g)?;
    let store = open_existing_store(g).await?;
    let now = nofx::domain::time::now_ms();
    let report = retention::sweep(&store, &g.data_dir, &policy, a.dry_run, now).await;
    store.close().await;
    let report = report.map_err(|e| Failure::Error(e.to_string()))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Failure::Error(e.to_string()))?
        );
    } else {
        println!("{}", describe(&report));
    }
    Ok(())
}
