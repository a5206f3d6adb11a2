//! Model tools, gates and the planner against a local server speaking the OpenAI (or
//! Anthropic) wire format: routing and fallbacks, usage rows, budgets, cost alerts, codegen's
//! workspace rules, the LLM judge, goals decomposed by the planner.

mod common;

use common::llm::{anthropic_text, openai_text, reply, server, sse, Reply, Script};
use common::{events, plan, TestStore};
use futures::StreamExt;
use nofx::models::budget::Budgets;
use nofx::models::{ApiKey, ModelsConfig, RetryPolicy};
use nofx::planner::PlannerOptions;
use nofx::{EventType, RunStatus, Runtime};
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "sk-test-secret-key-0123456789";

fn fast(mut cfg: ModelsConfig) -> ModelsConfig {
    cfg.retry = RetryPolicy {
        max_attempts: 2,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
    };
    cfg.budgets = Budgets::default();
    cfg
}

/// The shipped catalogue with only the OpenAI provider configured, at a local server.
async fn openai(replies: Vec<Reply>) -> (ModelsConfig, Script) {
    let (base, script) = server("/v1/chat/completions", replies).await;
    let cfg = ModelsConfig::shipped()
        .api_key("openai", ApiKey::new(KEY))
        .base_url("openai", format!("{base}/v1"));
    (fast(cfg), script)
}

async fn runtime(store: &TestStore, cfg: ModelsConfig) -> Runtime {
    store
        .builder()
        .models(cfg)
        .build()
        .await
        .expect("runtime starts")
}

fn kinds(evs: &[nofx::Event]) -> Vec<EventType> {
    evs.iter().map(|e| e.kind).collect()
}

both_stores! {
    async fn llm_generate_repairs_an_answer_that_fails_its_schema_and_records_both_calls(store) {
        let (cfg, script) = openai(vec![
            openai_text("```json\n{\"title\": 7}\n```", 120, 10),
            openai_text("{\"title\": \"Durable agents\"}", 160, 12),
        ])
        .await;
        let rt = runtime(&store, cfg).await;
        let src = plan(r#"
name: gen
inputs:
  topic: { type: string, default: agents }
tasks:
  - id: title
    tool: llm:generate
    inputs:
      prompt: "A title about ${inputs.topic}"
      system: "You name things."
      schema: { type: object, required: [title], properties: { title: { type: string } } }
"#);
        let run = rt.submit(&src, Default::default()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        let o = out.tasks[0].outputs.clone().unwrap();
        assert_eq!(o["json"], json!({"title": "Durable agents"}));
        assert_eq!(o["model"], "gpt-mid");
        assert_eq!((o["input_tokens"].as_u64(), o["output_tokens"].as_u64()), (Some(280), Some(22)));
        assert_eq!(o["calls"], 2);

        // The server saw the resolved prompt, the system prompt, the provider's model name
        // and the key; the repair carried the validation errors.
        let seen = script.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].headers["authorization"], format!("Bearer {KEY}").as_str());
        assert_eq!(seen[0].body["model"], "gpt-4.1-mini");
        let msgs = seen[0].body["messages"].as_array().unwrap();
        assert_eq!(msgs[0]["role"], "system");
        assert!(msgs[0]["content"].as_str().unwrap().starts_with("You name things."));
        assert!(msgs[1]["content"].as_str().unwrap().starts_with("A title about agents"));
        let repair = seen[1].body["messages"].as_array().unwrap();
        assert_eq!(repair.len(), 4);
        assert!(repair[3]["content"].as_str().unwrap().contains("/title"), "{repair:?}");

        let evs = events(&rt, run.id()).await;
        let k = kinds(&evs);
        assert_eq!(k.iter().filter(|k| **k == EventType::ModelRouted).count(), 2);
        assert_eq!(k.iter().filter(|k| **k == EventType::ModelCompleted).count(), 2);
        let routed = evs.iter().find(|e| e.kind == EventType::ModelRouted).unwrap();
        assert_eq!(routed.data["rule"], "default");
        assert_eq!(routed.data["model"], "gpt-mid");
        assert_eq!(routed.data["fallbacks"], json!(["gpt-small"]));
        assert_eq!(routed.task_id.as_ref().unwrap().as_str(), "title");
        // No key in any event.
        assert!(!serde_json::to_string(&evs).unwrap().contains(KEY));

        let rows = rt.store().model_calls(run.id()).await.unwrap();
        assert_eq!(rows.len(), 2);
        for r in &rows {
            assert_eq!(r.task_id.as_deref(), Some("title"));
            assert_eq!(r.tool.as_deref(), Some("llm:generate"));
            assert!(r.agent.is_some());
            assert_eq!((r.model.as_str(), r.provider.as_str()), ("gpt-mid", "openai"));
            assert!(r.success);
            assert_eq!(r.correlation_id, run.correlation_id().to_string());
            assert_eq!(r.project.as_deref(), Some("default"));
        }
        // gpt-4.1-mini: $0.40 / $1.60 per million tokens.
        assert_eq!(rows[0].cost_micro_usd, 64);
        assert!(rows[0].estimated_cost_micro_usd > rows[0].cost_micro_usd);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_model_that_fails_for_good_falls_back_to_the_next_and_both_calls_are_rows(store) {
        let (cfg, script) = openai(vec![
            reply(400, json!({"error": {"message": "model not found", "type": "invalid_request_error", "code": "model_not_found"}})),
            openai_text("fine", 50, 5),
        ])
        .await;
        let rt = runtime(&store, cfg).await;
        let src = plan("name: fb\ntasks:\n  - { id: a, tool: llm:generate, inputs: { prompt: hello } }\n");
        let run = rt.submit(&src, Default::default()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        assert_eq!(out.tasks[0].outputs.as_ref().unwrap()["model"], "gpt-small");
        let seen = script.seen();
        assert_eq!(seen[0].body["model"], "gpt-4.1-mini");
        assert_eq!(seen[1].body["model"], "gpt-4.1-nano");
        let evs = events(&rt, run.id()).await;
        let fb = evs.iter().find(|e| e.kind == EventType::ModelFallback).expect("model.fallback");
        assert_eq!(fb.data["from"], "gpt-mid");
        assert_eq!(fb.data["to"], "gpt-small");
        assert_eq!(fb.data["cause"], "bad_request");
        let rows = rt.store().model_calls(run.id()).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(!rows[0].success);
        assert_eq!(rows[0].error_type.as_deref(), Some("bad_request"));
        assert!(rows[1].success);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_call_in_flight_when_its_run_is_cancelled_is_still_a_usage_row(store) {
        let mut slow = openai_text("late", 50, 5);
        slow.delay = Duration::from_secs(60);
        let (cfg, script) = openai(vec![slow]).await;
        let rt = runtime(&store, cfg).await;
        let src = plan("name: c\ntasks:\n  - { id: a, tool: llm:generate, inputs: { prompt: wait } }\n");
        let run = rt.submit(&src, Default::default()).await.unwrap();
        common::until(Duration::from_secs(10), || async { !script.seen().is_empty() }).await;
        run.cancel().await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Cancelled);
        // The request was sent (and may be billed): it is a row, of kind `cancelled`.
        let id = run.id();
        common::until(Duration::from_secs(10), || {
            let store = rt.store().clone();
            async move { !store.model_calls(id).await.unwrap().is_empty() }
        })
        .await;
        let rows = rt.store().model_calls(id).await.unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].error_type.as_deref(), Some("cancelled"));
        assert!(!rows[0].success);
        assert_eq!(rows[0].task_id.as_deref(), Some("a"));
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_run_whose_next_call_would_pass_its_budget_fails_before_the_call(store) {
        let (mut cfg, script) = openai(vec![openai_text("one", 100, 10)]).await;
        // The first call's worst case fits; once it is spent the second one's does not.
        cfg.budgets = Budgets { per_run: Some(1_650), ..Budgets::default() };
        let rt = runtime(&store, cfg).await;
        let src = plan(r#"
name: budget
tasks:
  - { id: a, tool: llm:generate, inputs: { prompt: one, max_tokens: 1000 } }
  - { id: b, tool: llm:generate, inputs: { prompt: two, max_tokens: 1000 }, depends_on: [a] }
  - { id: c, tool: test:echo, inputs: { x: 1 }, depends_on: [b] }
"#);
        let run = rt.submit(&src, Default::default()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert_eq!(out.reason.as_deref(), Some("budget_exceeded"));
        assert_eq!(out.tasks[0].status, nofx::TaskStatus::Succeeded);
        assert_eq!(out.tasks[1].status, nofx::TaskStatus::Failed);
        assert!(out.tasks[1].error.as_deref().unwrap().contains("run budget of $0.00165 would be exceeded"), "{:?}", out.tasks[1].error);
        assert_eq!(script.seen().len(), 1, "the call over budget was never sent");
        let evs = events(&rt, run.id()).await;
        let end = evs.last().unwrap();
        assert_eq!(end.kind, EventType::RunFailed);
        assert_eq!(end.data["reason"], "budget_exceeded");
        assert_eq!(rt.store().model_calls(run.id()).await.unwrap().len(), 1);
        rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_calls_cannot_pass_a_budget_together() {
    let store = TestStore::sqlite().await;
    let mut replies = Vec::new();
    for _ in 0..8 {
        let mut r = openai_text("ok", 10, 1000);
        r.delay = Duration::from_millis(200);
        replies.push(r);
    }
    let (mut cfg, script) = openai(replies).await;
    // Each call costs (and reserves) ~10 input + 1000 output tokens on gpt-mid ≈ $0.0016:
    // three fit in $0.005, whether in flight or spent.
    cfg.budgets = Budgets {
        per_run: Some(5_000),
        ..Budgets::default()
    };
    let rt = runtime(&store, cfg).await;
    let mut yaml = String::from("name: par\ntasks:\n");
    for i in 0..8 {
        yaml.push_str(&format!(
            "  - {{ id: t{i}, tool: llm:generate, inputs: {{ prompt: p, max_tokens: 1000 }} }}\n"
        ));
    }
    let run = rt.submit(&plan(&yaml), Default::default()).await.unwrap();
    let out = run.wait().await.unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    assert_eq!(out.reason.as_deref(), Some("budget_exceeded"));
    let sent = script.seen().len();
    // The call that would pass the budget stops the run, which also stops calls in flight
    // (they may not have reached the server yet).
    assert!(
        sent <= 3,
        "{sent} calls were sent; at most 3 fit the budget"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_above_the_alert_threshold_emits_cost_alert() {
    let store = TestStore::sqlite().await;
    let (mut cfg, _script) = openai(vec![openai_text("pricey", 100_000, 1_000)]).await;
    cfg.budgets = Budgets {
        per_call_alert: Some(10_000),
        ..Budgets::default()
    };
    let rt = runtime(&store, cfg).await;
    let src =
        plan("name: alert\ntasks:\n  - { id: a, tool: llm:generate, inputs: { prompt: x } }\n");
    let run = rt.submit(&src, Default::default()).await.unwrap();
    assert_eq!(run.wait().await.unwrap().status, RunStatus::Succeeded);
    let evs = events(&rt, run.id()).await;
    let alert = evs
        .iter()
        .find(|e| e.kind == EventType::CostAlert)
        .expect("cost.alert");
    // 100k input at $0.40/M + 1k output at $1.60/M = $0.0416.
    assert_eq!(alert.data["cost"], json!(0.0416));
    assert_eq!(alert.data["threshold"], json!(0.01));
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codegen_writes_files_as_artifacts_and_refuses_paths_that_escape() {
    let store = TestStore::sqlite().await;
    let files = json!({"files": [
        {"path": "src/lib.rs", "content": "pub fn hi() {}\n"},
        {"path": "README.md", "content": "# hi\n"}
    ]});
    let escaping = json!({"files": [
        {"path": "ok.txt", "content": "fine"},
        {"path": "../outside.txt", "content": "nope"}
    ]});
    let (cfg, _script) = openai(vec![
        openai_text(&format!("```json\n{files}\n```"), 100, 50),
        openai_text(&escaping.to_string(), 100, 50),
    ])
    .await;
    let rt = runtime(&store, cfg).await;
    let src = plan(
        "name: cg\ntasks:\n  - { id: gen, tool: codegen, inputs: { prompt: a crate, dir: out } }\n",
    );
    let run = rt.submit(&src, Default::default()).await.unwrap();
    let out = run.wait().await.unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    let ws = std::path::PathBuf::from(&out.workspace);
    assert_eq!(
        std::fs::read_to_string(ws.join("out/src/lib.rs")).unwrap(),
        "pub fn hi() {}\n"
    );
    assert_eq!(
        out.tasks[0].outputs.as_ref().unwrap()["files"],
        json!(["out/src/lib.rs", "out/README.md"])
    );
    let arts = rt.store().artifacts(run.id()).await.unwrap();
    let names: Vec<&str> = arts.iter().map(|a| a.name.as_str()).collect();
    assert!(
        names.contains(&"out/src/lib.rs") && names.contains(&"out/README.md"),
        "{names:?}"
    );

    let run = rt.submit(&src, Default::default()).await.unwrap();
    let out = run.wait().await.unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let err = out.tasks[0].error.clone().unwrap();
    assert!(err.contains("`../outside.txt` uses `..`"), "{err}");
    let ws = std::path::PathBuf::from(&out.workspace);
    assert!(
        !ws.join("out/ok.txt").exists(),
        "nothing is written when a path is refused"
    );
    assert!(!ws.parent().unwrap().join("outside.txt").exists());
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_llm_judge_gate_records_its_verdict_and_reasons() {
    let store = TestStore::sqlite().await;
    let (cfg, script) = openai(vec![
        openai_text(
            r#"{"verdict": "fail", "reasons": ["it is not a haiku"]}"#,
            80,
            12,
        ),
        openai_text(
            r#"{"verdict": "pass", "reasons": ["five, seven, five"]}"#,
            80,
            12,
        ),
    ])
    .await;
    let rt = runtime(&store, cfg).await;
    let src = plan(
        r#"
name: judge
tasks:
  - id: poem
    tool: test:echo
    inputs: { text: "an old silent pond" }
    retry: { max: 1 }
    gates:
      - { kind: llm_judge, rubric: "The text is a haiku about water.", output: text }
"#,
    );
    let run = rt.submit(&src, Default::default()).await.unwrap();
    let out = run.wait().await.unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    let evs = events(&rt, run.id()).await;
    let failed = evs
        .iter()
        .find(|e| e.kind == EventType::GateFailed)
        .unwrap();
    assert_eq!(failed.data["kind"], "llm_judge");
    assert_eq!(failed.data["detail"]["verdict"], "fail");
    assert_eq!(
        failed.data["detail"]["reasons"],
        json!(["it is not a haiku"])
    );
    let passed = evs
        .iter()
        .find(|e| e.kind == EventType::GatePassed)
        .unwrap();
    assert_eq!(passed.data["detail"]["verdict"], "pass");
    let asked = script.seen()[0].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        asked.contains("The text is a haiku about water.") && asked.contains("an old silent pond"),
        "{asked}"
    );
    let rows = rt.store().model_calls(run.id()).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].tool.as_deref(), Some("gate:llm_judge"));
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_tools_without_a_provider_fail_validation_saying_how_to_configure_one() {
    let store = TestStore::sqlite().await;
    let rt = runtime(&store, ModelsConfig::shipped()).await;
    let src =
        plan("name: none\ntasks:\n  - { id: a, tool: llm:generate, inputs: { prompt: x } }\n");
    let err = rt
        .submit(&src, Default::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("task `a`: tool `llm:generate` uses a model, but no model provider is configured: set ANTHROPIC_API_KEY or OPENAI_API_KEY"),
        "{err}"
    );
    let err = rt
        .submit_goal("anything", PlannerOptions::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("OPENAI_BASE_URL"), "{err}");
    rt.shutdown().await;
}

fn plan_answer(plan: Value) -> Reply {
    anthropic_text(
        &format!("Here is the plan:\n```json\n{plan}\n```"),
        900,
        150,
    )
}

both_stores! {
    async fn the_planner_repairs_an_invalid_plan_and_the_run_executes_with_both_calls_in_usage(store) {
        let invalid = json!({"name": "greet", "tasks": [
            {"id": "hello", "tool": "test:echo", "inputs": {"msg": "hi"}},
            {"id": "bye", "tool": "test:ech0", "depends_on": ["hello", "nobody"]}
        ]});
        let valid = json!({"name": "greet", "tasks": [
            {"id": "hello", "tool": "test:echo", "inputs": {"msg": "hi"}},
            {"id": "bye", "tool": "test:echo", "inputs": {"after": "${tasks.hello.outputs.msg}"}}
        ]});
        let (base, script) = server("/v1/messages", vec![plan_answer(invalid), plan_answer(valid)]).await;
        let cfg = fast(ModelsConfig::shipped().api_key("anthropic", ApiKey::new(KEY)).base_url("anthropic", base));
        let rt = runtime(&store, cfg).await;
        let (run, planned) = rt.submit_goal("Say hello, then goodbye", PlannerOptions::default()).await.unwrap();
        assert_eq!(planned.rounds, 2);
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        assert_eq!(out.tasks[1].outputs.as_ref().unwrap()["after"], "hi");

        let seen = script.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].headers["x-api-key"], KEY);
        let system = seen[0].body["system"][0]["text"].as_str().unwrap();
        assert!(system.contains("`test:echo`") && system.contains("`shell`, input schema"), "the catalogue of tools is sent");
        assert!(system.contains("`lead` (coordinator)"), "the agents are sent");
        assert!(system.contains("\"depends_on\""), "the plan schema is sent");
        assert_eq!(seen[0].body["messages"][0]["content"][0]["text"], "Goal: Say hello, then goodbye");
        let repair = seen[1].body["messages"][2]["content"][0]["text"].as_str().unwrap();
        assert!(repair.contains("unknown tool `test:ech0`") && repair.contains("nobody"), "{repair}");

        // The accepted plan is the run's plan; both calls are usage rows of the run.
        let stored = rt.store().run(run.id()).await.unwrap();
        assert_eq!(stored.plan.tasks.len(), 2);
        let rows = rt.store().model_calls(run.id()).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.tool.as_deref() == Some("planner") && r.model == "claude-sonnet"));
        let evs = events(&rt, run.id()).await;
        let k = kinds(&evs);
        assert_eq!(k[0], EventType::RunCreated);
        assert!(k.contains(&EventType::PlanGenerated));
        let gen = evs.iter().find(|e| e.kind == EventType::PlanGenerated).unwrap();
        assert_eq!(gen.data["rounds"], 2);
        let seqs: Vec<i64> = evs.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=evs.len() as i64).collect::<Vec<_>>());
        rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_still_invalid_after_the_last_round_fails_with_its_errors() {
    let store = TestStore::sqlite().await;
    let bad = json!({"name": "x", "tasks": [{"id": "a", "tool": "nope"}]});
    let (cfg, script) = openai(vec![
        openai_text(&bad.to_string(), 10, 10),
        openai_text("not a plan at all: {", 10, 10),
    ])
    .await;
    let rt = runtime(&store, cfg).await;
    let err = rt
        .plan_goal(
            "do it",
            PlannerOptions {
                max_rounds: 2,
                ..Default::default()
            },
        )
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("the planner's plan was still invalid after 2 answer(s); last errors:"),
        "{err}"
    );
    assert_eq!(script.seen().len(), 2);
    // Both calls are recorded even though no run came of them.
    let now = chrono::Utc::now().timestamp_millis();
    let report = rt
        .store()
        .usage(now - 60_000, now + 60_000, nofx::store::GroupBy::Hour, None)
        .await
        .unwrap();
    assert_eq!(report.summary.total_calls, 2);
    rt.shutdown().await;
}

both_stores! {
    async fn subscribers_get_streamed_deltas_and_a_cut_stream_is_recorded_then_retried(store) {
        let chunk = |content: &str| json!({"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}], "model": "m"});
        let usage = json!({"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 4}});
        let cut = sse(&[("", chunk("hel"))]);
        let mut full = sse(&[("", chunk("hello ")), ("", chunk("world")), ("", usage)]);
        full.body.push_str("data: [DONE]\n\n");
        let (cfg, script) = openai(vec![cut, full]).await;
        let rt = runtime(&store, cfg).await;
        let src = plan("name: s\ntasks:\n  - { id: a, tool: llm:generate, inputs: { prompt: greet } }\n");
        // Stored only, so the deltas subscription is in place before the call starts.
        let run = rt.submit_with(&src, Default::default(), None, true).await.unwrap();
        let deltas = run.deltas();
        rt.resume(run.id()).await.unwrap();
        let got: Vec<nofx::events::Delta> = deltas.collect().await;
        let texts: Vec<&str> = got.iter().map(|d| d.data["text"].as_str().unwrap()).collect();
        assert_eq!(texts, vec!["hel", "hello ", "world"]);
        assert!(got.iter().all(|d| d.kind == EventType::ModelDelta && d.task_id.as_ref().unwrap().as_str() == "a"));
        assert_eq!(serde_json::to_value(&got[0]).unwrap().get("seq"), None);
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        assert_eq!(out.tasks[0].outputs.as_ref().unwrap()["text"], "hello world");
        assert_eq!(script.seen()[0].body["stream"], true);

        let evs = events(&rt, run.id()).await;
        assert!(!kinds(&evs).contains(&EventType::ModelDelta), "deltas are never stored");
        let done: Vec<_> = evs.iter().filter(|e| e.kind == EventType::ModelCompleted).collect();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].data["text"], "hello world");
        let rows = rt.store().model_calls(run.id()).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].error_type.as_deref(), Some("interrupted"));
        assert!(!rows[0].success);
        assert_eq!((rows[1].input_tokens, rows[1].output_tokens), (30, 4));
        rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_urls_given_to_the_builder_configure_a_provider() {
    let store = TestStore::sqlite().await;
    let (base, script) = server("/v1/messages", vec![anthropic_text("hi", 10, 2)]).await;
    let rt = store
        .builder()
        .api_key("anthropic", ApiKey::new(KEY))
        .base_url("anthropic", base)
        .build()
        .await
        .unwrap();
    let src = plan("name: b\ntasks:\n  - { id: a, tool: llm:generate, inputs: { prompt: hi } }\n");
    let out = rt
        .submit(&src, Default::default())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    assert_eq!(
        out.tasks[0].outputs.as_ref().unwrap()["model"],
        "claude-sonnet"
    );
    let seen = script.seen();
    assert_eq!(seen[0].headers["x-api-key"], KEY);
    assert_eq!(seen[0].body["model"], "claude-sonnet-4-5");
    rt.shutdown().await;
}

both_stores! {
    async fn a_project_over_its_monthly_budget_stops_runs_billed_to_it(store) {
        // This month the project already spent $0.99 (another process, an earlier run).
        let s = nofx::store::Store::open(&store.url).await.unwrap();
        s.close().await;
        common::record_model_calls(&store.url, &[nofx::store::ModelCallRow {
            run_id: Some("earlier-run".into()),
            task_id: None,
            tool: Some("llm:generate".into()),
            agent: None,
            model: "gpt-mid".into(),
            provider: "openai".into(),
            input_tokens: 1,
            output_tokens: 1,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            estimated_cost_micro_usd: 990_000,
            cost_micro_usd: 990_000,
            duration_ms: 10,
            success: true,
            error_type: None,
            correlation_id: "corr_1_00000000".into(),
            at: chrono::Utc::now().timestamp_millis(),
            project: Some("acme".into()),
        }]).await;
        let (mut cfg, script) = openai(vec![openai_text("ok", 10, 10)]).await;
        cfg.budgets = Budgets {
            per_project_monthly: [("acme".to_string(), 1_000_000), ("default".to_string(), 100_000_000)].into(),
            ..Budgets::default()
        };
        let rt = runtime(&store, cfg).await;
        let big = plan("name: acme\nproject: acme\ntasks:\n  - { id: a, tool: llm:generate, inputs: { prompt: x, max_tokens: 10000 } }\n");
        let out = rt.submit(&big, Default::default()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.reason.as_deref(), Some("budget_exceeded"));
        let err = out.tasks[0].error.clone().unwrap();
        assert!(err.starts_with("project \"acme\" ("), "{err}");
        assert!(err.contains("budget of $1.00 would be exceeded: $0.99 spent"), "{err}");
        assert!(script.seen().is_empty());
        // Another project is not held back.
        let other = plan("name: other\ntasks:\n  - { id: a, tool: llm:generate, inputs: { prompt: x, max_tokens: 10000 } }\n");
        let out = rt.submit(&other, Default::default()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        rt.shutdown().await;
    }
}

/// Collects what the gateway reports of a call.
#[derive(Default)]
struct Collect {
    events: std::sync::Mutex<Vec<nofx::EventData>>,
    rows: std::sync::Mutex<Vec<nofx::store::ModelCallRow>>,
}

impl nofx::models::CallSink for Collect {
    fn event(&self, data: nofx::EventData) {
        self.events.lock().unwrap().push(data);
    }
    fn usage(&self, row: nofx::store::ModelCallRow) {
        self.rows.lock().unwrap().push(row);
    }
}

#[tokio::test]
async fn the_gateway_offers_tools_counts_them_in_the_estimate_and_returns_the_calls() {
    use nofx::models::{Models, ToolSpec};
    let answer = reply(
        200,
        json!({
            "model": "gpt-mid",
            "choices": [{
                "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": \"nofx\"}"}}
                ]},
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 120, "completion_tokens": 8}
        }),
    );
    let (cfg, script) = openai(vec![answer]).await;
    let models = Models::build(cfg, None).unwrap();
    let mut caller = a_caller();
    caller.tool = "agent".into();
    let schema = json!({"type": "object", "properties": {"q": {"type": "string", "description": "what to look up in the index of every document"}}});
    let mut ask = an_ask("find it");
    let bare = models.route_request(&caller, &ask).input_tokens;
    ask.tools = vec![ToolSpec {
        name: "lookup".into(),
        description: "Looks a word up.".into(),
        input_schema: schema.clone(),
    }];
    assert!(
        models.route_request(&caller, &ask).input_tokens > bare + 20,
        "tool definitions count toward the estimate"
    );
    let sink = Collect::default();
    let got = models.complete(&caller, &ask, &sink).await.unwrap();
    assert_eq!(got.stop_reason.as_deref(), Some("tool_calls"));
    assert_eq!(got.tool_calls.len(), 1);
    assert_eq!(got.tool_calls[0].input, json!({"q": "nofx"}));
    assert_eq!(got.input_tokens, 120);
    let body = script.seen()[0].body.clone();
    assert_eq!(body["tools"][0]["function"]["parameters"], schema);
    assert_eq!(sink.rows.lock().unwrap().len(), 1, "one usage row");
}

fn a_caller() -> nofx::models::Caller {
    nofx::models::Caller {
        run: None,
        task: None,
        correlation: nofx::CorrelationId::generate(),
        tool: "llm:generate".into(),
        agent: None,
        role: None,
        priority: nofx::Priority::Normal,
        capabilities: Vec::new(),
        project: "default".into(),
    }
}

fn an_ask(prompt: &str) -> nofx::models::Ask {
    nofx::models::Ask {
        system: None,
        messages: vec![nofx::models::Message::user(prompt)],
        max_tokens: 100,
        temperature: None,
        requires_reasoning: false,
        tools: Vec::new(),
        model: None,
    }
}

fn rate_limited(retry_after: &'static str) -> Reply {
    let mut r = reply(
        429,
        json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
    );
    r.headers = vec![("retry-after", retry_after)];
    r
}

#[tokio::test]
async fn a_retry_after_holds_back_every_later_call_to_that_model_not_only_its_own() {
    use nofx::models::Models;
    // One attempt a call: the 429 moves the first call on to the next model at once.
    let (mut cfg, script) = openai(vec![
        rate_limited("0.4"),
        openai_text("from the fallback", 10, 2),
        openai_text("after the wait", 10, 2),
    ])
    .await;
    cfg.retry = RetryPolicy {
        max_attempts: 1,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(2),
    };
    let models = Models::build(cfg, None).unwrap();
    let started = std::time::Instant::now();
    let first = models
        .complete(&a_caller(), &an_ask("one"), &Collect::default())
        .await
        .unwrap();
    assert_eq!(first.model, "gpt-small");
    // Another call (another task, or this task's own retry) waits out what the provider asked.
    let second = models
        .complete(&a_caller(), &an_ask("two"), &Collect::default())
        .await
        .unwrap();
    assert_eq!(second.model, "gpt-mid");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the second call was sent {:?} after the first, before the 429's Retry-After",
        started.elapsed()
    );
    let seen = script.seen();
    let models_asked: Vec<_> = seen.iter().map(|s| s.body["model"].clone()).collect();
    assert_eq!(
        models_asked,
        [
            json!("gpt-4.1-mini"),
            json!("gpt-4.1-nano"),
            json!("gpt-4.1-mini")
        ]
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_the_policy_waits_sends_later_calls_to_the_next_model() {
    use nofx::models::Models;
    let (cfg, script) = openai(vec![
        rate_limited("30"),
        openai_text("from the fallback", 10, 2),
        openai_text("from the fallback again", 10, 2),
    ])
    .await;
    let models = Models::build(cfg, None).unwrap();
    let first = models
        .complete(&a_caller(), &an_ask("one"), &Collect::default())
        .await
        .unwrap();
    assert_eq!(first.model, "gpt-small");
    let sink = Collect::default();
    let second = models
        .complete(&a_caller(), &an_ask("two"), &sink)
        .await
        .unwrap();
    assert_eq!(second.model, "gpt-small");
    let seen = script.seen();
    assert_eq!(seen.len(), 3, "nothing sent to the model cooling down");
    assert_eq!(seen[2].body["model"], "gpt-4.1-nano");
    // Only what was sent is a usage row; the move on is an event saying why.
    assert_eq!(sink.rows.lock().unwrap().len(), 1);
    let events = sink.events.lock().unwrap();
    let fallback = events
        .iter()
        .find_map(|e| match e {
            nofx::EventData::ModelFallback(f) => Some(f.clone()),
            _ => None,
        })
        .expect("a model.fallback event");
    assert_eq!(fallback.cause, "rate_limited");
    assert!(fallback.error.starts_with("not sent"), "{}", fallback.error);
}
