//! Writing a tool: a closure with typed inputs and outputs, a failure the tool reports
//! (with what it produced so far), and retries.
//!
//!     cargo run --example closure_tool

use nofx::plan::{Plan, Task};
use nofx::tools::{tool_fn, ToolError, ToolOutput};
use nofx::{RunStatus, Runtime, TaskStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map};

/// The tool's inputs, read with `ctx.input()`.
#[derive(Deserialize)]
struct Order {
    sku: String,
    quantity: u32,
}

/// Its outputs, written with `ToolOutput::from_serialize`.
#[derive(Serialize)]
struct Quote {
    sku: String,
    total_cents: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let price = tool_fn(
        "shop:quote",
        json!({
            "type": "object",
            "required": ["sku", "quantity"],
            "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}}
        }),
        |ctx| async move {
            let order: Order = ctx.input()?;
            let unit = match order.sku.as_str() {
                "apple" => 45,
                "pear" => 60,
                other => {
                    // A failure the tool reports: the task fails with this message (and is
                    // tried again when its plan allows retries).
                    return Err(ToolError::failed(format!("no price for `{other}`")));
                }
            };
            ToolOutput::from_serialize(&Quote {
                sku: order.sku,
                total_cents: unit * u64::from(order.quantity),
            })
        },
    );
    let rt = Runtime::builder()
        .memory_store()
        .tool(price)
        .build()
        .await?;

    let plan = Plan::new("quotes")
        .task(
            Task::new("apples", "shop:quote")
                .input("sku", "apple")
                .input("quantity", 12),
        )
        // After `apples`, so the failure below cannot cut it short.
        .task(
            Task::new("kiwis", "shop:quote")
                .input("sku", "kiwi")
                .input("quantity", 3)
                .after("apples"),
        );
    let outcome = rt.submit(plan, Map::new()).await?.wait().await?;
    for t in &outcome.tasks {
        match t.status {
            TaskStatus::Succeeded => {
                println!("{}: {}", t.id, t.outputs.clone().unwrap_or_default())
            }
            _ => println!(
                "{}: {} ({})",
                t.id,
                t.status,
                t.error.as_deref().unwrap_or("")
            ),
        }
    }
    println!(
        "run {}: {}",
        outcome.status,
        outcome.reason.as_deref().unwrap_or("")
    );

    // Inputs the schema refuses never start a run: the error lists every problem.
    let bad = Plan::new("bad").task(
        Task::new("a", "shop:quote")
            .input("sku", "apple")
            .input("quantity", 0),
    );
    match rt.submit(bad, Map::new()).await {
        Err(e) => println!("refused: {e}"),
        Ok(_) => return Err("a plan with invalid inputs was accepted".into()),
    }
    rt.shutdown().await;

    let apples = &outcome.tasks[0];
    let ok = outcome.status == RunStatus::Failed
        && apples
            .outputs
            .as_ref()
            .is_some_and(|o| o["total_cents"] == 540)
        && outcome.tasks[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no price for `kiwi`"));
    if !ok {
        return Err("unexpected outcome".into());
    }
    Ok(())
}
