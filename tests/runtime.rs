//! The runtime through its library API, on SQLite and on Postgres.

mod common;

use common::{events, plan};
use futures::StreamExt;
use nofx::runtime::{Cancelled, Resumed};
use nofx::{AgentSpec, EventType, Role, RunStatus, TaskStatus};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

both_stores! {
    async fn references_carry_outputs_and_inputs_downstream(store) {
        let rt = store.runtime().await;
        let src = plan("name: refs\ninputs: { who: { type: string, default: world }, n: { type: integer, default: 2 } }\ntasks:\n  - { id: hello, tool: test:echo, inputs: { greeting: \"hello ${inputs.who}\", n: \"${inputs.n}\" } }\n  - { id: shout, tool: test:echo, inputs: { said: \"${tasks.hello.outputs.greeting}\", n: \"${tasks.hello.outputs.n}\", lit: \"$${inputs.who}\" } }\n");
        let inputs = Map::from_iter([("who".to_string(), json!("nofx"))]);
        let run = rt.submit(&src, inputs).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded);
        let shout = out.tasks.iter().find(|t| t.id.as_str() == "shout").unwrap();
        assert_eq!(shout.outputs.as_ref().unwrap(), &json!({"said": "hello nofx", "n": 2, "lit": "${inputs.who}"}));
        assert!(out.correlation_id.as_str().starts_with("corr_"));
        rt.shutdown().await;
    }
}

both_stores! {
    async fn events_are_gap_free_and_carry_the_correlation_id(store) {
        let rt = store.runtime().await;
        let src = plan("name: ev\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: b, tool: test:echo, depends_on: [a] }\n  - { id: c, tool: test:echo, depends_on: [a] }\n");
        let run = rt.submit(&src, Map::new()).await.unwrap();
        // The stream from the handle and the store agree, event for event.
        let streamed: Vec<_> = run.subscribe().map(|e| e.unwrap()).collect().await;
        let stored = events(&rt, run.id()).await;
        assert_eq!(streamed, stored);
        for (i, e) in stored.iter().enumerate() {
            assert_eq!(e.seq, i as i64 + 1);
            assert_eq!(&e.correlation_id, run.correlation_id());
        }
        let kinds: Vec<_> = stored.iter().filter(|e| e.task_id.as_ref().is_some_and(|t| t.as_str() == "a")).map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventType::TaskReady, EventType::TaskDelegated, EventType::TaskStarted, EventType::TaskSucceeded]);
        assert_eq!(stored.first().unwrap().kind, EventType::RunCreated);
        assert_eq!(stored.last().unwrap().kind, EventType::RunSucceeded);
        let delegated = stored.iter().find(|e| e.kind == EventType::TaskDelegated).unwrap();
        assert_eq!(delegated.data["candidates"].as_array().unwrap().len(), 3, "every candidate is scored");
        // A metrics row per attempt.
        let metrics = rt.store().metrics(run.id()).await.unwrap();
        assert_eq!(metrics.len(), 3);
        assert!(metrics.iter().all(|m| m.success && m.tool == "test:echo" && m.agent.is_some()));
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_failed_task_skips_its_dependents_and_fails_the_run(store) {
        let rt = store.runtime().await;
        let src = plan("name: f\ntasks:\n  - { id: bad, tool: shell, inputs: { argv: [sh, -c, 'echo oops >&2; exit 3'] } }\n  - { id: after, tool: test:echo, depends_on: [bad] }\n  - { id: later, tool: test:echo, depends_on: [after] }\n  - { id: other, tool: test:echo }\n");
        let out = rt.submit(&src, Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert!(out.reason.as_deref().unwrap().contains("task `bad` failed: `sh` exited with code 3"), "{:?}", out.reason);
        let by = |id: &str| out.tasks.iter().find(|t| t.id.as_str() == id).unwrap().clone();
        assert_eq!(by("bad").status, TaskStatus::Failed);
        assert_eq!(by("bad").outputs.unwrap()["stderr"], "oops\n");
        assert_eq!(by("after").status, TaskStatus::Skipped);
        assert_eq!(by("after").error.as_deref(), Some("dependency `bad` failed"));
        assert_eq!(by("later").error.as_deref(), Some("dependency `after` was skipped"));
        assert_eq!(by("other").status, TaskStatus::Succeeded);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_failed_gate_retries_then_fails_with_its_reason(store) {
        let rt = store.runtime().await;
        let src = plan("name: g\ntasks:\n  - id: count\n    tool: shell\n    retry: { max: 2, backoff_ms: 10 }\n    inputs: { argv: [sh, -c, 'echo $NOFX_ATTEMPT'] }\n    gates: [ { kind: pattern, output: stdout, regex: '^3$' } ]\n");
        let out = rt.submit(&src, Map::new()).await.unwrap().wait().await.unwrap();
        // Attempts 1 and 2 fail the gate; the third prints 3 and passes.
        assert_eq!(out.status, RunStatus::Succeeded);
        assert_eq!(out.tasks[0].attempts, 3);
        let evs = events(&rt, out.id).await;
        let n = |k: EventType| evs.iter().filter(|e| e.kind == k).count();
        assert_eq!((n(EventType::GateFailed), n(EventType::TaskRetrying), n(EventType::GatePassed)), (2, 2, 1));
        let failed = evs.iter().find(|e| e.kind == EventType::GateFailed).unwrap();
        assert!(failed.data["reason"].as_str().unwrap().contains("does not match /^3$/"));

        let src = plan("name: g2\ntasks:\n  - id: js\n    tool: test:echo\n    inputs: { n: 5 }\n    gates: [ { kind: json_schema, output: n, schema: { type: integer, maximum: 3 } } ]\n  - id: cmd\n    tool: test:echo\n    gates: [ { kind: command, argv: [sh, -c, 'echo nope >&2; exit 4'] } ]\n");
        let out = rt.submit(&src, Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert!(out.tasks[0].error.as_deref().unwrap().contains("output `n` fail the schema"), "{:?}", out.tasks[0].error);
        assert!(out.tasks[1].error.as_deref().unwrap().contains("exited with code 4: nope"), "{:?}", out.tasks[1].error);
        let metrics = rt.store().metrics(out.id).await.unwrap();
        assert!(metrics.iter().all(|m| !m.success && m.error_type.as_deref() == Some("gate")));
        rt.shutdown().await;
    }
}

both_stores! {
    async fn cancel_stops_a_running_shell_task_and_its_children(store) {
        let rt = store.runtime().await;
        let src = plan("name: c\ntasks:\n  - { id: slow, tool: shell, inputs: { argv: [sh, -c, 'sleep 30 & sleep 30; echo done > done.txt'] } }\n  - { id: after, tool: test:echo, depends_on: [slow] }\n");
        let run = rt.submit(&src, Map::new()).await.unwrap();
        let mut evs = Box::pin(run.subscribe());
        while let Some(e) = evs.next().await {
            if e.unwrap().kind == EventType::TaskStarted {
                break;
            }
        }
        let started = Instant::now();
        assert_eq!(run.cancel().await.unwrap(), Cancelled::Stopping);
        let out = run.wait().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(out.status, RunStatus::Cancelled);
        assert_eq!(out.reason.as_deref(), Some("cancelled by the caller"));
        assert!(out.tasks.iter().all(|t| t.status == TaskStatus::Cancelled));
        assert!(!std::path::Path::new(&out.workspace).join("done.txt").exists());
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_run_past_its_deadline_fails_with_reason_timeout(store) {
        let rt = store.runtime().await;
        let src = plan("name: t\ntimeout_s: 0.5\ntasks:\n  - { id: slow, tool: shell, inputs: { argv: [sleep, '30'] } }\n");
        let out = rt.submit(&src, Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert_eq!(out.reason.as_deref(), Some("timeout"));
        let src = plan("name: tt\ntasks:\n  - { id: slow, tool: shell, timeout_s: 0.3, inputs: { argv: [sleep, '30'] } }\n");
        let out = rt.submit(&src, Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert!(out.tasks[0].error.as_deref().unwrap().contains("timed out after 0.3s"));
        rt.shutdown().await;
    }
}

both_stores! {
    async fn shell_tasks_share_a_workspace_get_a_clean_environment_and_keep_artifacts(store) {
        std::env::set_var("NOFX_TEST_SECRET", "hunter2");
        let rt = store.runtime().await;
        let src = plan("name: ws\ntasks:\n  - { id: write, tool: shell, inputs: { argv: [sh, -c, 'printf hi > f.txt'], artifacts: [f.txt] } }\n  - { id: read, tool: shell, depends_on: [write], inputs: { env: { GREETING: yo }, argv: [sh, -c, 'cat f.txt; echo \" $GREETING ${NOFX_TEST_SECRET:-none} $NOFX_TASK_ID $NOFX_ATTEMPT\"; echo $NOFX_IDEMPOTENCY_KEY'] } }\n");
        let out = rt.submit(&src, Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        let stdout = out.tasks[1].outputs.as_ref().unwrap()["stdout"].as_str().unwrap().to_string();
        assert!(stdout.starts_with("hi yo none read 1\n"), "{stdout}");
        assert!(stdout.contains(&format!("nofx-{}-read", out.id)));
        let arts = rt.store().artifacts(out.id).await.unwrap();
        let f = arts.iter().find(|a| a.name == "f.txt").unwrap();
        assert_eq!(f.size, 2);
        let blob = nofx::store::Blobs::new(rt.data_dir().join("artifacts"));
        assert_eq!(std::fs::read(blob.path_of(&f.hash)).unwrap(), b"hi");
        assert!(arts.iter().any(|a| a.task_id.as_str() == "read" && a.name == "stdout"));
        rt.shutdown().await;
    }
}

both_stores! {
    async fn an_interrupted_run_resumes_in_a_new_runtime_without_rerunning_finished_tasks(store) {
        let src = plan("name: r\ntasks:\n  - { id: one, tool: shell, inputs: { argv: [sh, -c, 'echo one >> ledger'] } }\n  - { id: two, tool: shell, depends_on: [one], inputs: { argv: [sh, -c, 'echo two-$NOFX_ATTEMPT >> ledger; sleep 30'] } }\n  - { id: three, tool: shell, depends_on: [two], inputs: { argv: [sh, -c, 'echo three >> ledger'] } }\n");
        let rt = store.runtime().await;
        let run = rt.submit(&src, Map::new()).await.unwrap();
        let ledger = std::path::PathBuf::from(rt.store().run(run.id()).await.unwrap().workspace).join("ledger");
        common::until(Duration::from_secs(20), || {
            let l = ledger.clone();
            async move { std::fs::read_to_string(l).is_ok_and(|s| s.contains("two-1")) }
        })
        .await;
        rt.shutdown().await;

        // A second runtime on the same store picks the run up.
        let rt2 = store.runtime().await;
        let record = rt2.store().run(run.id()).await.unwrap();
        assert_eq!(record.status, RunStatus::Running);
        let evs = events(&rt2, run.id()).await;
        assert_eq!(evs.last().unwrap().kind, EventType::RunInterrupted);
        let (resumed, handle) = rt2.resume(run.id()).await.unwrap();
        assert_eq!(resumed, Resumed::Started);
        // `two` runs again (attempt 2) and sleeps; cancel it to end the test quickly, after
        // checking what ran.
        common::until(Duration::from_secs(20), || {
            let l = ledger.clone();
            async move { std::fs::read_to_string(l).is_ok_and(|s| s.contains("two-2")) }
        })
        .await;
        handle.cancel().await.unwrap();
        let out = handle.wait().await.unwrap();
        let ledger = std::fs::read_to_string(std::path::Path::new(&out.workspace).join("ledger")).unwrap();
        let lines: Vec<&str> = ledger.lines().collect();
        assert_eq!(lines[0], "one");
        assert_eq!(lines.iter().filter(|l| **l == "one").count(), 1, "a finished task never runs again: {ledger}");
        assert!(lines.contains(&"two-1") && lines.contains(&"two-2"), "{ledger}");
        assert_eq!(out.status, RunStatus::Cancelled);
        rt2.shutdown().await;
    }
}

both_stores! {
    async fn a_second_runtime_cannot_take_a_run_a_live_one_executes_but_can_cancel_it(store) {
        let rt1 = store.builder().lease_ttl(Duration::from_secs(3)).build().await.unwrap();
        let rt2 = store.builder().lease_ttl(Duration::from_secs(3)).build().await.unwrap();
        let src = plan("name: l\ntasks:\n  - { id: slow, tool: shell, inputs: { argv: [sleep, '30'] } }\n");
        let run = rt1.submit(&src, Map::new()).await.unwrap();
        let err = rt2.resume(run.id()).await.expect_err("the lease is held");
        assert!(err.to_string().contains(&format!("process {}", std::process::id())), "{err}");
        match rt2.cancel(run.id(), "stop from elsewhere").await.unwrap() {
            Cancelled::Requested(info) => assert_eq!(info.pid, i64::from(std::process::id())),
            other => panic!("expected a cancel request, got {other:?}"),
        }
        // The owner picks the command row up and cancels.
        let out = tokio::time::timeout(Duration::from_secs(10), run.wait()).await.expect("owner cancels within seconds").unwrap();
        assert_eq!(out.status, RunStatus::Cancelled);
        assert_eq!(out.reason.as_deref(), Some("stop from elsewhere"));
        rt1.shutdown().await;
        rt2.shutdown().await;
    }
}

both_stores! {
    async fn a_detached_run_is_stored_and_runs_on_resume(store) {
        let rt = store.runtime().await;
        let src = plan("name: d\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n");
        let run = rt.submit_with(&src, Map::new(), None, true).await.unwrap();
        assert_eq!(rt.store().run(run.id()).await.unwrap().status, RunStatus::Pending);
        rt.shutdown().await;
        let rt = store.runtime().await;
        let (r, handle) = rt.resume(run.id()).await.unwrap();
        assert_eq!(r, Resumed::Started);
        assert_eq!(handle.wait().await.unwrap().status, RunStatus::Succeeded);
        assert_eq!(rt.resume(run.id()).await.unwrap().0, Resumed::Finished(RunStatus::Succeeded));
        rt.shutdown().await;
    }
}

struct Upper;

impl nofx::tools::Tool for Upper {
    fn name(&self) -> &str {
        "text:upper"
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}})
    }
    fn run<'a>(
        &'a self,
        ctx: nofx::tools::ToolContext,
    ) -> futures::future::BoxFuture<'a, Result<nofx::tools::ToolOutput, nofx::tools::ToolError>>
    {
        Box::pin(async move {
            let mut out = nofx::tools::ToolOutput::default();
            out.outputs.insert(
                "text".into(),
                json!(ctx.inputs["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_uppercase()),
            );
            Ok(out)
        })
    }
}

both_stores! {
    async fn tools_and_agents_registered_in_code_take_tasks(store) {
        let gpu = AgentSpec::new("gpu-box", Role::Specialist).with_capabilities(["gpu"]).with_limits(2, None);
        let rt = store.builder().agent(gpu).tool(std::sync::Arc::new(Upper)).build().await.unwrap();
        let src = plan("name: custom\ntasks:\n  - { id: up, tool: text:upper, capabilities: [gpu], inputs: { text: abc } }\n");
        let out = rt.submit(&src, Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded);
        assert_eq!(out.tasks[0].outputs.as_ref().unwrap()["text"], "ABC");
        assert_eq!(out.tasks[0].agent.as_deref(), Some("gpu-box"));
        let bad = plan("name: custom\ntasks:\n  - { id: up, tool: text:upper, inputs: { text: 5 } }\n");
        let err = rt.submit(&bad, Map::new()).await.err().unwrap();
        assert!(err.to_string().contains("task `up`: inputs of tool `text:upper` are invalid at `/text`"), "{err}");
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_burst_of_a_thousand_tasks_through_one_narrow_agent_completes(store) {
        let narrow = vec![AgentSpec::new("narrow", Role::Worker).with_limits(2, None)];
        let rt = store.builder().agents(narrow).build().await.unwrap();
        let mut yaml = String::from("name: burst\ntasks:\n  - { id: root, tool: test:echo }\n");
        for i in 0..1000 {
            yaml.push_str(&format!("  - {{ id: t{i}, tool: test:echo, depends_on: [root] }}\n"));
        }
        let out = rt.submit(&plan(&yaml), Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded);
        assert!(out.tasks.iter().all(|t| t.status == TaskStatus::Succeeded));
        rt.shutdown().await;
    }
}

both_stores! {
    async fn healthcheck_reports_every_dependency(store) {
        let rt = store.runtime().await;
        let src = plan("name: h\ntasks:\n  - { id: h, tool: test:healthcheck }\n");
        let out = rt.submit(&src, Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.tasks[0].outputs);
        let checks = &out.tasks[0].outputs.as_ref().unwrap()["checks"];
        for c in ["database", "queue", "models", "storage"] {
            assert_eq!(checks[c]["status"], "ok", "{c}: {}", checks[c]);
            assert!(checks[c]["latency_ms"].is_number());
        }
        let backend = if store.is_postgres() { "postgres" } else { "sqlite" };
        assert_eq!(checks["database"]["detail"]["backend"], backend);
        // An agent that names a model no provider serves makes the models check fail.
        let rt2 = store.builder().agent({ let mut a = AgentSpec::new("llm", Role::Specialist); a.model = Some("big-model".into()); a }).build().await.unwrap();
        let out = rt2.submit(&src, Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert!(out.reason.unwrap().contains("unhealthy: models"));
        rt.shutdown().await;
        rt2.shutdown().await;
    }
}

both_stores! {
    async fn invalid_data_fails_test_validate_with_pointers(store) {
        let rt = store.runtime().await;
        let src = plan("name: v\ntasks:\n  - { id: v, tool: test:validate, inputs: { data: { age: -1 }, schema: { type: object, properties: { age: { type: integer, minimum: 0 } } } } }\n");
        let out = rt.submit(&src, Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        let o = out.tasks[0].outputs.as_ref().unwrap();
        assert_eq!(o["valid"], false);
        assert_eq!(o["errors"][0]["pointer"], "/age");
        assert!(o["timestamp"].as_str().unwrap().ends_with('Z'));
        rt.shutdown().await;
    }
}

struct Boom;

impl nofx::tools::Tool for Boom {
    fn name(&self) -> &str {
        "test:boom"
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object"})
    }
    fn run<'a>(
        &'a self,
        _: nofx::tools::ToolContext,
    ) -> futures::future::BoxFuture<'a, Result<nofx::tools::ToolOutput, nofx::tools::ToolError>>
    {
        Box::pin(async move { panic!("kaboom") })
    }
}

both_stores! {
    async fn a_panicking_tool_fails_its_task_and_the_runtime_keeps_going(store) {
        let rt = store.builder().tool(std::sync::Arc::new(Boom)).build().await.unwrap();
        let src = plan("name: p\ntasks:\n  - { id: b, tool: test:boom, retry: { max: 1 } }\n");
        let out = rt.submit(&src, Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert_eq!(out.tasks[0].attempts, 2);
        assert!(out.tasks[0].error.as_deref().unwrap().contains("tool `test:boom` panicked: kaboom"));
        let ok = plan("name: ok\ntasks:\n  - { id: a, tool: test:echo }\n");
        assert_eq!(rt.submit(&ok, Map::new()).await.unwrap().wait().await.unwrap().status, RunStatus::Succeeded);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_handle_in_another_process_follows_the_run_live(store) {
        // One runtime executes the run; another, on the same store, only watches it.
        let owner = store.runtime().await;
        let watcher = store.runtime().await;
        let src = plan("name: watched\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: gate, tool: shell, inputs: { argv: [sh, -c, 'while [ ! -f go ]; do sleep 0.05; done'] }, depends_on: [a] }\n  - { id: b, tool: test:echo, depends_on: [gate] }\n");
        let run = owner.submit(&src, Map::new()).await.unwrap();
        let handle = watcher.run(run.id()).await.unwrap();
        let events = handle.subscribe();
        futures::pin_mut!(events);
        // Caught up from the store, then live: the gate task starts while we watch.
        loop {
            let e = tokio::time::timeout(Duration::from_secs(20), events.next()).await.unwrap().unwrap().unwrap();
            if e.kind == EventType::TaskStarted && e.task_id.as_ref().map(|t| t.as_str()) == Some("gate") {
                break;
            }
        }
        let ws = owner.store().run(run.id()).await.unwrap().workspace;
        std::fs::write(std::path::Path::new(&ws).join("go"), "").unwrap();
        // What happens after it reaches the watcher, in order, up to the run's end.
        let mut kinds = Vec::new();
        let mut last = 0;
        while let Some(e) = tokio::time::timeout(Duration::from_secs(20), events.next()).await.unwrap() {
            let e = e.unwrap();
            assert!(e.seq > last, "in order, no repeats");
            last = e.seq;
            kinds.push(e.kind);
        }
        assert!(kinds.contains(&EventType::TaskSucceeded), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&EventType::RunSucceeded), "{kinds:?}");
        assert_eq!(last, common::events(&owner, run.id()).await.last().unwrap().seq);
        owner.shutdown().await;
        watcher.shutdown().await;
    }
}

/// On the in-memory store a task's small commit runs on the actor thread; while the node's
/// lease renewal (also on that thread) holds a write transaction on the store's other
/// connection, that commit must not wait there for it, or neither could finish. Renewals
/// every 100 ms beside a long chain of quick tasks meet it many times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_store_commit_never_waits_on_the_actor_thread_for_a_lease_renewal() {
    use nofx::plan::{Plan, Task};
    let rt = nofx::Runtime::builder()
        .memory_store()
        .lease_ttl(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let mut plan = Plan::new("long-chain");
    for i in 0..3000 {
        let mut t = Task::new(format!("t{i}"), "test:echo");
        if i > 0 {
            t = t.after(format!("t{}", i - 1));
        }
        plan = plan.task(t);
    }
    let run = rt.submit(plan, Default::default()).await.unwrap();
    let (status, reason) = tokio::time::timeout(Duration::from_secs(120), run.wait_status())
        .await
        .expect("the chain ends: no commit waits on the thread the renewals need")
        .unwrap();
    assert_eq!(status, RunStatus::Succeeded, "{reason:?}");
    rt.shutdown().await;
}
