//! Agent hierarchies whose decomposing agent's model takes part, against a local server that
//! speaks the OpenAI wire format (each request checked): planned sub-plans, `llm` merges,
//! replans that succeed and that run out, delegation cycles, and a real `nofx run` killed
//! with SIGKILL right after its decomposition is committed.

mod common;

use common::llm::{last_message, openai_answer, responder, Reply, Seen};
use common::{events, plan, TestStore};
use nofx::models::{ApiKey, ModelsConfig, RetryPolicy};
use nofx::{AgentSpec, EventType, Role, RunStatus, Runtime, TaskStatus};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn answer(text: &str) -> Reply {
    openai_answer(text, 100, 0)
}

/// A plan answer, in a fenced block as the planner asks.
fn plan_answer(tasks: Value) -> Reply {
    answer(&format!(
        "```json\n{}\n```",
        json!({"name": "sub", "tasks": tasks})
    ))
}

fn system(body: &Value) -> String {
    body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn user(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn runtime(store: &TestStore, base: &str) -> Runtime {
    let mut cfg = ModelsConfig::shipped()
        .api_key("openai", ApiKey::new("sk-test-0123456789"))
        .base_url("openai", format!("{base}/v1"));
    cfg.retry = RetryPolicy {
        max_attempts: 1,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    };
    store
        .builder()
        .models(cfg)
        .agents(vec![
            AgentSpec::new("lead", Role::Coordinator),
            AgentSpec::new("hand", Role::Worker).with_affinity(["lead"]),
        ])
        .build()
        .await
        .expect("runtime starts")
}

type SeenLog = Arc<Mutex<Vec<Seen>>>;

fn bodies(seen: &SeenLog) -> Vec<Value> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|s| s.body.clone())
        .collect()
}

both_stores! {
    async fn a_planned_sub_plan_runs_and_the_model_merges_it(store) {
        let (base, seen) = responder("/v1/chat/completions", |body| {
            if system(body).starts_with("You merge the results") {
                answer("Both topics are covered.")
            } else {
                plan_answer(json!([
                    {"id": "a", "tool": "test:echo", "inputs": {"topic": "rust"}},
                    {"id": "b", "tool": "test:echo", "inputs": {"after": "${tasks.a.outputs.topic}", "seed": "${tasks.seed.outputs.n}"}}
                ]))
            }
        }).await;
        let rt = runtime(&store, &base).await;
        let src = plan("name: p\ntasks:\n  - { id: seed, tool: test:echo, inputs: { n: 7 } }\n  - id: research\n    complexity: high\n    depends_on: [seed]\n    inputs: { topics: [rust, sql] }\n    decompose:\n      planner: true\n      goal: Cover each topic\n      merge: { kind: llm, instructions: Write one sentence. }\n  - { id: after, tool: test:echo, inputs: { said: \"${tasks.research.outputs.text}\" } }\n");
        let run = rt.submit(&src, Map::new()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        let get = |id: &str| out.tasks.iter().find(|t| t.id.as_str() == id).unwrap();
        assert_eq!(get("research.b").outputs.as_ref().unwrap(), &json!({"after": "rust", "seed": 7}));
        assert_eq!(get("research").outputs.as_ref().unwrap()["text"], json!("Both topics are covered."));
        assert_eq!(get("after").outputs.as_ref().unwrap()["said"], json!("Both topics are covered."));
        assert_eq!(get("research").agent.as_deref(), Some("lead"));
        // Two requests: the sub-plan (catalogue, goal, context, what it may use), the merge.
        let asked = bodies(&seen);
        assert_eq!(asked.len(), 2);
        let sys = system(&asked[0]);
        assert!(sys.contains("You are the planner of nofx") && sys.contains("`test:echo`") && sys.contains("`lead` (coordinator)"), "{sys}");
        let first = user(&asked[0]);
        assert!(first.contains("Goal: Cover each topic"), "{first}");
        assert!(first.contains("sub-plan of task `research`") && first.contains("At most 1000 tasks"), "{first}");
        assert!(first.contains("\"topics\":[\"rust\",\"sql\"]"), "the task's inputs are its context: {first}");
        assert!(first.contains("may use with `${tasks.ID.outputs.NAME}`: seed"), "{first}");
        assert!(system(&asked[1]).contains("Write one sentence."));
        let merged = last_message(&asked[1]);
        assert!(merged["content"].as_str().unwrap().contains("\"b\":{\"after\":\"rust\",\"seed\":7}"), "{merged}");
        let evs = events(&rt, run.id()).await;
        let d = evs.iter().find(|e| e.kind == EventType::TaskDecomposed).unwrap();
        assert_eq!(d.data["source"], json!("planner"));
        assert_eq!(d.data["subtasks"], json!(["research.a", "research.b"]));
        let m = evs.iter().find(|e| e.kind == EventType::TaskMerged).unwrap();
        assert_eq!((m.data["merge"].clone(), m.data["subtasks"].clone()), (json!("llm"), json!(2)));
        // The model calls are the task's, in usage.
        let usage = rt.store().model_calls(run.id()).await.unwrap();
        assert_eq!(usage.len(), 2);
        assert!(usage.iter().all(|u| u.task_id.as_deref() == Some("research") && u.agent.as_deref() == Some("lead")), "{usage:?}");
        rt.shutdown().await;
    }
}

both_stores! {
    async fn an_invalid_sub_plan_is_repaired_and_a_bad_one_fails_the_task(store) {
        let (base, seen) = responder("/v1/chat/completions", |body| {
            let n = body["messages"].as_array().unwrap().len();
            if user(body).contains("goal never works") {
                plan_answer(json!([{"id": "x", "tool": "nope"}]))
            } else if n <= 2 {
                plan_answer(json!([{"id": "x", "tool": "test:echo", "inputs": {"v": "${tasks.missing.outputs.v}"}}]))
            } else {
                plan_answer(json!([{"id": "x", "tool": "test:echo", "inputs": {"v": 1}}]))
            }
        }).await;
        let rt = runtime(&store, &base).await;
        let out = rt.submit(&plan("name: p\ntasks:\n  - id: t\n    decompose: { planner: true, goal: do it }\n"), Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        let asked = bodies(&seen);
        assert_eq!(asked.len(), 2);
        let repair = last_message(&asked[1])["content"].as_str().unwrap().to_string();
        assert!(repair.contains("task `t.x`: `${tasks.missing.outputs…}` refers to unknown task `missing`"), "{repair}");
        let out = rt.submit(&plan("name: p\ntasks:\n  - id: t\n    decompose: { planner: true, goal: goal never works }\n"), Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        let t = &out.tasks[0];
        assert!(t.error.as_deref().unwrap().contains("still invalid after 3 answer(s)") && t.error.as_deref().unwrap().contains("unknown tool `nope`"), "{:?}", t.error);
        assert_eq!(out.tasks.len(), 1, "nothing of a rejected sub-plan is stored");
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_replan_replaces_the_unfinished_part_and_keeps_finished_results(store) {
        let (base, seen) = responder("/v1/chat/completions", |body| {
            let ask = user(body);
            if ask.contains("Round 2") && !ask.contains("task `q`") {
                plan_answer(json!([{"id": "fix", "tool": "test:echo", "inputs": {"from": "${tasks.ok.outputs.v}"}}]))
            } else {
                plan_answer(json!([{"id": "again", "tool": "shell", "inputs": {"argv": ["sh", "-c", "exit 9"]}}]))
            }
        }).await;
        let rt = runtime(&store, &base).await;
        let src = |id: &str, max: u32| plan(&format!("name: p\ntasks:\n  - id: {id}\n    decompose:\n      replan: {{ max: {max} }}\n      subtasks:\n        - {{ id: ok, tool: test:echo, inputs: {{ v: 5 }} }}\n        - {{ id: bad, tool: shell, inputs: {{ argv: [sh, -c, 'exit 3'] }} }}\n        - {{ id: after, tool: test:echo, depends_on: [bad] }}\n"));
        let run = rt.submit(&src("p", 2), Map::new()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        let get = |out: &nofx::Outcome, id: &str| out.tasks.iter().find(|t| t.id.as_str() == id).unwrap().clone();
        assert_eq!(get(&out, "p").outputs.unwrap(), json!({"ok": {"v": 5}, "fix": {"from": 5}}));
        assert_eq!(get(&out, "p.bad").status, TaskStatus::Failed);
        assert_eq!(get(&out, "p.ok").attempts, 1, "a finished subtask keeps its result");
        let asked = bodies(&seen);
        assert_eq!(asked.len(), 1);
        let ask = user(&asked[0]);
        assert!(ask.contains("subtask `p.bad` failed: `sh` exited with code 3"), "{ask}");
        assert!(ask.contains("replace the unfinished subtasks (p.bad, p.after)"), "{ask}");
        assert!(ask.contains("\"ok\":{\"v\":5}"), "the results so far: {ask}");
        let evs = events(&rt, run.id()).await;
        let r = evs.iter().find(|e| e.kind == EventType::TaskReplanned).unwrap();
        assert_eq!(r.data["round"], json!(2));
        assert_eq!(r.data["replaced"], json!(["p.bad", "p.after"]));
        assert_eq!(r.data["subtasks"], json!(["p.fix"]));
        let rows = rt.store().decompositions(run.id()).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.round).collect::<Vec<_>>(), [1, 2]);
        // Runs out: round 2's subtask fails too and no round is left.
        let out = rt.submit(&src("q", 1), Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert_eq!(out.reason.as_deref(), Some("task `q` failed: subtask `q.again` failed: `sh` exited with code 9"), "the last reason");
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_subtask_that_repeats_its_ancestors_decomposition_is_a_delegation_cycle(store) {
        let (base, _seen) = responder("/v1/chat/completions", |_| {
            plan_answer(json!([{"id": "deeper", "decompose": {"planner": true, "goal": "Solve everything"}}]))
        }).await;
        let rt = runtime(&store, &base).await;
        let out = rt.submit(&plan("name: p\ntasks:\n  - id: top\n    decompose: { planner: true, goal: Solve everything }\n"), Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        let deeper = out.tasks.iter().find(|t| t.id.as_str() == "top.deeper").unwrap();
        assert_eq!(deeper.error.as_deref(), Some("delegation_cycle: `top.deeper` repeats the decomposition of its ancestor `top` (top -> top.deeper)"));
        rt.shutdown().await;
    }
}

#[cfg(feature = "cli")]
#[tokio::test]
async fn sigkill_after_the_decomposition_is_committed_never_decomposes_again() {
    use common::{find, wait_for};
    use std::process::Stdio;
    for store in [TestStore::sqlite().await, TestStore::postgres().await] {
        // The sub-plan: a task that blocks the first time it runs, then three that each
        // append one line to a counter file.
        let count = |n: usize| {
            json!({"id": format!("c{n}"), "tool": "shell", "depends_on": ["hold"],
            "inputs": {"argv": ["sh", "-c", format!("echo c{n} >> counter.txt")]}})
        };
        let tasks = json!([
            {"id": "hold", "tool": "shell", "inputs": {"argv": ["sh", "-c", "if [ -f held ]; then exit 0; fi; touch held; sleep 300"]}},
            count(1), count(2), count(3)
        ]);
        let (base, seen) =
            responder("/v1/chat/completions", move |_| plan_answer(tasks.clone())).await;
        let dir = store.dir.path().to_path_buf();
        let url = store.url.clone();
        let seen2 = seen.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::write(dir.join("split.yaml"), "name: split\ntasks:\n  - id: split\n    decompose: { planner: true, goal: count three times }\n").unwrap();
            let data = dir.join("data");
            let cmd = |args: &[&str]| {
                let mut c = common::nofx_cmd(&dir);
                c.args(["--data-dir", data.to_str().unwrap(), "--database-url", &url])
                    .args(args)
                    .env("OPENAI_API_KEY", "sk-test")
                    .env("OPENAI_BASE_URL", format!("{base}/v1"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                c
            };
            let mut child = cmd(&["run", "split.yaml"]).spawn().unwrap();
            wait_for(Duration::from_secs(60), || find(&data, "held").is_some());
            child.kill().unwrap(); // SIGKILL, with `split.hold` running
            child.wait().unwrap();
            assert_eq!(seen2.lock().unwrap().len(), 1);
            let out = cmd(&["resume"]).output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
            let counter = std::fs::read_to_string(find(&data, "counter.txt").unwrap()).unwrap();
            let mut lines: Vec<&str> = counter.lines().collect();
            lines.sort_unstable();
            assert_eq!(lines, ["c1", "c2", "c3"], "each subtask ran once");
        })
        .await
        .unwrap();
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "the provider saw no second decomposition request"
        );
        let s = nofx::store::Store::open(&store.url).await.unwrap();
        let run = s.runs(&[], 1).await.unwrap().remove(0);
        assert_eq!(run.status, RunStatus::Succeeded);
        assert_eq!(s.decompositions(run.id).await.unwrap().len(), 1);
    }
}
