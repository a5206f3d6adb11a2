//! Cancelling a run: a long task is stopped where it is (its tool sees the cancellation,
//! its processes are killed), the tasks after it never start, and the outcome says why.
//!
//!     cargo run --example cancel

use futures::StreamExt;
use nofx::plan::{Plan, Task};
use nofx::tools::{tool_fn, ToolError};
use nofx::{EventType, RunStatus, Runtime};
use serde_json::{json, Map};
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A tool that works until its attempt is cancelled.
    let watch = tool_fn("feed:watch", json!({"type": "object"}), |ctx| async move {
        ctx.cancel.cancelled().await;
        Err(ToolError::Cancelled)
    });
    let rt = Runtime::builder()
        .memory_store()
        .tool(watch)
        .build()
        .await?;
    let plan = Plan::new("watchers")
        .task(Task::new("watch", "feed:watch"))
        .task(Task::new("sleep", "shell").input("argv", json!(["sleep", "600"])))
        .task(
            Task::new("summary", "test:echo")
                .input("x", 1)
                .after("watch")
                .after("sleep"),
        );
    let run = rt.submit(plan, Map::new()).await?;

    // Cancel once both long tasks run.
    let mut started = 0;
    let mut events = Box::pin(run.subscribe());
    while let Some(event) = events.next().await {
        if event?.kind == EventType::TaskStarted {
            started += 1;
            if started == 2 {
                break;
            }
        }
    }
    let asked = Instant::now();
    println!("{:?}", run.cancel().await?);
    let outcome = run.wait().await?;
    println!(
        "run {} in {} ms: {}",
        outcome.status,
        asked.elapsed().as_millis(),
        outcome.reason.as_deref().unwrap_or("")
    );
    for t in &outcome.tasks {
        println!("  {:<8} {}", t.id, t.status);
    }
    rt.shutdown().await;
    if outcome.status != RunStatus::Cancelled {
        return Err(format!("run ended {}", outcome.status).into());
    }
    Ok(())
}
