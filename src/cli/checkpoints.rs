//! `nofx checkpoints create|ls|restore`: save what a run has done so far, and start a new
//! run from there.

use super::run::StartArgs;
use super::{open_existing_store, runtime, CliResult, Failure, Global};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum CheckpointsCommand {
    /// Checkpoint a run; prints the checkpoint id alone on the last line of stdout.
    Create {
        /// Run id or unique prefix.
        run: String,
        /// What the checkpoint is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List a run's checkpoints, oldest first.
    Ls {
        /// Run id or unique prefix.
        run: String,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Start a new run from a checkpoint: its tasks are restored, the workspace is rebuilt,
    /// the rest of the plan runs (in the foreground, like `nofx run`).
    Restore {
        /// The checkpoint id.
        checkpoint: String,
        #[command(flatten)]
        start: StartArgs,
    },
}

pub async fn dispatch(g: &Global, c: CheckpointsCommand) -> CliResult {
    match c {
        CheckpointsCommand::Restore { checkpoint, start } => {
            let opts = start.options()?;
            let rt = runtime(g).await?;
            let submitted = rt.restore(&checkpoint, opts).await;
            let headline = format!("restored from checkpoint {checkpoint}");
            super::run::drive(&rt, submitted, &start, &headline).await
        }
        CheckpointsCommand::Create { run, description } => {
            let rt = runtime(g).await?;
            let result = async {
                let id = rt.store().find_run(&run).await?;
                Ok::<_, Failure>(rt.checkpoint(id, description).await?)
            }
            .await;
            rt.shutdown().await;
            let cp = result?;
            eprintln!(
                "checkpoint of run {}: {} succeeded task(s), {} artifact(s), {} workspace file(s)",
                cp.run_id,
                cp.step,
                cp.artifacts.as_array().map_or(0, Vec::len),
                cp.manifest.as_object().map_or(0, |m| m.len())
            );
            println!("{}", cp.id);
            Ok(())
        }
        CheckpointsCommand::Ls { run, json } => {
            let store = open_existing_store(g).await?;
            let result = async {
                let id = store.find_run(&run).await?;
                Ok::<_, Failure>(store.checkpoints(id).await?)
            }
            .await;
            store.close().await;
            let cps = result?;
            if json {
                println!(
                    "{}",
                    // The document of `GET /runs/{id}/checkpoints`.
                    serde_json::to_string_pretty(&serde_json::json!({ "checkpoints": cps }))
                        .map_err(|e| Failure::Error(e.to_string()))?
                );
                return Ok(());
            }
            println!("{:<42} {:>5} {:<24} DESCRIPTION", "ID", "STEP", "CREATED");
            for c in cps {
                println!(
                    "{:<42} {:>5} {:<24} {}",
                    c.id,
                    c.step,
                    crate::domain::time::rfc3339_secs(c.created_at),
                    c.description.unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}
