//! The event log's JSON contract: a golden log of runs that between them emit every stored
//! event type (gates, an approval, retries, a failure and what it skips, a restore, a cancel,
//! model routing with a fallback and a cost alert, a planned goal). Times, ids, deadlines and
//! durations are masked; every other byte of each event must match `tests/golden/events.jsonl`.
//!
//! After a deliberate change to the contract, write the file again with
//! `NOFX_BLESS=1 cargo test --test events` and review the diff.

mod common;

use common::llm::{anthropic_text, openai_text, reply, server};
use common::{events, plan, until, TestStore};
use nofx::models::budget::Budgets;
use nofx::models::{ApiKey, ModelsConfig, RetryPolicy};
use nofx::planner::PlannerOptions;
use nofx::{Event, RunStatus, Runtime, SubmitOptions};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const GOLDEN: &str = "tests/golden/events.jsonl";

/// Keys whose values differ from run to run.
const MASKED: [&str; 9] = [
    "at",
    "loopId",
    "runId",
    "correlationId",
    "waitId",
    "checkpointId",
    "parentRunId",
    "deadline",
    "durationMs",
];

fn mask(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if MASKED.contains(&k.as_str()) && !x.is_null() {
                    *x = Value::String(format!("<{k}>"));
                } else {
                    mask(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask),
        _ => {}
    }
}

/// One line per event: the scenario, then the event as the API and the CLI print it.
fn lines(scenario: &str, evs: &[Event]) -> Vec<String> {
    evs.iter()
        .map(|e| {
            // Each event reads back as its type's data, and writes out as it was stored.
            let data = e
                .payload()
                .unwrap_or_else(|err| panic!("{}: {err}", e.kind));
            assert_eq!((data.kind(), data.to_value()), (e.kind, e.data.clone()));
            let mut v = serde_json::to_value(e).expect("an event serialises");
            mask(&mut v);
            let text = serde_json::to_string(&v).expect("JSON");
            format!("{scenario} {text}")
        })
        .collect()
}

fn models(cfg: ModelsConfig) -> ModelsConfig {
    let mut cfg = cfg;
    cfg.retry = RetryPolicy {
        max_attempts: 1,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    };
    cfg.budgets = Budgets {
        per_call_alert: Some(10_000),
        ..Budgets::default()
    };
    cfg
}

/// build → deploy (a passing gate, then a person's approval) → check (a gate that always
/// fails, one retry) → report (skipped).
const CORE: &str = r#"
name: golden
inputs:
  version: { type: string, default: v1 }
tasks:
  - { id: build, tool: test:echo, inputs: { version: "${inputs.version}" } }
  - id: deploy
    tool: test:echo
    depends_on: [build]
    inputs: { target: "prod-${tasks.build.outputs.version}" }
    gates:
      - { kind: pattern, output: target, regex: "^prod-" }
      - { kind: manual, approvers: [alice], timeout_s: 3600 }
  - id: check
    tool: test:echo
    depends_on: [deploy]
    retry: { max: 1, backoff_ms: 10 }
    inputs: { code: "7" }
    gates:
      - { kind: pattern, output: code, regex: "^3$" }
  - { id: report, tool: test:echo, depends_on: [check], inputs: { x: 1 } }
"#;

async fn waiting(rt: &Runtime, run: nofx::RunId) {
    let store = rt.store().clone();
    until(Duration::from_secs(20), || {
        let s = store.clone();
        async move { s.run(run).await.unwrap().status == RunStatus::Waiting }
    })
    .await;
}

async fn core_and_restore(out: &mut Vec<String>) {
    let store = TestStore::sqlite().await;
    let rt = store.runtime().await;
    let run = rt.submit(&plan(CORE), Default::default()).await.unwrap();
    waiting(&rt, run.id()).await;
    let (st, id) = (rt.store().clone(), run.id());
    until(Duration::from_secs(20), || {
        let s = st.clone();
        async move { !s.checkpoints(id).await.unwrap().is_empty() }
    })
    .await;
    run.approve("deploy", "alice", Some("ship it"))
        .await
        .unwrap();
    assert_eq!(run.wait().await.unwrap().status, RunStatus::Failed);
    out.extend(lines("core", &events(&rt, run.id()).await));

    // From the checkpoint taken before the wait: deploy waits again, then the run is cancelled.
    let cp = rt.store().checkpoints(run.id()).await.unwrap().remove(0);
    let again = rt.restore(&cp.id, SubmitOptions::default()).await.unwrap();
    waiting(&rt, again.id()).await;
    again.cancel().await.unwrap();
    assert_eq!(again.wait().await.unwrap().status, RunStatus::Cancelled);
    out.extend(lines("restore", &events(&rt, again.id()).await));
    rt.shutdown().await;
}

async fn model_calls(out: &mut Vec<String>) {
    let (base, _script) = server(
        "/v1/chat/completions",
        vec![
            reply(
                400,
                json!({"error": {"message": "model not found", "type": "invalid_request_error", "code": "model_not_found"}}),
            ),
            openai_text("pricey", 100_000, 1_000),
        ],
    )
    .await;
    let cfg = ModelsConfig::shipped()
        .api_key("openai", ApiKey::new("sk-golden-0123456789"))
        .base_url("openai", format!("{base}/v1"));
    let store = TestStore::sqlite().await;
    let rt = store.builder().models(models(cfg)).build().await.unwrap();
    let src = plan(
        "name: model\ntasks:\n  - { id: ask, tool: llm:generate, inputs: { prompt: hello } }\n",
    );
    let run = rt.submit(&src, Default::default()).await.unwrap();
    assert_eq!(run.wait().await.unwrap().status, RunStatus::Succeeded);
    out.extend(lines("model", &events(&rt, run.id()).await));
    rt.shutdown().await;
}

async fn agent_loop(out: &mut Vec<String>) {
    let call = |id: &str, name: &str, args: Value| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}});
    let (base, _script) = server(
        "/v1/chat/completions",
        vec![
            reply(200, json!({
                "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                    call("c1", "test_echo", json!({"word": "hi"})),
                    call("c2", "shell", json!({"argv": ["echo", "hi"]}))
                ]}, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 200, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 0}}
            })),
            reply(200, json!({
                "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "both said hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 300, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 128}}
            })),
        ],
    )
    .await;
    let cfg = ModelsConfig::shipped()
        .api_key("openai", ApiKey::new("sk-golden-0123456789"))
        .base_url("openai", format!("{base}/v1"));
    let agent = nofx::AgentSpec::new("analyst", nofx::Role::Specialist)
        .with_capabilities(["analysis"])
        .with_tools(["test:echo", "shell"])
        .with_require_approval(["shell"]);
    let store = TestStore::sqlite().await;
    let rt = store
        .builder()
        .models(models(cfg))
        .agents(vec![agent])
        .build()
        .await
        .unwrap();
    let src = plan(
        "name: reason\ntasks:\n  - { id: think, tool: agent, capabilities: [analysis], inputs: { prompt: \"Say hi twice.\" } }\n",
    );
    let run = rt.submit(&src, Default::default()).await.unwrap();
    waiting(&rt, run.id()).await;
    run.approve("think", "alice", Some("harmless"))
        .await
        .unwrap();
    assert_eq!(run.wait().await.unwrap().status, RunStatus::Succeeded);
    out.extend(lines("agent", &events(&rt, run.id()).await));
    rt.shutdown().await;
}

async fn planned_goal(out: &mut Vec<String>) {
    let p = json!({"name": "greet", "tasks": [
        {"id": "hello", "tool": "test:echo", "inputs": {"msg": "hi"}}
    ]});
    let (base, _script) = server(
        "/v1/messages",
        vec![anthropic_text(&format!("```json\n{p}\n```"), 900, 150)],
    )
    .await;
    let cfg = ModelsConfig::shipped()
        .api_key("anthropic", ApiKey::new("sk-golden-0123456789"))
        .base_url("anthropic", base);
    let store = TestStore::sqlite().await;
    let rt = store.builder().models(models(cfg)).build().await.unwrap();
    let (run, _) = rt
        .submit_goal("Say hello", PlannerOptions::default())
        .await
        .unwrap();
    assert_eq!(run.wait().await.unwrap().status, RunStatus::Succeeded);
    out.extend(lines("planned", &events(&rt, run.id()).await));
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_of_runs_matches_the_golden_log() {
    let mut got = Vec::new();
    core_and_restore(&mut got).await;
    model_calls(&mut got).await;
    agent_loop(&mut got).await;
    planned_goal(&mut got).await;
    let text = got.join("\n") + "\n";

    // Every stored event type is in the log (model.delta is never stored; run.interrupted
    // needs the process to stop, covered in tests/runtime.rs).
    let types: BTreeSet<String> = got
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l.split_once(' ')?.1).ok())
        .map(|v| v["type"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(types.len(), 30, "{types:?}");

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("NOFX_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{GOLDEN}: {e}; write it with NOFX_BLESS=1"));
    for (n, (g, w)) in text.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "event {} differs from {GOLDEN}", n + 1);
    }
    assert_eq!(
        text.lines().count(),
        want.lines().count(),
        "number of events"
    );
}
