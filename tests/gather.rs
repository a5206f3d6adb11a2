//! Requirements gathering: a questionnaire becomes a gathering run whose questions are
//! answered in a real terminal (a pseudo-terminal), from a file, or over HTTP; its codebase
//! analysis feeds smart defaults; its last task makes the plan, which runs as a child run.
#![cfg(feature = "cli")]

mod common;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A questionnaire with every type, an analysis phase and a template of test:echo tasks.
const SURVEY: &str = r#"name: survey
description: every type
phases:
  - id: basics
    questions:
      - { id: db, text: Which database?, type: select, options: [postgres, sqlite], default: sqlite }
      - { id: features, text: Which features?, type: multiselect, options: [auth, billing, search] }
      - { id: ci, text: Set up CI?, type: boolean }
      - { id: workers, text: How many workers?, type: number, validate: { min: 1, max: 8 } }
      - { id: owner, text: Who owns it?, type: text, default: nobody }
  - id: scan
    tool: repo:analyze
    inputs: { path: . }
  - id: tech
    questions:
      - { id: lang, text: Main language?, type: text, smart_default: "${tasks.scan.outputs.language}" }
plan:
  template: setup
  inputs:
    db: "${answers.db}"
    workers: "${answers.workers}"
    lang: "${answers.lang}"
"#;

const TEMPLATE: &str = r#"id: setup
name: Setup
description: echoes what it would set up
plan:
  name: setup
  inputs:
    db: { type: string }
    workers: { type: number }
    lang: { type: string }
  tasks:
    - { id: configure, tool: test:echo, inputs: { db: "${inputs.db}", workers: "${inputs.workers}", lang: "${inputs.lang}" } }
"#;

/// A data directory with the questionnaire, a template and a small Rust repository.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("survey.yaml"), SURVEY).unwrap();
    std::fs::create_dir_all(d.join("templates")).unwrap();
    std::fs::write(d.join("templates/setup.yaml"), TEMPLATE).unwrap();
    std::fs::create_dir_all(d.join("repo/src")).unwrap();
    std::fs::write(d.join("repo/Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
    std::fs::write(d.join("repo/src/main.rs"), "fn main() {}\n").unwrap();
    dir
}

/// Reads what the terminal shows until `want` appears (or fails after 30 s).
fn expect(master: &mut std::fs::File, seen: &mut String, want: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        assert!(
            Instant::now() < end,
            "never saw {want:?}; the terminal shows:\n{seen}"
        );
        match master.read(&mut buf) {
            Ok(0) => panic!("the terminal closed before {want:?}:\n{seen}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the terminal: {e}; it shows:\n{seen}"),
        }
    }
    // What comes next is after this.
    let at = seen.find(want).unwrap() + want.len();
    seen.drain(..at);
}

#[test]
fn gather_prompts_in_a_terminal_by_type_re_prompts_a_bad_answer_and_runs_the_plan() {
    let dir = setup();
    let d = dir.path();
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave: OwnedFd = pty.slave;
    let child = common::nofx_cmd(d)
        .args(["gather", "survey.yaml", "--path", "repo", "--run", "--json"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let mut seen = String::new();
    let say = |master: &mut std::fs::File, line: &str| {
        master.write_all(format!("{line}\n").as_bytes()).unwrap();
    };
    // A list to pick from, with the default shown: a bad pick is refused, then the number.
    expect(&mut master, &mut seen, "2) sqlite");
    expect(&mut master, &mut seen, "[default: sqlite]");
    say(&mut master, "7");
    expect(
        &mut master,
        &mut seen,
        "question `db`: option: `7` is not one of: postgres, sqlite",
    );
    expect(&mut master, &mut seen, "? Which database?");
    say(&mut master, "1");
    // Checkboxes.
    expect(&mut master, &mut seen, "[ ] 3) search");
    say(&mut master, "1,3");
    // y/n.
    expect(&mut master, &mut seen, "Set up CI? (y/n)");
    say(&mut master, "maybe");
    expect(&mut master, &mut seen, "expected yes or no");
    say(&mut master, "y");
    // A number out of range, then in range.
    expect(&mut master, &mut seen, "How many workers? (a number)");
    say(&mut master, "12");
    expect(&mut master, &mut seen, "must be at most 8");
    say(&mut master, "4");
    // "I don't know" takes the default.
    expect(&mut master, &mut seen, "Who owns it?");
    say(&mut master, "?");
    // The analysis suggests the language; an empty line takes it.
    expect(&mut master, &mut seen, "Main language? [suggested: rust]");
    say(&mut master, "");
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    let _ = master.read_to_string(&mut rest);
    assert_eq!(out.status.code(), Some(0), "{seen}{rest}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The plan, then the child run's document (--json).
    let child_run: Value = serde_json::from_str(
        stdout
            .trim()
            .rsplit_once("\n{")
            .map(|(_, r)| format!("{{{r}"))
            .unwrap()
            .as_str(),
    )
    .unwrap();
    assert_eq!(child_run["status"], "succeeded", "{stdout}");
    assert_eq!(
        child_run["tasks"][0]["outputs"],
        json!({"db": "postgres", "workers": 4, "lang": "rust"})
    );
    let gathering = child_run["parentRunId"].as_str().unwrap().to_string();
    assert!(child_run["checkpointId"].is_null());
    let out = common::nofx_out(d, &["questions", "ls", &gathering, "--json"]);
    let qs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let answer = |id: &str| {
        qs["questions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["question"]["id"] == id)
            .unwrap()["answer"]
            .clone()
    };
    assert_eq!(answer("features")["value"], json!(["auth", "search"]));
    assert_eq!(answer("ci")["value"], true);
    assert_eq!(
        (
            answer("owner")["value"].clone(),
            answer("owner")["source"].clone()
        ),
        (json!("nobody"), json!("default"))
    );
    assert_eq!(answer("lang")["source"], "smart_default");
    // The answers and the plan are artifacts of the gathering run.
    let out = common::nofx_out(d, &["runs", "artifacts", &gathering, "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("answers.json") && text.contains("plan.json"),
        "{text}"
    );
}

#[test]
fn gather_answers_from_a_file_waits_for_what_it_leaves_out_and_refuses_bad_questionnaires() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(
        d.join("answers.yaml"),
        "db: postgres\nfeatures: [billing]\nworkers: 3\nlang: { idk: true }\n",
    )
    .unwrap();
    // `ci` is required, has no default and is not in the file: it waits for an answer from
    // another process.
    let child = common::nofx_cmd(d)
        .args([
            "gather",
            "survey.yaml",
            "--path",
            "repo",
            "--answers",
            "answers.yaml",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut run = String::new();
    common::wait_for(Duration::from_secs(30), || {
        let out = common::nofx_out(d, &["questions", "ls", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        match v["questions"].as_array().and_then(|q| q.first()) {
            Some(q) if q["question"]["id"] == "ci" => {
                run = q["runId"].as_str().unwrap().to_string();
                true
            }
            _ => false,
        }
    });
    let out = common::nofx_out(d, &["answer", &run, "ci", "no"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("db = postgres"), "{err}");
    assert!(
        err.contains("owner = nobody (default)"),
        "what the file leaves out takes its default: {err}"
    );
    assert!(err.contains("waiting for ci: Set up CI?"), "{err}");
    assert!(err.contains("lang = rust (smart_default)"), "{err}");
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["name"], "setup");
    assert_eq!(
        plan["tasks"][0]["inputs"],
        json!({"db": "postgres", "workers": 3, "lang": "rust"})
    );

    // Load errors name the file, the line and the question; exit 2, nothing stored.
    std::fs::write(
        d.join("bad.yaml"),
        "name: bad\nphases:\n  - id: one\n    questions:\n      - { id: a, text: A?, type: select, options: [x] }\n      - { id: b, text: B?, type: text, depends_on: { question: zz, value: 1 } }\nplan: { goal: go }\n",
    )
    .unwrap();
    let out = common::nofx_out(d, &["gather", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:5: question `a`: a select question needs at least 2 options"),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:6: question `b`: `depends_on` names no question `zz`"),
        "{err}"
    );
    std::fs::write(d.join("wrong.yaml"), "zz: 1\n").unwrap();
    let out = common::nofx_out(d, &["gather", "survey.yaml", "--answers", "wrong.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("asks no question `zz`"));
}

/// A `nofx serve` on `dir`; its base URL.
fn serve(dir: &Path) -> (std::process::Child, String) {
    common::serve_with(common::nofx_cmd(dir).args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--grace",
        "0",
    ]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_gather_starts_a_gathering_run_answered_over_http() {
    let dir = setup();
    let d = dir.path().to_path_buf();
    let key = |scope: &str| {
        let out = common::nofx_out(
            &d,
            &["keys", "create", "--project", "acme", "--scope", scope],
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap()
            .to_string()
    };
    let (submit, shell) = (key("submit"), key("submit,shell"));
    let (mut node, base) = tokio::task::spawn_blocking({
        let d = d.clone();
        move || serve(&d)
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let post = |key: String, path: &'static str, body: Value| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http
                .post(format!("{base}{path}"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    // Problems are listed with their line and question; nothing is stored.
    let (st, e) = post(submit.clone(), "/gather", json!({"questionnaire": "name: x\nphases:\n  - id: p\n    questions:\n      - { id: q, text: Q?, type: select, options: [a] }\nplan: { goal: g }\n"})).await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["error"]["code"], "invalid_questionnaire");
    assert_eq!(e["error"]["problems"][0]["line"], 5);
    assert_eq!(e["error"]["problems"][0]["at"], "question `q`");
    // A directory of the server needs the `shell` scope.
    let repo = d.join("repo").display().to_string();
    let (st, _) = post(
        submit.clone(),
        "/gather",
        json!({"questionnaire": SURVEY, "path": repo}),
    )
    .await;
    assert_eq!(st, 403);
    let answers = json!({"db": "sqlite", "features": ["auth"], "workers": 2, "owner": {"idk": true}, "lang": {"idk": true}});
    let (st, run) = post(
        shell.clone(),
        "/gather",
        json!({"questionnaire": SURVEY, "path": repo, "answers": answers}),
    )
    .await;
    assert_eq!(st, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    // `ci` was not given: it waits; answered over HTTP, the run goes on.
    let pending = |path: String| {
        let (http, base, key) = (http.clone(), base.clone(), shell.clone());
        async move {
            let r = http
                .get(format!("{base}{path}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["questions"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let mut waiting = Vec::new();
    for _ in 0..400 {
        waiting = pending(format!("/runs/{id}/questions?status=pending")).await;
        if !waiting.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ids: Vec<&str> = waiting
        .iter()
        .map(|q| q["question"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ci"]);
    let answered = pending(format!("/runs/{id}/questions?status=answered")).await;
    let db = answered
        .iter()
        .find(|q| q["question"]["id"] == "db")
        .unwrap();
    assert!(
        db["answer"]["answered_by"]
            .as_str()
            .unwrap()
            .starts_with("key:"),
        "{db}"
    );
    let r = http
        .post(format!("{base}/runs/{id}/questions/ci/answer"))
        .bearer_auth(&shell)
        .json(&json!({"value": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The gathering run ends; its `plan` task holds the plan.
    let mut doc = Value::Null;
    for _ in 0..400 {
        let r = http
            .get(format!("{base}/runs/{id}"))
            .bearer_auth(&shell)
            .send()
            .await
            .unwrap();
        doc = r.json().await.unwrap();
        if doc["status"] == "succeeded" || doc["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(doc["status"], "succeeded", "{doc}");
    let plan = doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "plan")
        .unwrap();
    assert_eq!(plan["outputs"]["source"], "template");
    assert_eq!(
        plan["outputs"]["plan"]["tasks"][0]["inputs"],
        json!({"db": "sqlite", "workers": 2, "lang": "rust"})
    );
    assert_eq!(plan["outputs"]["answers"]["owner"], "nobody");
    node.kill().unwrap();
    node.wait().unwrap();
}

mod with_a_model {
    use super::common::llm::{openai_text, server};
    use super::common::{events, TestStore};
    use nofx::models::{ApiKey, ModelsConfig, RetryPolicy};
    use nofx::plan::{Format, PlanSource};
    use nofx::questions::{Answer, QuestionnaireSource};
    use nofx::{EventType, RunStatus};
    use serde_json::{json, Value};
    use std::time::Duration;

    const INTERVIEW: &str = r#"name: interview
phases:
  - id: intent
    questions:
      - { id: change, text: What should change?, type: text }
  - id: more
    generate: 2
    questions:
      - { id: urgent, text: Is it urgent?, type: boolean, default: false }
plan:
  goal: "Make this change: ${answers.change}"
"#;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_model_proposes_questions_and_plans_the_goal_from_the_answers() {
        let proposed = json!([
            {"id": "deadline", "text": "When is it due?", "type": "text"},
            {"id": "bad", "text": "Which?", "type": "select", "options": ["only"]},
            {"id": "env", "text": "Which environment?", "type": "select", "options": ["dev", "prod"], "default": "dev"},
            {"id": "extra", "text": "One too many?", "type": "boolean"}
        ]);
        let plan = json!({"name": "made", "tasks": [{"id": "do", "tool": "test:echo", "inputs": {"done": true}}]});
        let (base, script) = server(
            "/v1/chat/completions",
            vec![
                openai_text(&proposed.to_string(), 300, 80),
                openai_text(&plan.to_string(), 900, 60),
            ],
        )
        .await;
        let mut cfg = ModelsConfig::shipped()
            .api_key("openai", ApiKey::new("sk-test-secret-key-0123456789"))
            .base_url("openai", format!("{base}/v1"));
        cfg.retry = RetryPolicy {
            max_attempts: 1,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        };
        let store = TestStore::sqlite().await;
        let rt = store.builder().models(cfg).build().await.unwrap();
        let q = QuestionnaireSource::parse(INTERVIEW, Format::Yaml, None).unwrap();
        let run = rt
            .submit(
                &PlanSource::from_plan(q.questionnaire.compile()),
                Default::default(),
            )
            .await
            .unwrap();
        let wait_for = |want: &'static [&'static str]| {
            let run = run.clone();
            async move {
                for _ in 0..600 {
                    let p = run.pending_questions().await.unwrap();
                    let mut ids: Vec<String> = p.iter().map(|q| q.question.id.clone()).collect();
                    ids.sort();
                    if ids == want {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                panic!("never pending: {want:?}");
            }
        };
        wait_for(&["change"]).await;
        run.answer("change", Answer::Value(json!("Add a health endpoint")))
            .await
            .unwrap();
        // The written question and the two good proposals are asked together.
        wait_for(&["deadline", "env", "urgent"]).await;
        run.answer("deadline", Answer::Value(json!("Friday")))
            .await
            .unwrap();
        run.answer("env", Answer::Idk).await.unwrap();
        run.answer("urgent", Answer::Value(json!("yes")))
            .await
            .unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        let made = out
            .tasks
            .iter()
            .find(|t| t.id.as_str() == "plan")
            .unwrap()
            .outputs
            .clone()
            .unwrap();
        assert_eq!(made["source"], "goal");
        assert_eq!(made["plan"]["tasks"][0]["id"], "do");
        assert_eq!(
            made["answers"],
            json!({"change": "Add a health endpoint", "urgent": true, "deadline": "Friday", "env": "dev"})
        );
        let evs = events(&rt, run.id()).await;
        let dropped: Vec<&Value> = evs
            .iter()
            .filter(|e| e.kind == EventType::QuestionDropped)
            .map(|e| &e.data)
            .collect();
        assert_eq!(dropped.len(), 2, "{dropped:?}");
        assert!(
            dropped[0]["reason"]
                .as_str()
                .unwrap()
                .contains("at least 2 options"),
            "{dropped:?}"
        );
        assert!(
            dropped[1]["reason"]
                .as_str()
                .unwrap()
                .contains("more than 2"),
            "{dropped:?}"
        );
        // What the model was told: the answers so far for the proposals; the answers (and
        // the goal with them) for the plan.
        let seen = script.seen();
        assert_eq!(seen.len(), 2);
        let text = |i: usize| seen[i].body["messages"].to_string();
        assert!(
            text(0).contains("Add a health endpoint") && text(0).contains("Is it urgent?"),
            "{}",
            text(0)
        );
        assert!(
            text(1).contains("Goal: Make this change: Add a health endpoint"),
            "{}",
            text(1)
        );
        assert!(text(1).contains("Friday"), "{}", text(1));
        // Each call is a usage row of the gathering run.
        let calls = rt.store().model_calls(run.id()).await.unwrap();
        let tasks: Vec<&str> = calls
            .iter()
            .map(|c| c.task_id.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(tasks, ["more", "plan"]);
        rt.shutdown().await;
    }
}
