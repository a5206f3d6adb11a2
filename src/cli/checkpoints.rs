//! `nofx checkpoints create|ls|restore`: save what a run has done so far, and start a new
//! run from there.

use super::{open_store, runtime, CliResult, Failure, Global};
use clap::{Args, Subcommand};
use nofx::runtime::SubmitOptions;
use nofx::CorrelationId;

/// How a restored or forked run is started.
#[derive(Args)]
pub struct StartArgs {
    /// Store the new run, print its id alone on the last line of stdout and exit; `nofx
    /// resume` executes it.
    #[arg(long)]
    pub detach: bool,
    /// Print the final run as JSON on stdout (instead of the run id).
    #[arg(long)]
    pub json: bool,
    /// Use this correlation id instead of a generated one.
    #[arg(long, value_name = "ID")]
    pub correlation_id: Option<String>,
}

impl StartArgs {
    /// The submit options these flags ask for.
    pub fn options(&self) -> Result<SubmitOptions, Failure> {
        Ok(SubmitOptions {
            correlation: match &self.correlation_id {
                Some(c) => Some(CorrelationId::from_caller(c).map_err(Failure::Input)?),
                None => None,
            },
            detach: self.detach,
            ..SubmitOptions::default()
        })
    }
}

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
            super::run::drive(&rt, submitted, start.detach, start.json, &headline).await
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
            let store = open_store(g).await?;
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
                    serde_json::to_string_pretty(&cps)
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
                    nofx::domain::event::from_ms(c.created_at)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    c.description.unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}
