//! A person in the loop: a task's outputs wait for an approval; the program sees the
//! request as an event, decides, and the run goes on.
//!
//!     cargo run --example approval

use futures::StreamExt;
use nofx::events::EventData;
use nofx::plan::{GateSpec, Plan, Task};
use nofx::{RunStatus, Runtime};
use serde_json::Map;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder().memory_store().build().await?;
    let plan = Plan::new("deploy")
        .task(
            Task::new("plan_change", "test:echo")
                .input("change", "add an index on orders(created_at)")
                .gate(GateSpec::approval(["ana", "ben"])),
        )
        .task(
            Task::new("apply", "test:echo")
                .input("applied", Task::output_ref("plan_change", "change")),
        );
    let run = rt.submit(plan, Map::new()).await?;

    let mut events = Box::pin(run.subscribe());
    while let Some(event) = events.next().await {
        let e = event?;
        if let EventData::ApprovalRequested(req) = e.payload()? {
            let task = e.task_id.map(|t| t.to_string()).unwrap_or_default();
            println!(
                "`{task}` waits for one of {:?} on {}",
                req.approvers,
                req.outputs.unwrap_or_default()
            );
            // Someone not on the list may not decide.
            if let Err(e) = run.approve(&task, "mallory", None).await {
                println!("refused: {e}");
            }
            let decided = run.approve(&task, "ana", Some("looks safe")).await?;
            println!(
                "{:?} by {}",
                decided.decision,
                decided.decided_by.unwrap_or_default()
            );
        }
    }
    let outcome = run.wait().await?;
    println!("run {}", outcome.status);
    rt.shutdown().await;
    if outcome.status != RunStatus::Succeeded {
        return Err(format!("run ended {}", outcome.status).into());
    }
    Ok(())
}
