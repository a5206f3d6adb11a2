//! A reasoning loop survives SIGKILL: a real `nofx run` is killed while its model is being
//! asked (after a turn is committed) and again while a shell call runs; on resume no
//! committed turn is asked again, no finished call runs again, and the interrupted shell call
//! (not idempotent) is reported to the model as uncertain, never repeated. In process, an
//! idempotent call interrupted by a shutdown runs again with the same idempotency key.
#![cfg(feature = "cli")]

mod common;

use common::llm::{conversation_len, openai_answer, openai_calls, responder, Reply, Seen};
use common::{find, wait_for, TestStore};
use nofx::tools::{describe, tool_fn, ToolOutput};
use nofx::{AgentSpec, Role, RunStatus};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn calls(id: &str, name: &str, args: Value) -> Reply {
    openai_calls(&[(id, name, args)], 100, 0)
}

fn answer(text: &str) -> Reply {
    openai_answer(text, 100, 0)
}

fn lines(dir: &Path, name: &str) -> usize {
    find(dir, name)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map_or(0, |t| t.lines().count())
}

fn shell(script: &str) -> Value {
    json!({"argv": ["sh", "-c", script]})
}

fn kill_twice_and_resume(store: &TestStore, base: &str, seen: &Arc<Mutex<Vec<Seen>>>) {
    let dir = store.dir.path();
    std::fs::create_dir_all(dir.join("agents")).unwrap();
    std::fs::write(
        dir.join("agents/analyst.toml"),
        "id = \"analyst\"\nrole = \"specialist\"\ncapabilities = [\"analysis\"]\ntools = [\"shell\"]\ninstructions = \"Use the shell.\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("reason.yaml"),
        "name: reason\ntasks:\n  - id: think\n    tool: agent\n    capabilities: [analysis]\n    inputs: { prompt: \"Count twice.\" }\n",
    )
    .unwrap();
    let data = dir.join("data");
    let cmd = |args: &[&str]| {
        let mut c = common::nofx_cmd(dir);
        c.args([
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            &store.url,
        ])
        .args(args)
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", format!("{base}/v1"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        c
    };
    let count = || seen.lock().unwrap().len();

    // 1. Turn 1 (a quick shell call) is committed and has run; turn 2 hangs at the provider.
    let mut child: Child = cmd(&["run", "reason.yaml"]).spawn().unwrap();
    wait_for(Duration::from_secs(60), || count() >= 2);
    assert_eq!(lines(&data, "first.txt"), 1);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // 2. Resumed: turn 2 is asked (it was never committed) and asks for a slow shell call;
    //    the process is killed while that call runs.
    let mut child = cmd(&["resume"]).spawn().unwrap();
    wait_for(Duration::from_secs(60), || lines(&data, "second.txt") >= 1);
    let pid: i32 = std::fs::read_to_string(find(&data, "second.pid").unwrap())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // The call's process group dies with the process that started it.
    wait_for(Duration::from_secs(20), || !common::alive(pid));

    // 3. Resumed again: the interrupted call is reported uncertain and the loop answers.
    let out = cmd(&["resume"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&data, "first.txt"), 1, "a finished call ran again");
    assert_eq!(
        lines(&data, "second.txt"),
        1,
        "the interrupted call ran again"
    );
}

#[tokio::test]
async fn sigkill_mid_loop_never_repeats_a_committed_turn_or_a_side_effect() {
    for store in [TestStore::sqlite().await, TestStore::postgres().await] {
        let hung = Arc::new(Mutex::new(false));
        let (base, seen) = responder("/v1/chat/completions", move |body| {
            match conversation_len(body) {
                1 => calls("c1", "shell", shell("echo one >> first.txt")),
                3 => {
                    let mut h = hung.lock().unwrap();
                    if *h {
                        calls(
                            "c2",
                            "shell",
                            shell("echo $$ > second.pid; echo two >> second.txt; sleep 300"),
                        )
                    } else {
                        *h = true;
                        let mut r = answer("never seen");
                        r.delay = Duration::from_secs(600);
                        r
                    }
                }
                _ => answer("counted"),
            }
        })
        .await;
        let s2 = seen.clone();
        let store = tokio::task::spawn_blocking(move || {
            kill_twice_and_resume(&store, &base, &s2);
            store
        })
        .await
        .unwrap();

        let seen = seen.lock().unwrap().clone();
        let sizes: Vec<usize> = seen.iter().map(|s| conversation_len(&s.body)).collect();
        // Turn 1 once; turn 2 twice (its first asking was never committed); turn 3 once.
        assert_eq!(sizes, [1, 3, 3, 5], "requests by conversation length");
        let last = common::llm::last_message(&seen[3].body);
        assert_eq!(last["tool_call_id"], "c2");
        let said = last["content"].as_str().unwrap();
        assert!(
            said.contains("interrupted") && said.contains("effect is unknown"),
            "{said}"
        );
        // The first call's result was given back from the journal, not run again.
        let first = &seen[3].body["messages"].as_array().unwrap();
        assert!(
            first.iter().any(|m| m["tool_call_id"] == "c1"
                && m["content"].as_str().unwrap().contains("\"exit_code\":0")),
            "{first:?}"
        );

        let s = nofx::store::Store::open(&store.url).await.unwrap();
        let runs = s.runs(&[], 10).await.unwrap();
        let run = &runs[0];
        assert_eq!(run.status, RunStatus::Succeeded);
        let t = s.transcript(run.id, "think").await.unwrap();
        assert_eq!(t.loops.len(), 1);
        let statuses: Vec<&str> = t.loops[0]
            .turns
            .iter()
            .flat_map(|t| t.tool_calls.iter().map(|c| c.status.as_str()))
            .collect();
        assert_eq!(statuses, ["succeeded", "uncertain"]);

        // The transcript from the command line: the library's document, and words.
        let out = common::nofx_cmd(store.dir.path())
            .args([
                "--database-url",
                &store.url,
                "runs",
                "transcript",
                &run.id.to_string(),
                "think",
                "--json",
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc, serde_json::to_value(&t).unwrap());
        let out = common::nofx_cmd(store.dir.path())
            .args([
                "--database-url",
                &store.url,
                "runs",
                "transcript",
                &run.id.to_string(),
                "think",
            ])
            .output()
            .unwrap();
        let words = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            words.contains("agent analyst")
                && words.contains("uncertain")
                && words.contains("answer: counted"),
            "{words}"
        );
        let out = common::nofx_cmd(store.dir.path())
            .args([
                "--database-url",
                &store.url,
                "runs",
                "transcript",
                &run.id.to_string(),
                "nope",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no task `nope`"));
    }
}

#[tokio::test]
async fn an_idempotent_call_cut_off_by_a_shutdown_runs_again_with_the_same_key() {
    let store = TestStore::sqlite().await;
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let k = keys.clone();
    // The first run of the call never ends; the second answers.
    let lookup = describe(
        tool_fn("kb:lookup", json!({"type": "object"}), move |ctx| {
            let k = k.clone();
            async move {
                let first = {
                    let mut k = k.lock().unwrap();
                    k.push(ctx.idempotency_key.clone());
                    k.len() == 1
                };
                if first {
                    std::future::pending::<()>().await;
                }
                Ok(ToolOutput::new().output("fact", "water is wet"))
            }
        }),
        "Looks a fact up.",
        true,
    );
    let (base, seen) = responder("/v1/chat/completions", |body| {
        match conversation_len(body) {
            1 => calls("k1", "kb_lookup", json!({"q": "water"})),
            _ => answer("water is wet"),
        }
    })
    .await;
    let agent = AgentSpec::new("analyst", Role::Specialist)
        .with_capabilities(["analysis"])
        .with_tools(["kb:lookup"]);
    let cfg = nofx::models::ModelsConfig::shipped()
        .api_key("openai", nofx::models::ApiKey::new("sk-test"))
        .base_url("openai", format!("{base}/v1"));
    let build = || {
        store
            .builder()
            .models(cfg.clone())
            .agents(vec![agent.clone()])
            .tool(lookup.clone())
            .build()
    };
    let src = common::plan(
        "name: r\ntasks:\n  - id: think\n    tool: agent\n    capabilities: [analysis]\n    inputs: { prompt: \"Look it up.\" }\n",
    );
    let rt = build().await.unwrap();
    let run = rt.submit(&src, Default::default()).await.unwrap();
    let id = run.id();
    let k2 = keys.clone();
    common::until(Duration::from_secs(30), || {
        let n = k2.lock().unwrap().len();
        async move { n == 1 }
    })
    .await;
    rt.shutdown().await;

    let rt = build().await.unwrap();
    let orphans = rt.resume_orphans().await.unwrap();
    assert_eq!(orphans.resumed, vec![id]);
    let out = rt.run(id).await.unwrap().wait().await.unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "the repeat keeps its idempotency key");
    // The model was asked twice: turn 1 once, then the answer.
    assert_eq!(seen.lock().unwrap().len(), 2);
    let evs = common::events(&rt, id).await;
    let called: Vec<&Value> = evs
        .iter()
        .filter(|e| e.kind == nofx::EventType::ToolCalled)
        .map(|e| &e.data["repeat"])
        .collect();
    assert_eq!(called, [&json!(false), &json!(true)]);
    rt.shutdown().await;
}
