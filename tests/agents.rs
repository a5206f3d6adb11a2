//! Agents that reason: the `agent` tool's loop against local servers speaking the OpenAI and
//! Anthropic wire formats (each scripted turn by turn, each request checked), its journal,
//! its events and its transcript, and what it does with bad model output.

mod common;

use common::llm::{openai_answer, openai_calls, reply, server, Reply, Script};
use common::{events, plan, TestStore};
use nofx::models::{ApiKey, ModelsConfig, RetryPolicy};
use nofx::{AgentSpec, EventType, Role, RunStatus, Runtime, SubmitOptions};
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

both_stores! {
    async fn bad_model_output_is_fed_back_as_errors_and_counts_as_turns(store) {
        let (cfg, script) = openai(vec![
            openai_calls(&[("c1", "nope", json!({})), ("c2", "test_validate", json!({"data": 1})), ("c3", "test_echo", json!("not an object"))], 300, 0),
            openai_answer("All fine, I think.", 400, 0),
            openai_answer("```json\n{\"ok\": true, \"items\": 3}\n```", 450, 0),
        ])
        .await;
        let rt = runtime(&store, cfg, vec![analyst()]).await;
        let src = plan(r#"
name: reason
tasks:
  - id: think
    tool: agent
    capabilities: [analysis]
    inputs:
      prompt: "Count the items."
      output_schema: { type: object, required: [ok, items], properties: { ok: { type: boolean }, items: { type: integer } } }
"#);
        let run = rt.submit(&src, Default::default()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        let o = out.tasks[0].outputs.clone().unwrap();
        assert_eq!(o["answer"], json!({"ok": true, "items": 3}));
        assert_eq!(o["turns"], 3);

        let seen = script.seen();
        // The output schema is in the system prompt.
        assert!(seen[0].body["messages"][0]["content"].as_str().unwrap().contains("\"items\""));
        // Turn 2 got three error results, each saying what was wrong.
        let msgs = seen[1].body["messages"].as_array().unwrap();
        let results: Vec<&str> = msgs.iter().filter(|m| m["role"] == "tool").map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!(results.len(), 3, "{msgs:?}");
        assert!(results[0].contains("there is no tool `nope`") && results[0].contains("test_echo"), "{}", results[0]);
        assert!(results[1].contains("input schema") && results[1].contains("schema"), "{}", results[1]);
        assert!(results[2].contains("must be a JSON object"), "{}", results[2]);
        // Turn 3 was told the answer is not JSON.
        let last = common::llm::last_message(&seen[2].body);
        assert_eq!(last["role"], "user");
        assert!(last["content"].as_str().unwrap().contains("not JSON"), "{last}");

        let t = rt.store().transcript(run.id(), "think").await.unwrap();
        let calls = &t.loops[0].turns[0].tool_calls;
        assert!(calls.iter().all(|c| c.is_error && c.status == nofx::store::CallStatus::Failed));
        assert_eq!(calls[0].tool, None);
        assert_eq!(calls[1].tool.as_deref(), Some("test:validate"));
        assert!(t.loops[0].turns[1].turn.feedback.as_deref().unwrap().contains("not JSON"));
        rt.shutdown().await;
    }
}

#[tokio::test]
async fn a_loop_that_runs_out_of_turns_fails_the_task_saying_so() {
    let store = TestStore::sqlite().await;
    let (cfg, _script) = openai(vec![
        openai_calls(&[("c1", "test_echo", json!({"a": 1}))], 100, 0),
        openai_calls(&[("c2", "test_echo", json!({"a": 2}))], 100, 0),
    ])
    .await;
    let rt = runtime(&store, cfg, vec![analyst()]).await;
    let src = plan(
        r#"
name: reason
tasks:
  - id: think
    tool: agent
    capabilities: [analysis]
    inputs: { prompt: "Go on forever.", max_turns: 2 }
"#,
    );
    let run = rt.submit(&src, Default::default()).await.unwrap();
    let out = run.wait().await.unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let t = &out.tasks[0];
    assert!(t.error.as_deref().unwrap().contains("max_turns"), "{t:?}");
    let o = t.outputs.clone().unwrap();
    assert_eq!(
        (o["stop_reason"].as_str(), o["turns"].as_u64()),
        (Some("max_turns"), Some(2))
    );
    let evs = events(&rt, run.id()).await;
    let fin = evs
        .iter()
        .find(|e| e.kind == EventType::AgentFinished)
        .unwrap();
    assert_eq!(fin.data["stopReason"], "max_turns");
    rt.shutdown().await;
}

#[tokio::test]
async fn a_task_may_narrow_its_agents_tools_but_never_widen_them() {
    let store = TestStore::sqlite().await;
    let (cfg, _script) = openai(vec![]).await;
    let rt = runtime(&store, cfg, vec![analyst()]).await;
    let wide = plan(
        r#"
name: reason
tasks:
  - id: think
    tool: agent
    capabilities: [analysis]
    inputs: { prompt: "x", tools: [test:echo, shell] }
"#,
    );
    let err = rt
        .submit(&wide, Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/tools") && err.contains("`analyst`") && err.contains("shell"),
        "{err}"
    );
    let narrow = plan(
        r#"
name: reason
tasks:
  - id: think
    tool: agent
    capabilities: [analysis]
    inputs: { prompt: "x", tools: [test:echo] }
"#,
    );
    rt.validate(&narrow, &Default::default()).unwrap();
    rt.shutdown().await;
    // An agent whose tools name nothing the runtime has does not start.
    let bad = AgentSpec::new("odd", Role::Worker).with_tools(["test:nothing", "agent:ghost"]);
    let err = store
        .builder()
        .agents(vec![bad])
        .build()
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("test:nothing") && err.contains("agent:ghost"),
        "{err}"
    );
}

both_stores! {
    async fn an_agent_asks_another_in_a_loop_of_its_own_and_a_cycle_is_an_error_result(store) {
        let lead = AgentSpec::new("lead", Role::Coordinator)
            .with_capabilities(["planning"])
            .with_tools(["agent:helper"]);
        let helper = AgentSpec::new("helper", Role::Worker)
            .with_tools(["test:echo", "agent:lead"]);
        let (cfg, script) = openai(vec![
            openai_calls(&[("l1", "agent_helper", json!({"prompt": "Say hi."}))], 100, 0),
            openai_calls(&[("h1", "agent_lead", json!({"prompt": "Help me."}))], 100, 0),
            openai_answer("hi from helper", 100, 0),
            openai_answer("helper said: hi from helper", 100, 0),
        ])
        .await;
        let rt = runtime(&store, cfg, vec![lead, helper]).await;
        let src = plan(r#"
name: nest
tasks:
  - id: ask
    tool: agent
    capabilities: [planning]
    inputs: { prompt: "Ask the helper." }
"#);
        let run = rt.submit(&src, Default::default()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        assert_eq!(out.tasks[0].outputs.as_ref().unwrap()["answer"], "helper said: hi from helper");
        let seen = script.seen();
        assert_eq!(seen.len(), 4);
        // The helper was asked with the lead's prompt, and offered its own tools.
        assert_eq!(seen[1].body["messages"][0]["content"], "Say hi.");
        let names: Vec<&str> = seen[1].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["test_echo", "agent_lead"]);
        // Asking the lead back names the chain.
        let back = common::llm::last_message(&seen[2].body);
        assert!(back["content"].as_str().unwrap().contains("lead → helper → lead"), "{back}");
        // The lead got the helper's answer as the call's result.
        let got = common::llm::last_message(&seen[3].body);
        assert_eq!((got["role"].as_str(), got["content"].as_str()), (Some("tool"), Some("hi from helper")));
        // Two loops under the task: the helper's hangs under the lead's call.
        let t = rt.store().transcript(run.id(), "ask").await.unwrap();
        assert_eq!(t.loops.len(), 2);
        let child = t.loops.iter().find(|l| l.record.depth == 1).unwrap();
        assert_eq!(child.record.agent, "helper");
        assert_eq!(child.record.parent_call.as_deref(), Some("l1"));
        rt.shutdown().await;
    }
}

/// The messages of an Anthropic request without cache marks.
fn unmarked(v: &Value) -> Value {
    let mut v = v.clone();
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("cache_control");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

#[tokio::test]
async fn anthropic_loops_mark_the_cache_prefix_and_read_more_of_it_each_turn() {
    use std::sync::{Arc, Mutex};
    // The provider caches what the previous request marked and reports as read the part of
    // this request that repeats it (a quarter token per byte).
    let cached: Arc<Mutex<Option<(Value, usize)>>> = Arc::default();
    let (base, seen) = common::llm::responder("/v1/messages", move |body| {
        let msgs = unmarked(&body["messages"]);
        let n = msgs.as_array().unwrap().len();
        let mut read = 0;
        let mut c = cached.lock().unwrap();
        if let Some((prev, bytes)) = c.as_ref() {
            let prev = prev.as_array().unwrap();
            if msgs.as_array().unwrap().starts_with(prev) {
                read = *bytes / 4;
            }
        }
        let bytes = msgs.to_string().len() + body["system"].to_string().len() + body["tools"].to_string().len();
        *c = Some((msgs, bytes));
        let turn = n.div_ceil(2);
        let content = if turn < 10 {
            json!([{"type": "tool_use", "id": format!("toolu_{turn}"), "name": "test_echo", "input": {"turn": turn}}])
        } else {
            json!([{"type": "text", "text": "done after ten turns"}])
        };
        reply(200, json!({
            "id": "msg", "type": "message", "role": "assistant", "model": "served",
            "content": content, "stop_reason": if turn < 10 { "tool_use" } else { "end_turn" },
            "usage": {"input_tokens": 50, "output_tokens": 10, "cache_read_input_tokens": read, "cache_creation_input_tokens": bytes / 4 - read}
        }))
    })
    .await;
    let cfg = fast(
        ModelsConfig::shipped()
            .api_key("anthropic", ApiKey::new(KEY))
            .base_url("anthropic", base),
    );
    let store = TestStore::sqlite().await;
    let rt = runtime(&store, cfg, vec![analyst()]).await;
    let run = rt.submit(&plan(PLAN), Default::default()).await.unwrap();
    let out = run.wait().await.unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    assert_eq!(out.tasks[0].outputs.as_ref().unwrap()["turns"], 10);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 10);
    for (i, s) in seen.iter().enumerate() {
        let b = &s.body;
        // System prompt, the last tool and the last message's last block carry the marks.
        assert_eq!(b["system"][0]["cache_control"]["type"], "ephemeral");
        let tools = b["tools"].as_array().unwrap();
        assert!(tools.last().unwrap().get("cache_control").is_some());
        assert!(tools[..tools.len() - 1]
            .iter()
            .all(|t| t.get("cache_control").is_none()));
        let msgs = b["messages"].as_array().unwrap();
        let marks = b["messages"].to_string().matches("cache_control").count();
        assert_eq!(marks, 1, "request {i}: {}", b["messages"]);
        assert!(msgs.last().unwrap()["content"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .get("cache_control")
            .is_some());
        if i > 0 {
            // Results come back as tool_result blocks naming the call.
            let results = &msgs[msgs.len() - 1]["content"][0];
            assert_eq!(results["type"], "tool_result");
            assert_eq!(results["tool_use_id"], format!("toolu_{i}"));
        }
    }
    // Cache reads grow turn by turn, in the journal and in usage rows alike.
    let t = rt.store().transcript(run.id(), "think").await.unwrap();
    let reads: Vec<u64> = t.loops[0]
        .turns
        .iter()
        .map(|t| t.turn.cache_read_tokens)
        .collect();
    assert_eq!(reads[0], 0);
    assert!(reads.windows(2).all(|w| w[1] > w[0]), "{reads:?}");
    let rows = rt.store().model_calls(run.id()).await.unwrap();
    let row_reads: Vec<u64> = rows.iter().map(|r| r.cache_read_tokens as u64).collect();
    assert_eq!(row_reads, reads);
    // Input tokens count the cached ones; cached reads cost less than fresh input.
    let last = &t.loops[0].turns[9].turn;
    assert_eq!(
        last.input_tokens,
        50 + last.cache_read_tokens + last.cache_write_tokens
    );
    rt.shutdown().await;
}

#[cfg(feature = "server")]
#[tokio::test]
async fn the_transcript_is_served_over_http_to_the_runs_project_only() {
    let store = TestStore::sqlite().await;
    let (cfg, _script) = openai(vec![
        openai_calls(&[("call_a", "test_echo", json!({"word": "hello"}))], 300, 0),
        openai_answer("hello came back", 420, 128),
    ])
    .await;
    let rt = runtime(&store, cfg, vec![analyst()]).await;
    let run = rt.submit(&plan(PLAN), Default::default()).await.unwrap();
    assert_eq!(run.wait().await.unwrap().status, RunStatus::Succeeded);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(nofx::api::serve(
        rt.clone(),
        Default::default(),
        listener,
        std::future::pending::<()>(),
    ));
    let all = nofx::store::Scope::ALL;
    let mine = rt
        .store()
        .create_key("default", None, &all)
        .await
        .unwrap()
        .1;
    let theirs = rt.store().create_key("other", None, &all).await.unwrap().1;
    let http = reqwest::Client::new();
    let get = |key: String, path: String| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let r = http.get(url).bearer_auth(key).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let path = format!("/runs/{}/tasks/think/transcript", run.id());
    let (code, doc) = get(mine.clone(), path.clone()).await;
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["taskId"], "think");
    let turns = doc["loops"][0]["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[0]["toolCalls"][0]["input"], json!({"word": "hello"}));
    assert_eq!(turns[0]["toolCalls"][0]["status"], "succeeded");
    assert_eq!(turns[1]["cacheReadTokens"], 128);
    assert!(turns[1]["cost"].as_f64().unwrap() > 0.0);
    assert!(turns[1]["at"].as_str().unwrap().ends_with('Z'));
    // The same document as the library's.
    let lib =
        serde_json::to_value(rt.store().transcript(run.id(), "think").await.unwrap()).unwrap();
    assert_eq!(doc, lib);
    let (code, _) = get(mine, format!("/runs/{}/tasks/nope/transcript", run.id())).await;
    assert_eq!(code, 404);
    let (code, _) = get(theirs, path).await;
    assert_eq!(code, 404);
    rt.shutdown().await;
}

both_stores! {
    async fn calls_that_need_approval_wait_durably_for_a_person_then_run_or_are_declined(store) {
        let guarded = AgentSpec::new("operator", Role::Specialist)
            .with_capabilities(["ops"])
            .with_tools(["shell", "test:echo"])
            .with_require_approval(["shell"]);
        let (cfg, script) = openai(vec![
            openai_calls(&[
                ("s1", "shell", json!({"argv": ["sh", "-c", "echo approved >> done.txt"]})),
                ("e1", "test_echo", json!({"x": 1})),
            ], 100, 0),
            openai_calls(&[("s2", "shell", json!({"argv": ["sh", "-c", "echo declined >> done.txt"]}))], 100, 0),
            openai_answer("one ran, one was declined", 100, 0),
        ])
        .await;
        let rt = runtime(&store, cfg.clone(), vec![guarded.clone()]).await;
        let src = plan("name: ops\ntasks:\n  - id: act\n    tool: agent\n    capabilities: [ops]\n    inputs: { prompt: \"Do it.\" }\n");
        let run = rt.submit(&src, Default::default()).await.unwrap();
        let id = run.id();
        let waiting = |rt: Runtime| async move {
            common::until(Duration::from_secs(30), || {
                let rt = rt.clone();
                async move { rt.store().run(id).await.unwrap().status == RunStatus::Waiting }
            })
            .await;
        };
        waiting(rt.clone()).await;
        // The echo ran; the shell call waits, its tool and input in the event.
        assert_eq!(script.seen().len(), 1);
        let evs = events(&rt, id).await;
        let asked = evs.iter().find(|e| e.kind == EventType::ToolApprovalRequested).unwrap();
        assert_eq!(asked.data["tool"], "shell");
        assert_eq!(asked.data["callId"], "s1");
        assert_eq!(asked.data["input"]["argv"][2], "echo approved >> done.txt");
        assert!(evs.iter().any(|e| e.kind == EventType::ToolReturned && e.data["callId"] == "e1"));
        let ws = std::path::PathBuf::from(rt.store().run(id).await.unwrap().workspace);
        assert!(!ws.join("done.txt").exists(), "the call ran before its approval");
        run.approve("act", "alice", None).await.unwrap();

        // The second shell call waits; this runtime stops while it does.
        common::until(Duration::from_secs(30), || {
            let rt = rt.clone();
            async move {
                common::events(&rt, id).await.iter().filter(|e| e.kind == EventType::ToolApprovalRequested).count() == 2
                    && rt.store().run(id).await.unwrap().status == RunStatus::Waiting
            }
        })
        .await;
        assert_eq!(std::fs::read_to_string(ws.join("done.txt")).unwrap(), "approved\n");
        rt.shutdown().await;

        let rt = runtime(&store, cfg, vec![guarded]).await;
        assert_eq!(rt.resume_orphans().await.unwrap().resumed, vec![id]);
        let err = rt.run(id).await.unwrap().reject("act", "", None).await.unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
        rt.run(id).await.unwrap().reject("act", "bob", Some("too risky")).await.unwrap();
        let out = rt.run(id).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        assert_eq!(std::fs::read_to_string(ws.join("done.txt")).unwrap(), "approved\n");

        let seen = script.seen();
        assert_eq!(seen.len(), 3);
        let results: Vec<(String, String)> = seen[1].body["messages"].as_array().unwrap().iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| (m["tool_call_id"].as_str().unwrap().to_string(), m["content"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(results[0].0, "s1");
        assert!(results[0].1.contains("\"exit_code\":0"), "{results:?}");
        assert_eq!(results[1].0, "e1");
        let last = common::llm::last_message(&seen[2].body);
        assert_eq!(last["content"], "the call was declined: too risky");
        let evs = events(&rt, id).await;
        let decided: Vec<(String, String)> = evs.iter().filter(|e| e.kind == EventType::ToolApprovalDecided)
            .map(|e| (e.data["decision"].as_str().unwrap().to_string(), e.data["by"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(decided, [("approve".to_string(), "alice".to_string()), ("reject".to_string(), "bob".to_string())]);
        let t = rt.store().transcript(id, "act").await.unwrap();
        let statuses: Vec<&str> = t.loops[0].turns.iter().flat_map(|t| t.tool_calls.iter().map(|c| c.status.as_str())).collect();
        assert_eq!(statuses, ["succeeded", "succeeded", "declined"]);
        rt.shutdown().await;
    }
}

#[tokio::test]
async fn a_loop_streams_its_turns_to_subscribers_tool_calls_included() {
    use futures::StreamExt;
    let chunk = |delta: Value, finish: Option<&str>| json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "model": "m"});
    let usage = json!({"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 4}});
    let mut turn1 = common::llm::sse(&[
        (
            "",
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "test_echo", "arguments": ""}}]}),
                None,
            ),
        ),
        (
            "",
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"said\": "}}]}),
                None,
            ),
        ),
        (
            "",
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"hi\"}"}}]}),
                Some("tool_calls"),
            ),
        ),
        ("", usage.clone()),
    ]);
    turn1.body.push_str("data: [DONE]\n\n");
    let mut turn2 = common::llm::sse(&[
        ("", chunk(json!({"content": "it said "}), None)),
        ("", chunk(json!({"content": "hi"}), Some("stop"))),
        ("", usage),
    ]);
    turn2.body.push_str("data: [DONE]\n\n");
    let (cfg, script) = openai(vec![turn1, turn2]).await;
    let store = TestStore::sqlite().await;
    let rt = runtime(&store, cfg, vec![analyst()]).await;
    // Stored only, so the deltas subscription is in place before the first turn.
    let run = rt
        .submit_with(&plan(PLAN), Default::default(), None, true)
        .await
        .unwrap();
    let deltas = run.deltas();
    rt.resume(run.id()).await.unwrap();
    let got: Vec<nofx::events::Delta> = deltas.collect().await;
    let text: String = got
        .iter()
        .map(|d| d.data["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "it said hi");
    let out = run.wait().await.unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    assert_eq!(
        out.tasks[0].outputs.as_ref().unwrap()["answer"],
        "it said hi"
    );
    let seen = script.seen();
    assert!(seen.iter().all(|s| s.body["stream"] == true));
    // The streamed call's pieces made one call, whose result went back.
    let result = common::llm::last_message(&seen[1].body);
    assert_eq!(result["tool_call_id"], "c1");
    assert_eq!(
        serde_json::from_str::<Value>(result["content"].as_str().unwrap()).unwrap(),
        json!({"said": "hi"})
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn the_runs_budget_stops_a_loop_before_the_turn_that_would_pass_it() {
    let (mut cfg, script) = openai(vec![
        openai_calls(&[("c1", "test_echo", json!({"a": 1}))], 10_000, 0),
        openai_answer("never asked", 100, 0),
    ])
    .await;
    cfg.budgets = nofx::models::budget::Budgets {
        per_run: Some(5_000),
        ..Default::default()
    };
    let store = TestStore::sqlite().await;
    let rt = runtime(&store, cfg, vec![analyst()]).await;
    let src = plan("name: b\ntasks:\n  - { id: think, tool: agent, capabilities: [analysis], inputs: { prompt: \"Go.\", max_tokens: 1000 } }\n");
    let run = rt.submit(&src, Default::default()).await.unwrap();
    let out = run.wait().await.unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    assert_eq!(out.reason.as_deref(), Some("budget_exceeded"), "{out:?}");
    assert_eq!(
        script.seen().len(),
        1,
        "the turn over budget was never sent"
    );
    let evs = events(&rt, run.id()).await;
    let fin = evs
        .iter()
        .find(|e| e.kind == EventType::AgentFinished)
        .unwrap();
    assert_eq!(fin.data["stopReason"], "budget");
    assert!(
        fin.data["error"].as_str().unwrap().contains("budget"),
        "{}",
        fin.data
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_run_stops_its_loop_and_the_call_in_flight() {
    let agent = AgentSpec::new("operator", Role::Specialist)
        .with_capabilities(["ops"])
        .with_tools(["shell"]);
    let (cfg, script) = openai(vec![openai_calls(
        &[(
            "s1",
            "shell",
            json!({"argv": ["sh", "-c", "echo $$ > slow.pid; sleep 300"]}),
        )],
        100,
        0,
    )])
    .await;
    let store = TestStore::sqlite().await;
    let rt = runtime(&store, cfg, vec![agent]).await;
    let src = plan("name: c\ntasks:\n  - { id: act, tool: agent, capabilities: [ops], inputs: { prompt: \"Wait.\" } }\n");
    let run = rt.submit(&src, Default::default()).await.unwrap();
    let ws = std::path::PathBuf::from(rt.store().run(run.id()).await.unwrap().workspace);
    common::until(Duration::from_secs(30), || {
        let p = ws.join("slow.pid");
        async move { std::fs::read_to_string(p).is_ok_and(|t| t.ends_with('\n')) }
    })
    .await;
    let pid: i32 = std::fs::read_to_string(ws.join("slow.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    run.cancel().await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), run.wait())
        .await
        .expect("the cancel is prompt")
        .unwrap();
    assert_eq!(out.status, RunStatus::Cancelled);
    common::until(
        Duration::from_secs(10),
        || async move { !common::alive(pid) },
    )
    .await;
    assert_eq!(script.seen().len(), 1, "no turn after the cancel");
    rt.shutdown().await;
}

#[tokio::test]
async fn without_the_right_to_run_commands_an_agent_that_may_call_shell_is_refused() {
    let (cfg, _script) = openai(vec![]).await;
    let operator = AgentSpec::new("operator", Role::Specialist)
        .with_capabilities(["ops"])
        .with_tools(["test:echo", "agent:runner"]);
    let runner = AgentSpec::new("runner", Role::Worker).with_tools(["shell"]);
    let store = TestStore::sqlite().await;
    let rt = runtime(&store, cfg, vec![operator, runner]).await;
    let opts = nofx::SubmitOptions {
        no_commands: true,
        ..Default::default()
    };
    // The operator may ask the runner, which may call shell: that is running commands.
    let src = plan("name: o\ntasks:\n  - { id: act, tool: agent, capabilities: [ops], inputs: { prompt: \"x\" } }\n");
    let err = rt
        .submit_opts(&src, Default::default(), opts.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, nofx::RuntimeError::Forbidden { scope: "shell", .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("agent `operator` may call `shell`"),
        "{err}"
    );
    assert!(
        rt.store().runs(&[], 10).await.unwrap().is_empty(),
        "nothing stored"
    );
    // Narrowed to what runs no command, it is accepted.
    let narrow = plan("name: o\ntasks:\n  - { id: act, tool: agent, capabilities: [ops], inputs: { prompt: \"x\", tools: [test:echo] } }\n");
    let run = rt
        .submit_opts(
            &narrow,
            Default::default(),
            SubmitOptions {
                detach: true,
                ..opts
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rt.store().run(run.id()).await.unwrap().status,
        RunStatus::Pending
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn a_model_tool_the_loop_calls_that_would_pass_the_budget_stops_the_loop_as_budget() {
    let (mut cfg, script) = openai(vec![openai_calls(
        &[(
            "g1",
            "llm_generate",
            json!({"prompt": "write a long essay", "max_tokens": 4000}),
        )],
        100,
        0,
    )])
    .await;
    cfg.budgets = nofx::models::budget::Budgets {
        per_run: Some(5_000),
        ..Default::default()
    };
    let writer = AgentSpec::new("writer", Role::Specialist)
        .with_capabilities(["analysis"])
        .with_tools(["llm:generate"]);
    let store = TestStore::sqlite().await;
    let rt = runtime(&store, cfg, vec![writer]).await;
    let src = plan("name: b\ntasks:\n  - { id: think, tool: agent, capabilities: [analysis], inputs: { prompt: \"Go.\", max_tokens: 1000 } }\n");
    let run = rt.submit(&src, Default::default()).await.unwrap();
    let out = run.wait().await.unwrap();
    assert_eq!(out.reason.as_deref(), Some("budget_exceeded"), "{out:?}");
    assert_eq!(
        script.seen().len(),
        1,
        "the inner call over budget was never sent"
    );
    let t = rt.store().transcript(run.id(), "think").await.unwrap();
    let call = &t.loops[0].turns[0].tool_calls[0];
    assert_eq!(call.status, nofx::store::CallStatus::Failed);
    assert!(
        call.result.as_deref().unwrap().contains("budget"),
        "{call:?}"
    );
    assert_eq!(t.loops[0].record.stop_reason.as_deref(), Some("budget"));
    rt.shutdown().await;
}

both_stores! {
    async fn an_agent_asks_the_user_and_goes_on_with_the_answer(store) {
        let curious = AgentSpec::new("interviewer", Role::Specialist)
            .with_capabilities(["interview"])
            .with_instructions("Ask the user when you need to know something.")
            .with_tools(["ask", "test:echo"]);
        let color = json!({"id": "color", "text": "Favourite colour?", "type": "select", "options": ["red", "blue"]});
        let (cfg, script) = openai(vec![
            openai_calls(&[("q1", "ask", color.clone())], 100, 0),
            // The same question id asked again by another call is another question.
            openai_calls(&[("q2", "ask", json!({"questions": [color, {"id": "sure", "text": "Sure?", "type": "boolean", "default": true}]}))], 100, 0),
            openai_answer("blue, then red", 100, 0),
        ])
        .await;
        let rt = runtime(&store, cfg, vec![curious]).await;
        let src = plan("name: talk\ntasks:\n  - id: chat\n    tool: agent\n    capabilities: [interview]\n    inputs: { prompt: \"Find out the user's colour.\" }\n");
        let run = rt.submit(&src, Default::default()).await.unwrap();
        let pending = |want: usize| {
            let run = run.clone();
            async move {
                let mut last = Vec::new();
                for _ in 0..600 {
                    last = run.pending_questions().await.unwrap();
                    if last.len() == want {
                        return last;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                panic!("{} pending, expected {want}", last.len());
            }
        };
        let first = pending(1).await;
        assert_eq!(first[0].question.id, "color");
        assert_eq!(first[0].task_id, "chat");
        assert_eq!(script.seen().len(), 1, "the loop stopped to wait");
        run.answer("color", nofx::questions::Answer::Value(json!("blue"))).await.unwrap();
        let second = pending(2).await;
        assert_ne!(second[0].scope, first[0].scope);
        // Its id is pending once; the first `color` stays answered.
        run.answer("color", nofx::questions::Answer::Value(json!("red"))).await.unwrap();
        run.answer("sure", nofx::questions::Answer::Idk).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        assert_eq!(out.tasks[0].outputs.as_ref().unwrap()["answer"], "blue, then red");
        let seen = script.seen();
        assert_eq!(seen.len(), 3);
        let offered: Vec<&str> = seen[0].body["tools"].as_array().unwrap().iter()
            .map(|t| t["function"]["name"].as_str().unwrap()).collect();
        assert!(offered.contains(&"ask"), "{offered:?}");
        let result = |i: usize| {
            let last = common::llm::last_message(&seen[i].body);
            assert_eq!(last["role"], "tool");
            serde_json::from_str::<Value>(last["content"].as_str().unwrap()).unwrap()
        };
        assert_eq!(result(1), json!({"color": "blue"}));
        assert_eq!(result(2), json!({"color": "red", "sure": true}));
        let evs = events(&rt, run.id()).await;
        assert_eq!(evs.iter().filter(|e| e.kind == EventType::QuestionAsked).count(), 3);
        rt.shutdown().await;
    }
}
