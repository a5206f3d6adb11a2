//! Runs that outlive the runtime executing them: a handle says the run was interrupted, and
//! the next runtime on the store says which runs it resumed and which it could not, and why.

mod common;

use common::plan;
use futures::future::BoxFuture;
use futures::StreamExt;
use nofx::tools::{Tool, ToolContext, ToolError, ToolOutput};
use nofx::{EventType, RunStatus, RuntimeError};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Runs until its task is cancelled (by a cancel, a timeout or the runtime stopping).
struct Waits;

impl Tool for Waits {
    fn name(&self) -> &str {
        "test:waits"
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object"})
    }
    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            ctx.cancel.cancelled().await;
            Err(ToolError::Cancelled)
        })
    }
}

const PLAN: &str = "name: long\ntasks:\n  - { id: hold, tool: test:waits }\n  - { id: after, tool: test:echo, depends_on: [hold], inputs: { x: 1 } }\n";

both_stores!(
    async fn a_run_stopped_with_its_runtime_is_reported_interrupted_then_resumed_or_refused_with_why(
        store
    ) {
        let first = store.builder().tool(Arc::new(Waits)).build().await.unwrap();
        let run = first.submit(&plan(PLAN), Default::default()).await.unwrap();
        let mut events = Box::pin(run.subscribe());
        while let Some(e) = events.next().await {
            if e.unwrap().kind == EventType::TaskStarted {
                break;
            }
        }
        assert_eq!(run.status().await.unwrap(), RunStatus::Running);

        // A wait in progress when the runtime stops says so, as does one after.
        let waiting = tokio::spawn({
            let run = run.clone();
            async move { run.wait().await }
        });
        first.shutdown().await;
        let during = tokio::time::timeout(Duration::from_secs(20), waiting)
            .await
            .expect("the wait ends with the runtime")
            .unwrap();
        assert!(
            matches!(during, Err(RuntimeError::Interrupted { run: r }) if r == run.id()),
            "{during:?}"
        );
        let after = run.wait().await;
        assert!(
            matches!(after, Err(RuntimeError::Interrupted { .. })),
            "{after:?}"
        );
        let message = after.unwrap_err().to_string();
        assert!(message.contains("interrupted"), "{message}");
        assert!(matches!(
            run.status().await,
            Err(RuntimeError::Interrupted { .. })
        ));

        // A runtime without the run's tool cannot resume it, and says why; the run stays
        // unfinished, and waiting on it does not hang.
        let second = store.runtime().await;
        let report = second.resume_orphans().await.unwrap();
        assert!(report.resumed.is_empty(), "{report:?}");
        assert_eq!(report.not_resumed.len(), 1, "{report:?}");
        let (id, why) = &report.not_resumed[0];
        assert_eq!(*id, run.id());
        assert!(why.to_string().contains("test:waits"), "{why}");
        let handle = second.run(run.id()).await.unwrap();
        assert_eq!(handle.status().await.unwrap(), RunStatus::Running);
        let orphan = tokio::time::timeout(Duration::from_secs(20), handle.wait())
            .await
            .expect("waiting on a run nothing executes ends");
        assert!(
            matches!(orphan, Err(RuntimeError::Interrupted { .. })),
            "{orphan:?}"
        );
        second.shutdown().await;

        // With the tool back, the run resumes.
        let third = store.builder().tool(Arc::new(Waits)).build().await.unwrap();
        let report = third.resume_orphans().await.unwrap();
        assert_eq!(report.resumed, vec![run.id()]);
        assert!(report.not_resumed.is_empty());
        let handle = third.run(run.id()).await.unwrap();
        handle.cancel().await.unwrap();
        let outcome = handle.wait().await.unwrap();
        assert_eq!(outcome.status, RunStatus::Cancelled);
        third.shutdown().await;
    }
);
