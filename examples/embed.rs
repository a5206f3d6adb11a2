//! Start here: a runtime on the embedded store, a tool written as a closure, a plan from
//! YAML, its events followed as they are committed, and the outcome with every task's
//! outputs.
//!
//!     cargo run --example embed

use futures::StreamExt;
use nofx::plan::{Format, PlanSource};
use nofx::tools::{tool_fn, ToolOutput};
use nofx::{RunStatus, Runtime};
use serde::Deserialize;
use serde_json::{json, Map};

const PLAN: &str = r#"
name: embedded
inputs:
  text: { type: string, default: "the quick brown fox jumps over the lazy dog" }
tasks:
  - id: count
    tool: text:words
    inputs: { text: "${inputs.text}" }
  - id: report
    tool: test:echo
    inputs: { summary: "${tasks.count.outputs.words} words" }
    gates: [ { kind: pattern, output: summary, regex: "^[0-9]+ words$" } ]
"#;

#[derive(Deserialize)]
struct Text {
    text: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A memory store keeps nothing after the program ends; `.data_dir("state")` alone
    // keeps runs in `state/nofx.db`, where a later life of the program finds them.
    let rt = Runtime::builder()
        .memory_store()
        .tool(tool_fn(
            "text:words",
            json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}),
            |ctx| async move {
                let Text { text } = ctx.input()?;
                Ok(ToolOutput::new().output("words", text.split_whitespace().count()))
            },
        ))
        .build()
        .await?;

    let plan = PlanSource::parse(PLAN, Format::Yaml, Some("embedded plan"))?;
    let run = rt.submit(&plan, Map::new()).await?; // committed when this returns
    println!("run {} (correlation id {})", run.id(), run.correlation_id());

    let mut events = Box::pin(run.subscribe()); // every event, in order, without gaps
    while let Some(event) = events.next().await {
        let e = event?;
        println!(
            "  {:>3} {:<15} {}",
            e.seq,
            e.kind,
            e.task_id.map(|t| t.to_string()).unwrap_or_default()
        );
    }

    let outcome = run.wait().await?;
    println!("status: {}", outcome.status);
    for t in &outcome.tasks {
        println!("  {} -> {}", t.id, t.outputs.clone().unwrap_or_default());
    }
    rt.shutdown().await;
    if outcome.status != RunStatus::Succeeded {
        return Err(format!("run ended {}", outcome.status).into());
    }
    Ok(())
}
