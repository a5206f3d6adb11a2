//! Tools a program registers cannot hang a run or stall the runtime: a tool that panics
//! before it returns its future fails its attempt and its agent takes the next task; a tool
//! that blocks its thread does not hold up a quick task beside it.

mod common;

use common::{plan, TestStore};
use futures::future::BoxFuture;
use futures::StreamExt;
use nofx::tools::{Tool, ToolContext, ToolError, ToolOutput};
use nofx::{AgentSpec, EventType, Role, RunStatus};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Panics in `run` itself, before any future exists.
struct PanicsAtOnce;

impl Tool for PanicsAtOnce {
    fn name(&self) -> &str {
        "test:panics-at-once"
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object"})
    }
    fn run<'a>(&'a self, _: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        panic!("broken before the future")
    }
}

/// Blocks its thread (no await) until `released` is set, at most 20 s; says whether it was.
struct Blocks {
    released: Arc<AtomicBool>,
}

impl Tool for Blocks {
    fn name(&self) -> &str {
        "test:blocks"
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object"})
    }
    fn run<'a>(&'a self, _: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let end = Instant::now() + Duration::from_secs(20);
            while !self.released.load(Ordering::SeqCst) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            let mut out = ToolOutput::default();
            out.outputs.insert(
                "released".into(),
                Value::Bool(self.released.load(Ordering::SeqCst)),
            );
            Ok(out)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_panics_before_returning_its_future_fails_its_attempt_and_the_agent_lives_on() {
    let store = TestStore::sqlite().await;
    // One agent: the task after the panic can only go to the agent that ran it.
    let rt = store
        .builder()
        .agents(vec![AgentSpec::new("solo", Role::Worker)])
        .tool(Arc::new(PanicsAtOnce))
        .build()
        .await
        .unwrap();
    let run = rt
        .submit(
            &plan("name: p\ntasks:\n  - { id: boom, tool: test:panics-at-once }\n"),
            Default::default(),
        )
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), run.wait())
        .await
        .expect("the run ends")
        .unwrap();
    assert_eq!(out.status, RunStatus::Failed, "{out:?}");
    let error = out.tasks[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("panicked: broken before the future"),
        "{error}"
    );
    let next = rt
        .submit(
            &plan("name: q\ntasks:\n  - { id: fine, tool: test:echo, inputs: { x: 1 } }\n"),
            Default::default(),
        )
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), next.wait())
        .await
        .expect("the agent takes the next task")
        .unwrap();
    assert_eq!(out.status, RunStatus::Succeeded);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_blocks_its_thread_does_not_hold_up_a_quick_task() {
    let store = TestStore::sqlite().await;
    let released = Arc::new(AtomicBool::new(false));
    let rt = store
        .builder()
        .tool(Arc::new(Blocks {
            released: released.clone(),
        }))
        .build()
        .await
        .unwrap();
    let run = rt
        .submit(
            &plan(
                "name: b\ntasks:\n  - { id: slow, tool: test:blocks }\n  - { id: quick, tool: test:echo, inputs: { x: 1 } }\n",
            ),
            Default::default(),
        )
        .await
        .unwrap();
    // The slow tool blocks until the quick task's success is committed: were tools on the
    // actor thread, that success could not be.
    let mut events = Box::pin(run.subscribe());
    let quick_done = async {
        while let Some(e) = events.next().await {
            let e = e.unwrap();
            if e.kind == EventType::TaskSucceeded
                && e.task_id.as_ref().map(|t| t.as_str()) == Some("quick")
            {
                released.store(true, Ordering::SeqCst);
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), quick_done)
        .await
        .expect("the quick task succeeds while the slow one blocks");
    let out = tokio::time::timeout(Duration::from_secs(60), run.wait())
        .await
        .expect("the run ends")
        .unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    let slow = out.tasks.iter().find(|t| t.id.as_str() == "slow").unwrap();
    assert_eq!(slow.outputs.as_ref().unwrap()["released"], true);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closure_tool_reads_typed_inputs_and_reports_failures_and_bad_schemas_clearly() {
    use nofx::plan::{Plan, Task};
    use nofx::tools::tool_fn;

    #[derive(serde::Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }
    let add = tool_fn(
        "math:add",
        json!({"type": "object", "required": ["a", "b"]}),
        |ctx| async move {
            let Add { a, b } = ctx.input()?;
            if a < 0 {
                return Err(ToolError::failed("negative numbers are not for sale"));
            }
            Ok(ToolOutput::new().output("sum", a + b))
        },
    );
    let rt = nofx::Runtime::builder()
        .memory_store()
        .tool(add.clone())
        .build()
        .await
        .unwrap();
    let plan = Plan::new("sums")
        .task(Task::new("one", "math:add").input("a", 1).input("b", 2))
        .task(
            Task::new("two", "math:add")
                .input("a", Task::output_ref("one", "sum"))
                .input("b", 10),
        )
        // Passes the schema (which only asks for `a` and `b`) but not `Add`.
        .task(Task::new("text", "math:add").input("a", "x").input("b", 1))
        .task(Task::new("neg", "math:add").input("a", -1).input("b", 1));
    let out = rt
        .submit(plan, Default::default())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let task = |id: &str| out.tasks.iter().find(|t| t.id.as_str() == id).unwrap();
    assert_eq!(task("two").outputs.as_ref().unwrap()["sum"], 13);
    let text = task("text").error.clone().unwrap();
    assert!(
        text.contains("invalid inputs") && text.contains("i64"),
        "{text}"
    );
    assert_eq!(
        task("neg").error.as_deref(),
        Some("negative numbers are not for sale")
    );
    rt.shutdown().await;

    // A schema that is not a JSON Schema stops the build, naming the tool and the place.
    let bad = tool_fn(
        "math:bad",
        json!({"type": "object", "properties": {"a": {"type": "integr"}}}),
        |_| async { Ok(ToolOutput::new()) },
    );
    let err = nofx::Runtime::builder()
        .memory_store()
        .tool(bad)
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("math:bad") && err.contains("/properties/a/type"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_built_in_code_to_a_missing_task_is_refused_before_the_run() {
    use nofx::plan::{Plan, Task};
    let rt = nofx::Runtime::builder()
        .memory_store()
        .build()
        .await
        .unwrap();
    let plan = Plan::new("p")
        .task(Task::new("a", "test:echo").input("x", 1))
        .task(Task::new("b", "test:echo").input("y", Task::output_ref("a", "nope")))
        .task(Task::new("c", "test:echo").input("z", Task::output_ref("ghost", "x")));
    let err = rt.submit(plan, Default::default()).await.unwrap_err();
    let nofx::RuntimeError::Plan(errors) = &err else {
        panic!("{err:?}")
    };
    let text = errors.to_string();
    assert!(
        text.contains("task `c`") && text.contains("ghost"),
        "{text}"
    );
    assert!(format!("{rt:?}").contains("test:echo"));
    rt.shutdown().await;
}

/// A quick tool (`inline`): reports the thread it ran on; `mode` makes it panic at once,
/// panic in its future, or wait past its task's timeout.
struct Quick;

impl Tool for Quick {
    fn name(&self) -> &str {
        "test:quick"
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object"})
    }
    fn inline(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        let mode = ctx.inputs["mode"].as_str().unwrap_or("").to_string();
        if mode == "panic-at-once" {
            panic!("quick and broken");
        }
        let thread = std::thread::current().name().unwrap_or("").to_string();
        Box::pin(async move {
            match mode.as_str() {
                "panic-later" => panic!("broken in the future"),
                "slow" => tokio::time::sleep(Duration::from_secs(30)).await,
                _ => {}
            }
            Ok(ToolOutput::new().output("thread", thread))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_tool_runs_on_the_agents_thread_and_its_panics_and_timeouts_fail_only_its_attempt()
{
    let store = TestStore::sqlite().await;
    let rt = store
        .builder()
        .tool(Arc::new(Quick))
        .tool(nofx::tools::tool_fn(
            "test:where",
            json!({"type": "object"}),
            |_| async move {
                let thread = std::thread::current().name().unwrap_or("").to_string();
                Ok(ToolOutput::new().output("thread", thread))
            },
        ))
        .build()
        .await
        .unwrap();
    let run = rt
        .submit(
            &plan(concat!(
                "name: q\ntasks:\n",
                "  - { id: quick, tool: test:quick }\n",
                "  - { id: pooled, tool: test:where }\n",
                "  - { id: at-once, tool: test:quick, inputs: { mode: panic-at-once } }\n",
                "  - { id: later, tool: test:quick, inputs: { mode: panic-later } }\n",
                "  - { id: slow, tool: test:quick, inputs: { mode: slow }, timeout_s: 0.2 }\n",
                "  - { id: after, tool: test:quick, depends_on: [quick] }\n",
            )),
            Default::default(),
        )
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), run.wait())
        .await
        .expect("the run ends")
        .unwrap();
    let task = |id: &str| out.tasks.iter().find(|t| t.id.as_str() == id).unwrap();
    let thread = |id: &str| task(id).outputs.as_ref().unwrap()["thread"].clone();
    assert_eq!(thread("quick"), "nofx-runtime", "{out:?}");
    assert_eq!(thread("after"), "nofx-runtime");
    assert_eq!(thread("pooled"), "nofx-tools");
    for (id, says) in [
        ("at-once", "panicked: quick and broken"),
        ("later", "panicked: broken in the future"),
        ("slow", "timed out after 0.2s"),
    ] {
        assert_eq!(task(id).status, nofx::TaskStatus::Failed, "{id}");
        let error = task(id).error.clone().unwrap_or_default();
        assert!(error.contains(says), "{id}: {error}");
    }
    assert_eq!(out.status, RunStatus::Failed);
    rt.shutdown().await;
}
