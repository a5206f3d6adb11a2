//! `nofx approve|reject RUN TASK --as NAME [--reason TEXT]`: decide on a task waiting at a
//! manual gate, from any process.

use super::{runtime, CliResult, Failure, Global};
use crate::runtime::Decision;
use clap::Args;

#[derive(Args)]
pub struct DecideArgs {
    /// Run id or unique prefix.
    run: String,
    /// The task waiting for a decision.
    task: String,
    /// Who decides (one of the gate's approvers).
    #[arg(long = "as", value_name = "NAME")]
    by: String,
    /// Why.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Print the decided wait as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn decide(g: &Global, a: DecideArgs, approve: bool) -> CliResult {
    let rt = runtime(g).await?;
    let result = async {
        let run = rt.store().find_run(&a.run).await?;
        let decision = Decision {
            approve,
            by: a.by.clone(),
            reason: a.reason.clone(),
        };
        Ok::<_, Failure>((run, rt.decide(run, &a.task, decision).await?))
    }
    .await;
    rt.shutdown().await;
    let (run, wait) = result?;
    eprintln!(
        "{} task {} of run {run} as {}; the run's owner goes on with it",
        if approve { "approved" } else { "rejected" },
        a.task,
        a.by.trim()
    );
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&wait).map_err(|e| Failure::Error(e.to_string()))?
        );
    }
    Ok(())
}
