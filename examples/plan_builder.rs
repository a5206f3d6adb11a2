//! Building a plan in code: inputs with defaults, tasks, references to inputs and to other
//! tasks' outputs (no hand-written `${…}`), gates, retries; and what a mistake in a built
//! plan looks like.
//!
//!     cargo run --example plan_builder

use nofx::plan::{GateSpec, InputSpec, InputType, Plan, Task};
use nofx::{RunStatus, Runtime, RuntimeError};
use serde_json::{json, Map};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder().memory_store().build().await?;

    let plan = Plan::new("release notes")
        .input(
            "version",
            InputSpec::new(InputType::String).default_value("1.0.0"),
        )
        .task(
            Task::new("collect", "test:echo")
                .input("version", Plan::input_ref("version"))
                .input("changes", json!(["faster resume", "typed tools"])),
        )
        .task(
            Task::new("draft", "test:echo")
                .input("title", "Release notes")
                .input("changes", Task::output_ref("collect", "changes"))
                .gate(GateSpec::json_schema(
                    "changes",
                    json!({"type": "array", "minItems": 1}),
                ))
                .retries(2, Duration::from_millis(200)),
        )
        .task(
            Task::new("publish", "test:echo")
                .input("version", Task::output_ref("collect", "version"))
                .gate(GateSpec::pattern("version", r"^\d+\.\d+\.\d+$")),
        )
        .timeout(Duration::from_secs(60));

    let mut inputs = Map::new();
    inputs.insert("version".into(), json!("2.1.0"));
    let outcome = rt.submit(plan, inputs).await?.wait().await?;
    for t in &outcome.tasks {
        println!(
            "{:<8} {:<10} {}",
            t.id,
            t.status,
            t.outputs.clone().unwrap_or_default()
        );
    }

    // A reference to a task that does not exist is refused before anything runs, naming
    // the task that holds it.
    let broken = Plan::new("broken")
        .task(Task::new("a", "test:echo").input("x", 1))
        .task(Task::new("b", "test:echo").input("y", Task::output_ref("nope", "x")));
    match rt.submit(broken, Map::new()).await {
        Err(RuntimeError::Plan(errors)) => println!("refused:\n{errors}"),
        other => return Err(format!("a broken plan was not refused: {other:?}").into()),
    }
    rt.shutdown().await;

    if outcome.status != RunStatus::Succeeded
        || outcome.tasks[2].outputs.as_ref().map(|o| &o["version"]) != Some(&json!("2.1.0"))
    {
        return Err(format!("unexpected outcome: {}", outcome.status).into());
    }
    Ok(())
}
