//! `nofx backup FILE`: a consistent copy of the SQLite store, taken while runs execute.

use super::{open_existing_store, CliResult, Failure, Global};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct BackupArgs {
    /// Where the copy goes (a new file; never overwritten).
    file: PathBuf,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn backup(g: &Global, a: BackupArgs) -> CliResult {
    let store = open_existing_store(g).await?;
    let report = store.backup_to(&a.file).await;
    store.close().await;
    let report = report?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Failure::Error(e.to_string()))?
        );
    } else {
        println!(
            "backed up {} to {}: {} run(s), {} bytes, as of {}",
            super::describe_store(g),
            report.file.display(),
            report.runs,
            report.bytes,
            report.at
        );
    }
    Ok(())
}
