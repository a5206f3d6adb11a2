//! `nofx gc [--dry-run]`: apply `policies/retention.toml` now.

use super::{dir_or_default, open_existing_store, CliResult, Failure, Global};
use crate::retention::{self, RetentionPolicy};
use clap::Args;

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
pub async fn gc(g: &Global, a: GcArgs) -> CliResult {
    let policy = load_retention(g)?;
    let store = open_existing_store(g).await?;
    let now = crate::domain::time::now_ms();
    let report = retention::sweep(&store, &g.data_dir, &policy, a.dry_run, now).await;
    store.close().await;
    let report = report.map_err(|e| Failure::Error(e.to_string()))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Failure::Error(e.to_string()))?
        );
    } else {
        println!("{report}");
    }
    Ok(())
}
