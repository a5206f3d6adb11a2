//! A tool that blocks its thread (a synchronous client, file or CPU work) beside a quick
//! one: the blocking work runs on blocking threads of its own, so the quick task is not
//! held up; the run's events arrive while the slow task works.
//!
//!     cargo run --example blocking_tool

use futures::StreamExt;
use nofx::plan::{Plan, Task};
use nofx::tools::{blocking_tool_fn, ToolOutput};
use nofx::{EventType, RunStatus, Runtime};
use serde_json::{json, Map};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let crunch = blocking_tool_fn("math:crunch", json!({"type": "object"}), |ctx| {
        // Plain blocking code: no await, no runtime needed.
        let end = Instant::now() + Duration::from_millis(1500);
        let mut rounds = 0u64;
        while Instant::now() < end && !ctx.cancel.is_cancelled() {
            std::thread::sleep(Duration::from_millis(10));
            rounds += 1;
        }
        Ok(ToolOutput::new().output("rounds", rounds))
    });
    let rt = Runtime::builder()
        .memory_store()
        .tool(crunch)
        .build()
        .await?;

    // Two slow tasks and a quick one, all ready at once.
    let plan = Plan::new("side by side")
        .task(Task::new("slow1", "math:crunch"))
        .task(Task::new("slow2", "math:crunch"))
        .task(Task::new("quick", "test:echo").input("x", 1));
    let started = Instant::now();
    let run = rt.submit(plan, Map::new()).await?;
    let mut events = Box::pin(run.subscribe());
    let mut order = Vec::new();
    while let Some(event) = events.next().await {
        let e = event?;
        if e.kind == EventType::TaskSucceeded {
            let task = e.task_id.map(|t| t.to_string()).unwrap_or_default();
            println!(
                "{task} succeeded after {} ms",
                started.elapsed().as_millis()
            );
            order.push(task);
        }
    }
    let outcome = run.wait().await?;
    println!(
        "{} in {:.2}s",
        outcome.status,
        started.elapsed().as_secs_f64()
    );
    rt.shutdown().await;
    // The quick task ended first: the blocking ones did not hold it up.
    if outcome.status != RunStatus::Succeeded || order.first().map(String::as_str) != Some("quick")
    {
        return Err(format!("the quick task was held up: {order:?}").into());
    }
    Ok(())
}
