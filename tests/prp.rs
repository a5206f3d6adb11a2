//! PRPs run through the library API on both stores: gates checked by the runtime after each
//! step, retries told what the gate said, rollback by policy (the workspace byte-identical
//! afterwards, rollback commands last first), preconditions that stop every step, protected
//! files an agent may not edit, and the report.

mod common;

use common::llm::{openai_answer, openai_calls, openai_text, server, Reply, Script};
use common::TestStore;
use nofx::models::{ApiKey, ModelsConfig, RetryPolicy};
use nofx::plan::Format;
use nofx::prp::{PrpSource, RollbackPolicy};
use nofx::runtime::PrpRun;
use nofx::{AgentSpec, EventType, Role, RunStatus, Runtime};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const KEY: &str = "sk-test-secret-key-0123456789";

async fn openai(replies: Vec<Reply>) -> (ModelsConfig, Script) {
    let (base, script) = server("/v1/chat/completions", replies).await;
    let mut cfg = ModelsConfig::shipped()
        .api_key("openai", ApiKey::new(KEY))
        .base_url("openai", format!("{base}/v1"));
    cfg.retry = RetryPolicy {
        max_attempts: 1,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
    };
    (cfg, script)
}

/// A tiny project: `lib.txt` and the test that judges it, `tests/check.sh`.
fn project(root: &Path) -> PathBuf {
    let p = root.join("project");
    std::fs::create_dir_all(p.join("tests")).unwrap();
    std::fs::write(p.join("lib.txt"), "hello\n").unwrap();
    std::fs::write(p.join("tests/check.sh"), "grep -q world lib.txt\n").unwrap();
    std::fs::write(p.join(".gitignore"), "target/\n").unwrap();
    p
}

/// Every file under `root` with its contents, sorted.
fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn prp(yaml: &str) -> PrpSource {
    PrpSource::parse(yaml, Format::Yaml, Some("test.yaml")).expect("the PRP parses")
}

async fn run_prp(
    rt: &Runtime,
    src: &PrpSource,
    dir: &Path,
    rollback: RollbackPolicy,
) -> (nofx::Outcome, Vec<nofx::Event>) {
    let how = PrpRun {
        path: Some(dir.to_path_buf()),
        rollback,
        ..PrpRun::default()
    };
    let run = rt.submit_prp(src, how).await.expect("the PRP runs");
    let outcome = run.wait().await.expect("the run ends");
    let events = common::events(rt, run.id()).await;
    (outcome, events)
}

fn of(events: &[nofx::Event], kind: EventType) -> Vec<&nofx::Event> {
    events.iter().filter(|e| e.kind == kind).collect()
}

const TWO_STEPS: &str = r#"
name: add-world
goal: lib.txt says hello world
context:
  examples:
    - { file: lib.txt, why: the file to change }
  validation_rules:
    tests: { kind: command, argv: [sh, tests/check.sh] }
implementation:
  steps:
    - id: one
      description: add a marker file
      tool: shell
      inputs: { argv: [sh, -c, "echo marker > one.txt && mkdir -p made/deep && echo x > made/deep/x"] }
      gates: [{ kind: command, argv: [test, -f, one.txt] }]
      rollback: { command: [sh, -c, "echo undo-one >> ../ledger"] }
    - id: two
      description: change the greeting, wrongly
      tool: shell
      inputs: { argv: [sh, -c, "echo hello there > lib.txt && rm tests/../.gitignore"] }
      gates: [tests]
      rollback: { command: [sh, -c, "echo undo-two >> ../ledger"] }
preconditions: [{ kind: command, argv: [test, -f, lib.txt] }]
postconditions: [tests]
success_criteria: [lib.txt says hello world]
protected: ["tests/**"]
confidence: { score: 7, reason: two small steps }
"#;

both_stores! {
    async fn rollback_all_puts_the_workspace_back_and_undoes_the_steps_last_first(store) {
        let dir = project(store.dir.path());
        let before = tree(&dir);
        let rt = store.runtime().await;
        let (outcome, events) = run_prp(&rt, &prp(TWO_STEPS), &dir, RollbackPolicy::All).await;
        assert_eq!(outcome.status, RunStatus::Failed);
        let reason = outcome.reason.clone().unwrap();
        assert!(reason.contains("task `two` failed: gate #1 (command)"), "{reason}");
        // The run worked on a copy: the project is untouched, and the copy is back as it was.
        assert_eq!(tree(&dir), before);
        let ws = PathBuf::from(&outcome.workspace);
        assert_eq!(tree(&ws), before, "byte-identical to before step one");
        // Each rollback command ran once, step two's first.
        let ledger = std::fs::read_to_string(ws.parent().unwrap().join("ledger")).unwrap();
        assert_eq!(ledger, "undo-two\nundo-one\n");
        let undone: Vec<&str> = of(&events, EventType::PrpStepRolledBack)
            .iter()
            .map(|e| e.data["step"].as_str().unwrap())
            .collect();
        assert_eq!(undone, ["two", "one"]);
        let report = rt.prp_report(outcome.id).await.unwrap();
        assert_eq!(report.steps.len(), 2);
        assert!(report.steps.iter().all(|s| s.rolled_back));
        assert!(!report.steps[1].gates[0].passed);
        assert_eq!(report.steps[0].files.as_ref().unwrap()["added"].as_array().unwrap().len(), 2);
        assert_eq!(report.confidence["predicted"]["score"], 7);
        assert_eq!(report.confidence["outcome"], "failed");
        rt.shutdown().await;
    }
}

both_stores! {
    async fn rollback_step_undoes_only_the_failed_step(store) {
        let dir = project(store.dir.path());
        let rt = store.runtime().await;
        let (outcome, events) = run_prp(&rt, &prp(TWO_STEPS), &dir, RollbackPolicy::Step).await;
        assert_eq!(outcome.status, RunStatus::Failed);
        let ws = PathBuf::from(&outcome.workspace);
        assert_eq!(std::fs::read_to_string(ws.join("lib.txt")).unwrap(), "hello\n");
        assert!(ws.join(".gitignore").is_file(), "step two's deletion is undone");
        assert!(ws.join("one.txt").is_file(), "step one's work stays");
        let ledger = std::fs::read_to_string(ws.parent().unwrap().join("ledger")).unwrap();
        assert_eq!(ledger, "undo-two\n");
        assert_eq!(of(&events, EventType::PrpStepRolledBack).len(), 1);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_failing_precondition_runs_no_step(store) {
        let dir = project(store.dir.path());
        let rt = store.runtime().await;
        let text = TWO_STEPS.replace("argv: [test, -f, lib.txt]", "argv: [test, -f, missing.txt]");
        let (outcome, events) = run_prp(&rt, &prp(&text), &dir, RollbackPolicy::All).await;
        assert_eq!(outcome.status, RunStatus::Failed);
        assert!(outcome.reason.unwrap().contains("task `preconditions` failed"));
        let failed = of(&events, EventType::PrpPreconditionFailed);
        assert_eq!(failed.len(), 1);
        assert!(failed[0].data["reason"].as_str().unwrap().contains("`test`"));
        let started: Vec<&str> = of(&events, EventType::TaskStarted)
            .iter()
            .map(|e| e.task_id.as_ref().unwrap().as_str())
            .collect();
        assert!(!started.contains(&"one") && !started.contains(&"two"), "{started:?}");
        assert!(rt.store().snapshots(outcome.id).await.unwrap().is_empty());
        assert!(of(&events, EventType::PrpStepRolledBack).is_empty());
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_succeeding_prp_skips_its_rollback_and_reports_what_changed(store) {
        let dir = project(store.dir.path());
        let rt = store.runtime().await;
        let text = TWO_STEPS.replace("echo hello there > lib.txt && rm tests/../.gitignore", "echo hello world > lib.txt");
        let (outcome, events) = run_prp(&rt, &prp(&text), &dir, RollbackPolicy::All).await;
        assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.reason);
        let rb = outcome.tasks.iter().find(|t| t.id.as_str() == "rollback").unwrap();
        assert_eq!(rb.status, nofx::TaskStatus::Skipped);
        assert!(of(&events, EventType::PrpStepRolledBack).is_empty());
        let post = outcome.tasks.iter().find(|t| t.id.as_str() == "postconditions").unwrap();
        let changed = &post.outputs.as_ref().unwrap()["changed"];
        assert_eq!(changed["modified"][0]["path"], "lib.txt");
        let report = rt.prp_report(outcome.id).await.unwrap();
        assert_eq!(report.confidence["outcome"], "succeeded in one pass");
        assert_eq!(report.totals["failed"], 0);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_codegen_retry_is_told_what_the_gate_said_and_passes(store) {
        let dir = project(store.dir.path());
        let bad = json!({"files": [{"path": "lib.txt", "content": "hello there\n"}]}).to_string();
        let good = json!({"files": [{"path": "lib.txt", "content": "hello world\n"}]}).to_string();
        let (cfg, script) = openai(vec![openai_text(&bad, 100, 20), openai_text(&good, 140, 20)]).await;
        let rt = store.builder().models(cfg).build().await.unwrap();
        let text = r#"
name: greet
goal: lib.txt greets the world
context:
  examples: [{ file: lib.txt, why: the file to fix }]
  gotchas: [keep the trailing newline]
implementation:
  steps:
    - id: write
      description: make lib.txt say hello world
      codegen: { prompt: "Rewrite lib.txt." }
      gates: [{ kind: command, argv: [sh, -c, "cat lib.txt; grep -q world lib.txt || { echo 'expected world in lib.txt' >&2; exit 3; }"] }]
      retry: { max: 1 }
protected: [tests]
"#;
        let (outcome, _) = run_prp(&rt, &prp(text), &dir, RollbackPolicy::Step).await;
        assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.reason);
        let step = outcome.tasks.iter().find(|t| t.id.as_str() == "write").unwrap();
        assert_eq!(step.attempts, 2);
        let seen = script.seen();
        assert_eq!(seen.len(), 2);
        let first = seen[0].body.to_string();
        assert!(first.contains("keep the trailing newline") && first.contains("hello\\n"), "context and the example's excerpt: {first}");
        let second = common::llm::last_message(&seen[1].body).to_string();
        assert!(second.contains("Exit code: 3"), "{second}");
        assert!(second.contains("expected world in lib.txt"), "the output tail: {second}");
        assert!(second.contains("hello there"), "stdout's tail: {second}");
        let report = rt.prp_report(outcome.id).await.unwrap();
        let s = &report.steps[0];
        assert_eq!(s.gates.len(), 2);
        assert!(!s.gates[0].passed && s.gates[1].passed);
        assert!(s.gates[0].output_tail.as_deref().unwrap().contains("expected world"));
        assert_eq!((s.input_tokens, s.output_tokens), (240, 40));
        rt.shutdown().await;
    }
}

both_stores! {
    async fn an_agent_that_edits_a_protected_test_fails_and_the_file_is_restored(store) {
        let dir = project(store.dir.path());
        let (cfg, _script) = openai(vec![
            openai_calls(&[("c1", "shell", json!({"argv": ["sh", "-c", "echo 'exit 0' > tests/check.sh; echo world >> lib.txt"]}))], 100, 0),
            openai_answer("done", 120, 0),
        ])
        .await;
        let coder = AgentSpec::new("coder", Role::Specialist)
            .with_capabilities(["coding"])
            .with_instructions("You change code.")
            .with_tools(["shell"]);
        let rt = store.builder().models(cfg).agents(vec![coder]).build().await.unwrap();
        let text = r#"
name: cheat
goal: make the test pass
context:
  validation_rules:
    tests: { kind: command, argv: [sh, tests/check.sh] }
implementation:
  steps:
    - id: fix
      description: make tests/check.sh pass
      agent: { prompt: "Make the test pass." }
      capabilities: [coding]
      gates: [tests]
      retry: { max: 2 }
protected: ["tests/**"]
"#;
        let (outcome, events) = run_prp(&rt, &prp(text), &dir, RollbackPolicy::None).await;
        assert_eq!(outcome.status, RunStatus::Failed);
        let step = outcome.tasks.iter().find(|t| t.id.as_str() == "fix").unwrap();
        assert_eq!(step.attempts, 1, "an integrity violation is not retried");
        assert!(step.error.as_deref().unwrap().contains("tests/check.sh"), "{:?}", step.error);
        let v = of(&events, EventType::PrpIntegrityViolation);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].data["paths"], json!(["tests/check.sh"]));
        assert!(of(&events, EventType::GatePassed).iter().all(|e| e.task_id.as_ref().unwrap().as_str() != "fix"), "its gates never ran");
        let ws = PathBuf::from(&outcome.workspace);
        assert_eq!(std::fs::read_to_string(ws.join("tests/check.sh")).unwrap(), "grep -q world lib.txt\n");
        assert_eq!(std::fs::read_to_string(ws.join("lib.txt")).unwrap(), "hello\n", "the whole step is undone");
        let failed = of(&events, EventType::TaskFailed);
        assert_eq!(failed[0].data["errorType"], Value::from("integrity"));
        rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_problem_of_a_prp_is_named_at_its_key_path() {
    let store = TestStore::sqlite().await;
    let dir = project(store.dir.path());
    let rt = store.runtime().await;
    let text = r#"
name: broken
goal: x
context:
  examples: [{ file: nowhere.rs, why: gone }, { file: ../etc/passwd, why: out }]
  validation_rules:
    judge: { kind: llm_judge, rubric: nice }
implementation:
  steps:
    - id: a
      description: only judged
      tool: nosuch:tool
      gates: [judge]
    - id: b
      description: b
      tool: shell
      inputs: { argv: 3 }
      depends_on: [c]
      gates: [{ kind: command, argv: ["true"] }, undefined]
    - id: c
      description: c
      tool: test:echo
      depends_on: [b]
      gates: [{ kind: pattern, output: x, regex: "(" }]
protected: ["/abs"]
"#;
    let err = rt
        .check_prp(&prp(text), Some(&dir), RollbackPolicy::Step)
        .unwrap_err();
    let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "context.examples[0].file",
        "context.examples[1].file",
        "implementation.steps[0].gates",
        "implementation.steps[1].gates[1]",
        "implementation.steps",
        "protected[0]",
    ] {
        assert!(paths.contains(&want), "{want} in {paths:?}\n{err}");
    }
    assert!(err.problems.iter().all(|p| p.line.is_some()), "{err}");
    // Shape problems fixed, the runtime's check names the steps' tools and gates.
    let text = r#"
name: runtime-checked
goal: x
implementation:
  steps:
    - id: a
      description: a
      tool: nosuch:tool
      gates: [{ kind: command, argv: ["true"] }]
    - id: b
      description: b
      tool: shell
      inputs: { argv: 3 }
      gates: [{ kind: pattern, output: x, regex: "(" }]
"#;
    let err = rt
        .check_prp(&prp(text), Some(&dir), RollbackPolicy::Step)
        .unwrap_err();
    let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "implementation.steps[0].tool",
        "implementation.steps[1].inputs.argv",
        "implementation.steps[1].gates[0]",
    ] {
        assert!(paths.contains(&want), "{want} in {paths:?}\n{err}");
    }
    // Nothing was stored.
    assert!(rt.store().runs(&[], 10).await.unwrap().is_empty());
    rt.shutdown().await;
}

/// `nofx prp run` killed (SIGKILL) while its rollback runs step one's command: `nofx resume`
/// finishes the rollback, undoing each step exactly once.
#[cfg(feature = "cli")]
fn kill_during_rollback(store: &TestStore) {
    use std::process::Stdio;
    let root = store.dir.path();
    let dir = project(root);
    let before = tree(&dir);
    let data = root.join("data");
    // Step one's undo says it started, then waits out the kill; run again, it ends.
    let text = TWO_STEPS.replace(
        r#"rollback: { command: [sh, -c, "echo undo-one >> ../ledger"] }"#,
        r#"rollback: { command: [sh, -c, "if [ -f ../../../killed ]; then echo end-one >> ../ledger; else echo start-one >> ../ledger; sleep 30; fi"] }"#,
    );
    std::fs::write(root.join("prp.yaml"), text).unwrap();
    let cmd = |args: &[&str]| {
        let mut c = common::nofx_cmd(root);
        c.args([
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            &store.url,
        ])
        .args(args);
        c
    };
    let mut child = cmd(&[
        "prp",
        "run",
        "prp.yaml",
        "--path",
        dir.to_str().unwrap(),
        "--rollback",
        "all",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let ledger = || common::find(&data, "ledger").and_then(|p| std::fs::read_to_string(p).ok());
    common::wait_for(Duration::from_secs(60), || {
        ledger().is_some_and(|l| l.contains("start-one"))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // `killed` sits beside the data directory: ../../../ from the workspace.
    std::fs::write(data.join("killed"), "").unwrap();
    let out = cmd(&["resume"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the resumed run fails as before: {err}"
    );
    assert_eq!(ledger().unwrap(), "undo-two\nstart-one\nend-one\n", "{err}");
    assert!(
        common::find(&data, "one.txt").is_none(),
        "step one's file is gone"
    );
    let check = common::find(&data, "check.sh").unwrap();
    let workspace = check.parent().unwrap().parent().unwrap();
    assert_eq!(tree(workspace), before, "byte-identical to before step one");
}

#[cfg(feature = "cli")]
both_stores! {
    async fn a_rollback_killed_midway_finishes_once_on_resume(store) {
        let store = tokio::task::spawn_blocking(move || {
            kill_during_rollback(&store);
            store
        })
        .await
        .unwrap();
        // Each step was undone once.
        let rt = store.runtime().await;
        let runs = rt.store().runs(&[], 10).await.unwrap();
        let events = common::events(&rt, runs[0].id).await;
        let undone: Vec<&str> = of(&events, EventType::PrpStepRolledBack)
            .iter()
            .map(|e| e.data["step"].as_str().unwrap())
            .collect();
        assert_eq!(undone, ["two", "one"]);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn generate_sends_the_problems_back_and_keeps_every_call_as_usage(store) {
        let dir = project(store.dir.path());
        // The first PRP names a rule that does not exist and gives no confidence.
        let invalid = json!({
            "name": "greet", "goal": "lib.txt greets the world",
            "implementation": {"steps": [{"id": "write", "description": "fix lib.txt", "codegen": {}, "gates": ["tests"]}]}
        });
        let valid = json!({
            "name": "greet", "goal": "lib.txt greets the world",
            "context": {"examples": [{"file": "lib.txt", "why": "the file to fix"}],
                        "validation_rules": {"tests": {"kind": "command", "argv": ["sh", "tests/check.sh"]}}},
            "implementation": {"steps": [{"id": "write", "description": "fix lib.txt", "codegen": {}, "gates": ["tests"]}]},
            "protected": ["tests/**"],
            "confidence": {"score": 8, "reason": "one small file"}
        });
        let (cfg, script) = openai(vec![
            openai_text(&invalid.to_string(), 900, 60),
            openai_text(&format!("```json\n{valid}\n```"), 1200, 80),
        ])
        .await;
        let rt = store.builder().models(cfg).build().await.unwrap();
        let initial = "## FEATURE\nMake lib.txt say hello world.\n## EXAMPLES\nlib.txt and tests/check.sh\n## DOCUMENTATION\nnone\n## OTHER CONSIDERATIONS\nkeep the newline\n";
        let run = rt
            .generate_prp(nofx::runtime::PrpFrom::Initial(initial.into()), Some(dir.clone()), Default::default())
            .await
            .unwrap();
        let outcome = run.wait().await.unwrap();
        assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.reason);
        let made = outcome.tasks[0].outputs.clone().unwrap();
        assert_eq!(made["rounds"], 2);
        assert_eq!(made["confidence"]["score"], 8);
        assert_eq!(made["prp"]["protected"], json!(["tests/**"]));
        let seen = script.seen();
        assert_eq!(seen.len(), 2);
        let first = seen[0].body.to_string();
        assert!(first.contains("keep the newline") && first.contains("grep -q world lib.txt"), "the INITIAL file and the files it names: {first}");
        let repair = common::llm::last_message(&seen[1].body).to_string();
        assert!(repair.contains("implementation.steps[0].gates[0]") && repair.contains("`tests`"), "{repair}");
        assert!(repair.contains("confidence"), "{repair}");
        // Both calls are usage rows of the generating run.
        let calls = rt.store().model_calls(run.id()).await.unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls.iter().map(|c| c.input_tokens).sum::<i64>(), 2100);
        // The accepted PRP is stored with its confidence, and it runs as written.
        let prp: nofx::prp::Prp = serde_json::from_value(made["prp"].clone()).unwrap();
        let row = rt.store_prp(&prp, &outcome.project, Some(run.id())).await.unwrap();
        let back = rt.store().prp(&outcome.project, &row.id).await.unwrap().unwrap();
        assert_eq!((back.confidence, back.from_run), (Some(8), Some(run.id())));
        let src = PrpSource::parse(&serde_json::to_string(&back.prp).unwrap(), Format::Json, None).unwrap();
        rt.check_prp(&src, Some(&dir), RollbackPolicy::Step).unwrap();
        rt.shutdown().await;
    }
}

#[cfg(feature = "server")]
async fn http(
    method: reqwest::Method,
    url: String,
    key: &str,
    ctype: &str,
    body: String,
) -> (reqwest::StatusCode, Value) {
    let r = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(key)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[cfg(feature = "server")]
both_stores! {
    async fn prps_are_stored_executed_and_reported_over_http(store) {
        use reqwest::{Method, StatusCode};
        let dir = project(store.dir.path());
        let rt = store.runtime().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(nofx::api::serve(rt.clone(), Default::default(), listener, async {
            let _ = rx.await;
        }));
        let key = rt.store().create_key("acme", None, &nofx::store::Scope::ALL).await.unwrap().1;
        let other = rt.store().create_key("other", None, &nofx::store::Scope::ALL).await.unwrap().1;
        let yaml = "application/yaml";
        // A PRP with problems: 422, each at its key path; nothing stored.
        let broken = TWO_STEPS.replace("gates: [tests]", "gates: [nosuch]");
        let (s, e) = http(Method::POST, format!("{base}/prps"), &key, yaml, broken).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["code"], "invalid_prp");
        assert_eq!(e["error"]["problems"][0]["path"], "implementation.steps[1].gates[0]");
        assert!(e["error"]["problems"][0]["line"].is_u64(), "{e}");
        // Stored, read back, and invisible to another project.
        let (s, stored) = http(Method::POST, format!("{base}/prps"), &key, yaml, TWO_STEPS.into()).await;
        assert_eq!(s, StatusCode::CREATED, "{stored}");
        let id = stored["id"].as_str().unwrap().to_string();
        assert_eq!(stored["confidence"], 7);
        let (s, got) = http(Method::GET, format!("{base}/prps/{id}"), &key, yaml, String::new()).await;
        assert_eq!((s, got["prp"]["name"].clone()), (StatusCode::OK, json!("add-world")));
        let (s, _) = http(Method::GET, format!("{base}/prps/{id}"), &other, yaml, String::new()).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // Executed on a directory of the server, rolled back, reported.
        let body = json!({"path": dir, "rollback": "all"}).to_string();
        let (s, run) = http(Method::POST, format!("{base}/prps/{id}/execute"), &key, "application/json", body).await;
        assert_eq!(s, StatusCode::CREATED, "{run}");
        let run_id: nofx::RunId = run["id"].as_str().unwrap().parse().unwrap();
        let outcome = rt.run(run_id).await.unwrap().wait().await.unwrap();
        assert_eq!(outcome.status, RunStatus::Failed);
        let (s, report) = http(Method::GET, format!("{base}/runs/{run_id}/report"), &key, yaml, String::new()).await;
        assert_eq!(s, StatusCode::OK, "{report}");
        assert_eq!(report["rollback"], "all");
        assert_eq!(report["steps"][1]["rolledBack"], true);
        assert_eq!(report["totals"]["rolledBack"], 2);
        let (s, _) = http(Method::GET, format!("{base}/runs/{run_id}/report"), &other, yaml, String::new()).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // Bad bodies are 400 or 422, never a run.
        let (s, _) = http(Method::POST, format!("{base}/prps/{id}/execute"), &key, "application/json", json!({"rollback": "some"}).to_string()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = http(Method::POST, format!("{base}/prps/{id}/execute"), &key, "application/json", json!({"path": "relative/dir"}).to_string()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let _ = tx.send(());
        rt.shutdown().await;
    }
}

both_stores! {
    async fn the_shipped_example_prp_adds_its_function_on_the_second_attempt(store) {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prps");
        let greeter = examples.join("greeter");
        let before = tree(&greeter);
        let greet = std::fs::read_to_string(greeter.join("greet.sh")).unwrap();
        let wrong = format!("{greet}\n# farewell NAME: prints \"goodbye, NAME\".\nfarewell() {{\n    echo \"bye, $1\"\n}}\n");
        let right = wrong.replace("echo \"bye, $1\"", "echo \"goodbye, $1\"");
        let file = |content: &str| json!({"files": [{"path": "greet.sh", "content": content}]}).to_string();
        let (cfg, script) = openai(vec![openai_text(&file(&wrong), 700, 90), openai_text(&file(&right), 900, 90)]).await;
        let rt = store.builder().models(cfg).build().await.unwrap();
        let text = std::fs::read_to_string(examples.join("add-farewell.yaml")).unwrap();
        let src = PrpSource::parse(&text, Format::Yaml, Some("add-farewell.yaml")).unwrap();
        let (outcome, _) = run_prp(&rt, &src, &greeter, RollbackPolicy::Step).await;
        assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.reason);
        let second = common::llm::last_message(&script.seen()[1].body).to_string();
        assert!(second.contains("FAIL farewell: expected 'goodbye, ada', got 'bye, ada'"), "{second}");
        let ws = PathBuf::from(&outcome.workspace);
        assert_eq!(std::fs::read_to_string(ws.join("greet.sh")).unwrap(), right);
        assert_eq!(tree(&greeter), before, "the example project itself is untouched");
        let report = rt.prp_report(outcome.id).await.unwrap();
        assert_eq!(report.steps[0].attempts, 2);
        assert_eq!(report.confidence["outcome"], "succeeded after retries");
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_protected_file_changed_by_a_failing_gate_is_put_back_even_without_rollback(store) {
        let dir = project(store.dir.path());
        let rt = store.runtime().await;
        let text = r#"
name: sneaky-gate
goal: x
implementation:
  steps:
    - id: write
      description: write a file
      tool: shell
      inputs: { argv: [sh, -c, "echo new > new.txt"] }
      gates: [{ kind: command, argv: [sh, -c, "echo 'exit 0' > tests/check.sh; exit 1"] }]
protected: ["tests/**"]
"#;
        let (outcome, events) = run_prp(&rt, &prp(text), &dir, RollbackPolicy::None).await;
        assert_eq!(outcome.status, RunStatus::Failed);
        let v = of(&events, EventType::PrpIntegrityViolation);
        assert_eq!(v.len(), 1, "{events:#?}");
        assert_eq!(v[0].task_id.as_ref().unwrap().as_str(), "rollback");
        let ws = PathBuf::from(&outcome.workspace);
        assert_eq!(std::fs::read_to_string(ws.join("tests/check.sh")).unwrap(), "grep -q world lib.txt\n");
        rt.shutdown().await;
    }
}

/// The tour: `nofx gather` answers questions about a project, `nofx prp generate --from-run`
/// turns its answers and analysis into a PRP (a child run of the gathering run), and the
/// PRP validates for that project.
#[cfg(feature = "cli")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gathering_run_becomes_a_prp() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().to_path_buf();
    let proj = project(&d);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(d.join("templates")).unwrap();
    std::fs::copy(
        repo.join("templates/small-change.yaml"),
        d.join("templates/small-change.yaml"),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("examples/models")).unwrap();
    std::fs::copy(
        repo.join("examples/models/small-change.yaml"),
        d.join("examples/models/small-change.yaml"),
    )
    .unwrap();
    std::fs::copy(
        repo.join("examples/questionnaires/small-change.yaml"),
        d.join("q.yaml"),
    )
    .unwrap();
    std::fs::write(d.join("a.yaml"), "change: Make lib.txt greet the world\nkind: feature\nlanguage: sh\ntest_command: sh tests/check.sh\n").unwrap();
    let valid = json!({
        "name": "greet", "goal": "lib.txt greets the world",
        "context": {"examples": [{"file": "lib.txt", "why": "the file to fix"}],
                    "validation_rules": {"tests": {"kind": "command", "argv": ["sh", "tests/check.sh"]}}},
        "implementation": {"steps": [{"id": "write", "description": "fix lib.txt", "tool": "shell",
                                       "inputs": {"argv": ["sh", "-c", "echo hello world > lib.txt"]}, "gates": ["tests"]}]},
        "protected": ["tests/**"],
        "confidence": {"score": 9, "reason": "one line"}
    });
    let (base, script) = server(
        "/v1/chat/completions",
        vec![openai_text(&valid.to_string(), 800, 100)],
    )
    .await;
    let cmd = move |args: Vec<String>| {
        let mut c = common::nofx_cmd(&d);
        c.env("OPENAI_API_KEY", KEY)
            .env("OPENAI_BASE_URL", format!("{base}/v1"))
            .args(args);
        c.output().unwrap()
    };
    let args = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let proj_s = proj.display().to_string();
    let gather = {
        let (cmd, a) = (
            cmd.clone(),
            args(&["gather", "q.yaml", "--path", &proj_s, "--answers", "a.yaml"]),
        );
        tokio::task::spawn_blocking(move || cmd(a)).await.unwrap()
    };
    let err = String::from_utf8_lossy(&gather.stderr).to_string();
    assert_eq!(gather.status.code(), Some(0), "{err}");
    let g = err
        .split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .unwrap()
        .to_string();
    let generate = {
        let (cmd, a) = (
            cmd.clone(),
            args(&["prp", "generate", "--from-run", &g, "-o", "prp.yaml"]),
        );
        tokio::task::spawn_blocking(move || cmd(a)).await.unwrap()
    };
    let err = String::from_utf8_lossy(&generate.stderr).to_string();
    assert_eq!(generate.status.code(), Some(0), "{err}");
    assert!(err.contains("confidence 9/10 (one line)"), "{err}");
    let asked = script.seen()[0].body.to_string();
    assert!(
        asked.contains("Make lib.txt greet the world"),
        "the answers: {asked}"
    );
    assert!(asked.contains("test_command"), "the analysis: {asked}");
    assert!(
        asked.contains("grep -q world lib.txt") || asked.contains("lib.txt"),
        "{asked}"
    );
    let validate = {
        let a = args(&["prp", "validate", "prp.yaml", "--path", &proj_s]);
        tokio::task::spawn_blocking(move || cmd(a)).await.unwrap()
    };
    assert_eq!(
        validate.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_needs_a_clean_git_tree_and_rolls_back_in_the_directory_itself() {
    let store = TestStore::sqlite().await;
    let dir = project(store.dir.path());
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let rt = store.runtime().await;
    let how = |in_place| PrpRun {
        path: Some(dir.clone()),
        in_place,
        rollback: RollbackPolicy::All,
        ..PrpRun::default()
    };
    // Not a git tree, then a dirty one: refused, nothing stored.
    let e = rt.submit_prp(&prp(TWO_STEPS), how(true)).await.unwrap_err();
    assert!(e.to_string().contains("not in a git work tree"), "{e}");
    git(&["init", "-q"]);
    let e = rt.submit_prp(&prp(TWO_STEPS), how(true)).await.unwrap_err();
    assert!(e.to_string().contains("uncommitted changes"), "{e}");
    assert!(rt.store().runs(&[], 10).await.unwrap().is_empty());
    git(&["add", "-A"]);
    git(&["commit", "-qm", "start"]);
    let before = tree(&dir);
    let run = rt.submit_prp(&prp(TWO_STEPS), how(true)).await.unwrap();
    let outcome = run.wait().await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failed);
    assert_eq!(
        std::fs::canonicalize(&outcome.workspace).unwrap(),
        std::fs::canonicalize(&dir).unwrap()
    );
    // Rolled back in place: the tree (git's own files included) is as it was.
    assert_eq!(tree(&dir), before);
    rt.shutdown().await;
}
