//! Embedding nofx: a custom tool and agent registered in code, a plan built from YAML,
//! events followed as they are committed, and the outcome with every task's outputs.
//!
//!     cargo run --example embed

use futures::future::BoxFuture;
use futures::StreamExt;
use nofx::domain::plan::{Format, PlanSource};
use nofx::tools::{Tool, ToolContext, ToolError, ToolOutput};
use nofx::{AgentSpec, Role, Runtime};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Counts the words of `text`.
struct WordCount;

impl Tool for WordCount {
    fn name(&self) -> &str {
        "text:words"
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}})
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let text = ctx.inputs["text"].as_str().unwrap_or_default();
            let mut out = ToolOutput::default();
            out.outputs
                .insert("words".into(), json!(text.split_whitespace().count()));
            Ok(out)
        })
    }
}

const PLAN: &str = r#"
name: embedded
inputs:
  text: { type: string, default: "the quick brown fox jumps over the lazy dog" }
tasks:
  - id: count
    tool: text:words
    capabilities: [text]
    inputs: { text: "${inputs.text}" }
  - id: report
    tool: test:echo
    inputs: { summary: "${tasks.count.outputs.words} words" }
    gates: [ { kind: pattern, output: summary, regex: "^[0-9]+ words$" } ]
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::env::temp_dir().join(format!("nofx-embed-{}", std::process::id()));
    let rt = Runtime::builder()
        .memory_store()
        .data_dir(&data)
        .agent(
            AgentSpec::new("linguist", Role::Specialist)
                .with_capabilities(["text"])
                .with_limits(2, Some(10.0)),
        )
        .tool(Arc::new(WordCount))
        .build()
        .await?;

    let plan = PlanSource::parse(PLAN, Format::Yaml, Some("embedded plan"))?;
    let run = rt.submit(&plan, Map::new()).await?;
    println!("run {} (correlation id {})", run.id(), run.correlation_id());

    let mut events = Box::pin(run.subscribe());
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
    let _ = std::fs::remove_dir_all(&data);
    if outcome.status != nofx::RunStatus::Succeeded {
        return Err(format!("run ended {}", outcome.status).into());
    }
    Ok(())
}
