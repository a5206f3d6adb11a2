//! Agents that reason: the `agent` tool's loop against local servers speaking the OpenAI and
//! Anthropic wire formats (each scripted turn by turn, each request checked), its journal,
//! its events and its transcript, and what it does with bad model output.

mod common;

use common::llm::{reply, server, Reply, Script};
use common::{events, plan, TestStore};
use nofx::models::{ApiKey, ModelsConfig, RetryPolicy};
use nofx::{AgentSpec, EventType, Role, RunStatus, Runtime};
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "sk-test-secret-key-0123456789";

fn fast(mut cfg: ModelsConfig) -> ModelsConfig {
    cfg.retry = RetryPolicy {
        max_attempts: 1,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    };
    cfg
}

/// An OpenAI chat completion asking for `calls` (name, arguments JSON text).
fn openai_calls(calls: &[(&str, &str, Value)], prompt_tokens: u64, cached: u64) -> Reply {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    reply(
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "served-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 20, "total_tokens": prompt_tokens + 20,
                      "prompt_tokens_details": {"cached_tokens": cached}}
        }),
    )
}

/// An OpenAI chat completion answering `text`.
fn openai_answer(text: &str, prompt_tokens: u64, cached: u64) -> Reply {
    reply(
        200,
        json!({
            "id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": "served-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 10, "total_tokens": prompt_tokens + 10,
                      "prompt_tokens_details": {"cached_tokens": cached}}
        }),
    )
}

async fn openai(replies: Vec<Reply>) -> (ModelsConfig, Script) {
    let (base, script) = server("/v1/chat/completions", replies).await;
    let cfg = ModelsConfig::shipped()
        .api_key("openai", ApiKey::new(KEY))
        .base_url("openai", format!("{base}/v1"));
    (fast(cfg), script)
}

fn analyst() -> AgentSpec {
    AgentSpec::new("analyst", Role::Specialist)
        .with_capabilities(["analysis"])
        .with_limits(2, None)
        .with_instructions("You are a careful analyst. Use the tools.")
        .with_tools(["test:echo", "test:validate"])
}

async fn runtime(store: &TestStore, cfg: ModelsConfig, agents: Vec<AgentSpec>) -> Runtime {
    store
        .builder()
        .models(cfg)
        .agents(agents)
        .build()
        .await
        .expect("runtime starts")
}

const PLAN: &str = r#"
name: reason
tasks:
  - id: think
    tool: agent
    capabilities: [analysis]
    inputs:
      prompt: "Echo the word hello, then tell me what came back."
"#;

both_stores! {
    async fn the_loop_calls_tools_in_turns_journals_each_step_and_answers(store) {
        let (cfg, script) = openai(vec![
            openai_calls(&[("call_a", "test_echo", json!({"word": "hello"})), ("call_b", "test_echo", json!({"n": 2}))], 300, 0),
            openai_answer("The echo gave back hello and 2.", 420, 256),
        ])
        .await;
        let rt = runtime(&store, cfg, vec![analyst()]).await;
        let run = rt.submit(&plan(PLAN), Default::default()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        let o = out.tasks[0].outputs.clone().unwrap();
        assert_eq!(o["answer"], "The echo gave back hello and 2.");
        assert_eq!((o["turns"].as_u64(), o["tool_calls"].as_u64()), (Some(2), Some(2)));
        assert_eq!(o["stop_reason"], "answer");

        // Turn 1 offered both tools under provider-safe names, with the agent's instructions.
        let seen = script.seen();
        assert_eq!(seen.len(), 2);
        let first = &seen[0].body;
        let names: Vec<&str> = first["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["test_echo", "test_validate"]);
        assert_eq!(first["messages"][0]["role"], "system");
        assert_eq!(first["messages"][0]["content"], "You are a careful analyst. Use the tools.");
        // Turn 2 carried the assistant's calls and both results, in order, by call id.
        let msgs = seen[1].body["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 5, "{msgs:?}");
        assert_eq!(msgs[2]["role"], "assistant");
        assert_eq!(msgs[2]["tool_calls"][0]["id"], "call_a");
        assert_eq!((msgs[3]["role"].as_str(), msgs[3]["tool_call_id"].as_str()), (Some("tool"), Some("call_a")));
        assert_eq!(msgs[4]["tool_call_id"], "call_b");
        let echoed: Value = serde_json::from_str(msgs[3]["content"].as_str().unwrap()).unwrap();
        assert_eq!(echoed["word"], "hello");

        // The journal: one loop, two turns, two calls with their results.
        let t = rt.store().transcript(run.id(), "think").await.unwrap();
        assert_eq!(t.loops.len(), 1);
        let l = &t.loops[0];
        assert_eq!(l.record.agent, "analyst");
        assert_eq!(l.record.stop_reason.as_deref(), Some("answer"));
        assert_eq!(l.turns.len(), 2);
        assert_eq!(l.turns[0].tool_calls.len(), 2);
        assert!(l.turns[0].tool_calls.iter().all(|c| c.status == nofx::store::CallStatus::Succeeded));
        assert_eq!(l.turns[1].turn.cache_read_tokens, 256);
        let doc = serde_json::to_value(&t).unwrap();
        assert_eq!(doc["loops"][0]["turns"][0]["toolCalls"][0]["tool"], "test:echo");
        assert_eq!(doc["loops"][0]["turns"][1]["cacheReadTokens"], 256);

        // Events in order: a turn, its calls, their returns, the next turn, the end.
        let evs = events(&rt, run.id()).await;
        let k: Vec<EventType> = evs.iter().map(|e| e.kind).filter(|k| k.as_str().starts_with("agent.") || k.as_str().starts_with("tool.")).collect();
        assert_eq!(k[0], EventType::AgentTurn);
        assert_eq!(k.iter().filter(|k| **k == EventType::ToolCalled).count(), 2);
        assert_eq!(k.iter().filter(|k| **k == EventType::ToolReturned).count(), 2);
        assert_eq!(&k[k.len() - 2..], [EventType::AgentTurn, EventType::AgentFinished]);
        let turn2 = evs.iter().filter(|e| e.kind == EventType::AgentTurn).nth(1).unwrap();
        assert_eq!(turn2.data["cachedTokens"], 256);
        let finished = evs.iter().find(|e| e.kind == EventType::AgentFinished).unwrap();
        assert_eq!(finished.data["stopReason"], "answer");

        // Usage rows carry the cache reads; the cached tokens cost less.
        let rows = rt.store().model_calls(run.id()).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].cache_read_tokens, 256);
        rt.shutdown().await;
    }
}
