//! `test:healthcheck`: checks the database, the queue (the runtime's mailboxes and backlog),
//! the model providers and the artifact storage. Each check reports `status` (`ok` or
//! `error`), `latency_ms` and details; the task fails when any check is not ok.

use super::{Tool, ToolContext, ToolError, ToolOutput};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// The result of one probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    /// Whether it is healthy.
    pub ok: bool,
    /// What was found.
    pub detail: Value,
}

/// What the healthcheck asks the runtime.
pub trait Probe: Send + Sync {
    /// A round trip to the store.
    fn database(&self) -> BoxFuture<'_, ProbeReport>;
    /// A round trip through the supervisor's mailbox, with backlog figures.
    fn queue(&self) -> BoxFuture<'_, ProbeReport>;
    /// Which model providers are configured, and whether every agent's model is served.
    fn models(&self) -> BoxFuture<'_, ProbeReport>;
}

/// Checks the runtime's dependencies.
pub struct Healthcheck;

fn entry(report: ProbeReport, started: Instant) -> Value {
    json!({
        "status": if report.ok { "ok" } else { "error" },
        "latency_ms": started.elapsed().as_secs_f64() * 1000.0,
        "detail": report.detail,
    })
}

impl Tool for Healthcheck {
    fn name(&self) -> &str {
        "test:healthcheck"
    }

    fn description(&self) -> &str {
        "Checks the store, the queue, the model providers and the artifact storage, and reports each."
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "additionalProperties": false})
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let probe = ctx.env.probe.clone();
            let mut checks = Map::new();
            let t = Instant::now();
            checks.insert("database".into(), entry(probe.database().await, t));
            let t = Instant::now();
            checks.insert("queue".into(), entry(probe.queue().await, t));
            let t = Instant::now();
            checks.insert("models".into(), entry(probe.models().await, t));
            let t = Instant::now();
            let storage = match ctx.env.blobs.check_writable().await {
                Ok(()) => ProbeReport {
                    ok: true,
                    detail: json!({"path": ctx.env.blobs.root().display().to_string(), "writable": true}),
                },
                Err(e) => ProbeReport {
                    ok: false,
                    detail: json!({"path": ctx.env.blobs.root().display().to_string(), "writable": false, "error": e.to_string()}),
                },
            };
            checks.insert("storage".into(), entry(storage, t));
            let failing: Vec<String> = checks
                .iter()
                .filter(|(_, v)| v["status"] != "ok")
                .map(|(k, _)| k.clone())
                .collect();
            let mut outputs = Map::new();
            outputs.insert("healthy".into(), Value::Bool(failing.is_empty()));
            outputs.insert("checks".into(), Value::Object(checks));
            if failing.is_empty() {
                Ok(ToolOutput {
                    outputs,
                    artifacts: Vec::new(),
                })
            } else {
                Err(ToolError::Failed {
                    message: format!("unhealthy: {}", failing.join(", ")),
                    outputs,
                    artifacts: Vec::new(),
                })
            }
        })
    }
}
