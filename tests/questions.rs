//! Typed questions: the `ask` tool's questions are durable waits answered through the
//! library, another runtime on the same store and the CLI; answers are checked by type and
//! rule, recorded once, and "I don't know", empty optional answers and deadlines take the
//! default (or the smart default), never an invented value. On both stores.
#![cfg(feature = "cli")]

mod common;

use common::{events, plan};
use nofx::questions::{Answer, AskedQuestion, QuestionStatus};
use nofx::runtime::RunHandle;
use nofx::{EventType, RunId, RunStatus, Runtime, RuntimeError};
use serde_json::{json, Value};
use std::time::Duration;

/// scan → ask (several questions, one depending on another, one on an output) → use.
const SURVEY: &str = r#"
name: survey
tasks:
  - { id: scan, tool: test:echo, inputs: { lang: rust, langs: [rust, python] } }
  - id: ask
    tool: ask
    depends_on: [scan]
    inputs:
      questions:
        - { id: name, text: Project name?, type: text, validate: { regex: "^[a-z][a-z0-9-]*$", max_len: 20 } }
        - { id: db, text: Which database?, type: select, options: [postgres, sqlite], default: sqlite }
        - { id: pool, text: Pool size?, type: number, depends_on: { question: db, value: postgres }, validate: { min: 1, max: 64 } }
        - { id: features, text: Which features?, type: multiselect, options: [auth, billing, search], validate: { min_items: 2, max_items: 2 } }
        - { id: ci, text: Set up CI?, type: boolean }
        - { id: lang, text: Main language?, type: text, smart_default: "${tasks.scan.outputs.lang}" }
        - { id: slug, text: URL slug?, type: text, smart_default: "${answers.name}" }
        - { id: py, text: Python version?, type: text, required: false, depends_on: { output: "${tasks.scan.outputs.langs}", value: python } }
        - { id: go, text: Go version?, type: text, depends_on: { output: "${tasks.scan.outputs.langs}", value: go } }
  - id: use
    tool: test:echo
    depends_on: [ask]
    inputs: { all: "${tasks.ask.outputs}" }
"#;

async fn pending(run: &RunHandle, want: &[&str]) -> Vec<AskedQuestion> {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    let mut last = Vec::new();
    for _ in 0..400 {
        let now = run.pending_questions().await.unwrap();
        let mut ids: Vec<String> = now.iter().map(|q| q.question.id.clone()).collect();
        ids.sort();
        if ids == want {
            return now;
        }
        last = ids;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("pending questions {last:?}, expected {want:?}");
}

fn rule(e: RuntimeError) -> (String, &'static str) {
    match e {
        RuntimeError::BadAnswer(r) => (r.question, r.rule),
        other => panic!("expected a bad answer, got {other}"),
    }
}

async fn failure_kind(rt: &Runtime, run: RunId) -> String {
    let evs = events(rt, run).await;
    let failed = evs
        .iter()
        .find(|e| e.kind == EventType::TaskFailed)
        .unwrap();
    failed.data["errorType"].as_str().unwrap().to_string()
}

async fn event_count(rt: &Runtime, run: RunId, kind: EventType) -> usize {
    events(rt, run)
        .await
        .iter()
        .filter(|e| e.kind == kind)
        .count()
}

both_stores! {
    async fn every_type_is_asked_checked_and_answered_and_conditions_skip(store) {
        let rt = store.runtime().await;
        let run = rt.submit(&plan(SURVEY), Default::default()).await.unwrap();
        // Round one: everything whose condition can be decided now; `go` is skipped (the
        // output holds no go), `pool` and `slug` wait for the questions they name.
        let asked = pending(&run, &["name", "db", "features", "ci", "lang", "py"]).await;
        let lang = asked.iter().find(|q| q.question.id == "lang").unwrap();
        assert_eq!(lang.question.smart_default, Some(json!("rust")), "the output's value");
        assert_eq!(rt.store().run(run.id()).await.unwrap().status, RunStatus::Waiting);
        let skipped = rt.questions(run.id(), Some(QuestionStatus::Skipped)).await.unwrap();
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].question.id, "go");

        // Every bad answer names its question and rule; nothing is stored.
        let bad = [
            ("name", json!("Has Caps"), "regex"),
            ("name", json!("a-very-long-project-name"), "max_len"),
            ("name", json!(7), "type"),
            ("name", json!(""), "required"),
            ("db", json!("mysql"), "option"),
            ("features", json!([]), "required"),
            ("features", json!(["auth"]), "min_items"),
            ("features", json!(["auth", "billing", "search"]), "max_items"),
            ("features", json!(["auth", "nope"]), "option"),
            ("ci", json!("maybe"), "type"),
        ];
        for (q, v, want) in bad {
            let e = run.answer(q, Answer::Value(v.clone())).await.unwrap_err();
            assert_eq!(rule(e), (q.to_string(), want), "{q} = {v}");
        }
        assert_eq!(run.pending_questions().await.unwrap().len(), 6, "still pending");
        let e = run.answer("nope", Answer::Idk).await.unwrap_err();
        assert!(matches!(e, RuntimeError::NoSuchQuestion(_)), "{e}");
        let e = run.answer("go", Answer::Value(json!("1.22"))).await.unwrap_err();
        assert!(e.to_string().contains("was not asked: asked when the output is \"go\""), "{e}");

        let a = run.answer_as("name", Answer::Value(json!("shop")), "ada").await.unwrap();
        let stored = a.answer.unwrap();
        assert_eq!((stored.value, stored.answered_by.as_str(), stored.timed_out), (json!("shop"), "ada", false));
        assert_eq!(serde_json::to_value(stored.source).unwrap(), json!("user"));
        // The same answer again is accepted; another one is refused, naming the first.
        run.answer_as("name", Answer::Value(json!("shop")), "ada").await.unwrap();
        let e = run.answer("name", Answer::Value(json!("mall"))).await.unwrap_err();
        assert!(matches!(e, RuntimeError::Answered(_)), "{e}");
        assert!(e.to_string().contains("was already answered: \"shop\" (user, by ada"), "{e}");

        let e = run.approve("ask", "ada", None).await.unwrap_err();
        assert!(e.to_string().contains("waits for answers to its questions"), "{e}");
        run.answer("db", Answer::Value(json!("postgres"))).await.unwrap();
        run.answer("features", Answer::Value(json!(["auth", "search"]))).await.unwrap();
        run.answer("ci", Answer::Value(json!("yes"))).await.unwrap();
        let lang = run.answer("lang", Answer::Idk).await.unwrap().answer.unwrap();
        assert_eq!((lang.value, serde_json::to_value(lang.source).unwrap()), (json!("rust"), json!("smart_default")));
        let py = run.answer("py", Answer::Value(json!(" "))).await.unwrap().answer.unwrap();
        assert_eq!((py.value, py.source), (Value::Null, None), "an empty optional answer with no default");

        // Round two: the questions that named settled ones.
        pending(&run, &["pool", "slug"]).await;
        assert_eq!(rule(run.answer("pool", Answer::Value(json!("65"))).await.unwrap_err()), ("pool".into(), "max"));
        run.answer("pool", Answer::Value(json!("8"))).await.unwrap();
        let slug = run.answer("slug", Answer::Idk).await.unwrap().answer.unwrap();
        assert_eq!(slug.value, json!("shop"), "the smart default names an earlier answer");

        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        let used = out.tasks.iter().find(|t| t.id.as_str() == "use").unwrap();
        assert_eq!(
            used.outputs.as_ref().unwrap()["all"],
            json!({"name": "shop", "db": "postgres", "pool": 8, "features": ["auth", "search"],
                   "ci": true, "lang": "rust", "slug": "shop", "py": null, "go": null})
        );
        let evs = events(&rt, run.id()).await;
        let count = |k: EventType| evs.iter().filter(|e| e.kind == k).count();
        assert_eq!(count(EventType::QuestionAsked), 8);
        assert_eq!(count(EventType::QuestionSkipped), 1);
        assert_eq!(count(EventType::QuestionAnswered), 5);
        assert_eq!(count(EventType::QuestionDefaulted), 3);
        let asked = evs.iter().find(|e| e.kind == EventType::QuestionAsked).unwrap();
        assert_eq!(asked.data["question"]["validate"]["regex"], "^[a-z][a-z0-9-]*$", "the full spec");
        // Answers are announced before the task that asked goes on.
        let last_answer = evs.iter().rposition(|e| e.kind == EventType::QuestionAnswered).unwrap();
        let done = evs.iter().position(|e| e.kind == EventType::TaskSucceeded && e.task_id.as_ref().is_some_and(|t| t.as_str() == "ask")).unwrap();
        assert!(last_answer < done);
        let answered = rt.questions(run.id(), Some(QuestionStatus::Answered)).await.unwrap();
        assert_eq!(answered.len(), 8);
        let e = run.answer("pool", Answer::Value(json!(9))).await.unwrap_err();
        assert!(matches!(e, RuntimeError::Answered(_)), "{e}");
        rt.shutdown().await;
    }
}

both_stores! {
    async fn the_deadline_takes_the_default_and_a_required_question_without_one_fails_no_default(store) {
        let rt = store.runtime().await;
        let src = r#"
name: deadline
tasks:
  - id: ask
    tool: ask
    timeout_s: 0.2
    inputs:
      questions:
        - { id: region, text: Region?, type: select, options: [eu, us], default: eu, timeout_s: 0.5 }
        - { id: notes, text: Notes?, type: text, required: false, timeout_s: 0.5 }
"#;
        // The task's own timeout does not run while it waits for answers.
        let run = rt.submit(&plan(src), Default::default()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        assert_eq!(out.tasks[0].outputs.as_ref().unwrap(), &json!({"region": "eu", "notes": null}));
        let qs = rt.questions(run.id(), None).await.unwrap();
        for q in &qs {
            let a = q.answer.as_ref().unwrap();
            assert!(a.timed_out && a.answered_by == "timeout", "{q:?}");
        }
        assert_eq!(event_count(&rt, run.id(), EventType::QuestionDefaulted).await, 2);

        let src = "name: nd\ntasks:\n  - id: ask\n    tool: ask\n    inputs: { id: owner, text: Who owns it?, type: text, timeout_s: 0.3 }\n";
        let run = rt.submit(&plan(src), Default::default()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        let t = &out.tasks[0];
        assert_eq!(failure_kind(&rt, run.id()).await, "no_default");
        assert!(t.error.as_deref().unwrap().contains("question `owner` is required and has no default"), "{t:?}");
        let q = &rt.questions(run.id(), None).await.unwrap()[0];
        assert_eq!(q.status, QuestionStatus::NoDefault);

        // "I don't know" on a required question with nothing to fall back on: the same.
        let src = "name: idk\ntasks:\n  - id: ask\n    tool: ask\n    inputs: { id: owner, text: Who owns it?, type: text }\n";
        let run = rt.submit(&plan(src), Default::default()).await.unwrap();
        pending(&run, &["owner"]).await;
        let q = run.answer("owner", Answer::Idk).await.unwrap();
        assert_eq!(q.status, QuestionStatus::NoDefault);
        let out = run.wait().await.unwrap();
        assert_eq!(failure_kind(&rt, run.id()).await, "no_default");
        assert_eq!(out.status, RunStatus::Failed);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_pending_question_survives_a_restart_and_a_passed_deadline_is_taken_once(store) {
        let rt = store.runtime().await;
        let src = "name: r\ntasks:\n  - id: ask\n    tool: ask\n    inputs: { id: size, text: How many?, type: number }\n  - { id: after, tool: test:echo, depends_on: [ask], inputs: { n: \"${tasks.ask.outputs.size}\" } }\n";
        let run = rt.submit(&plan(src), Default::default()).await.unwrap();
        let id = run.id();
        pending(&run, &["size"]).await;
        rt.shutdown().await;

        // Nobody executes the run: the answer is recorded, and applied on resume.
        let other = store.runtime().await;
        let q = other.answer(id, "size", Answer::Value(json!(3)), "bob").await.unwrap();
        assert_eq!(q.status, QuestionStatus::Answered);
        other.shutdown().await;
        let rt = store.runtime().await;
        let (_, h) = rt.resume(id).await.unwrap();
        let out = h.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded);
        assert_eq!(out.tasks[1].outputs.as_ref().unwrap()["n"], 3);
        assert_eq!(event_count(&rt, id, EventType::QuestionAnswered).await, 1);

        // A deadline that passes while nobody owns the run: two runtimes start together,
        // the default is taken and announced once.
        let src = "name: t\ntasks:\n  - id: ask\n    tool: ask\n    inputs: { id: env, text: Env?, type: text, default: staging, timeout_s: 0.4 }\n";
        let run = rt.submit(&plan(src), Default::default()).await.unwrap();
        let id = run.id();
        pending(&run, &["env"]).await;
        rt.shutdown().await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (a, b) = tokio::join!(store.runtime(), store.runtime());
        let (ra, rb) = tokio::join!(a.resume_orphans(), b.resume_orphans());
        let (ra, rb) = (ra.unwrap().resumed, rb.unwrap().resumed);
        assert_eq!(ra.len() + rb.len(), 1, "one runtime takes the run");
        let owner = if ra.is_empty() { &b } else { &a };
        let out = owner.run(id).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded);
        assert_eq!(out.tasks[0].outputs.as_ref().unwrap()["env"], "staging");
        assert_eq!(event_count(&a, id, EventType::QuestionDefaulted).await, 1);
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[test]
fn bad_questions_are_refused_at_validation() {
    let tools = nofx::tools::ToolRegistry::builtin();
    let agents = nofx::config::builtin_agents();
    let src = plan(
        r#"
name: x
tasks:
  - id: a
    tool: ask
    inputs:
      questions:
        - { id: db, text: Which?, type: select, options: [postgres], default: mysql }
        - { id: db, text: Again?, type: text }
        - { id: n, text: How many?, type: number, depends_on: { question: later, value: 1 } }
        - { id: later, text: Later?, type: number, validate: { regex: "(" } }
"#,
    );
    let err = nofx::plan::validate(&src, &Default::default(), &tools, &agents)
        .err()
        .unwrap()
        .to_string();
    for want in [
        "at least 2 options, got 1",
        "`default` \"mysql\" is not among the options",
        "question id `db` is used twice",
        "names question `later`, which is not asked before it",
        "validate.regex is not a regular expression",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[test]
fn the_cli_lists_and_answers_the_questions_of_a_run_another_process_executes() {
    let dir = tempfile::tempdir().unwrap();
    let nofx = |args: &[&str]| common::nofx_out(dir.path(), args);
    std::fs::write(
        dir.path().join("p.yaml"),
        "name: cli\ntasks:\n  - id: ask\n    tool: ask\n    inputs:\n      questions:\n        - { id: tags, text: Tags?, type: multiselect, options: [a, b, c] }\n        - { id: go, text: Go ahead?, type: boolean, default: false }\n",
    )
    .unwrap();
    let child = common::nofx_cmd(dir.path())
        .args(["run", "p.yaml", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut listed = Value::Null;
    common::wait_for(Duration::from_secs(20), || {
        let out = nofx(&["questions", "ls", "--json"]);
        listed = serde_json::from_slice(&out.stdout).unwrap_or_default();
        listed["questions"].as_array().is_some_and(|q| q.len() == 2)
    });
    let run = listed["questions"][0]["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let out = nofx(&["questions", "ls"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tags  multiselect [a|b|c]  pending  required  — Tags?"),
        "{text}"
    );
    assert!(
        text.contains("go  boolean  pending  default false"),
        "{text}"
    );
    let out = nofx(&["runs", "show", &run]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("waiting for answers to tags, go"), "{shown}");
    let out = nofx(&["answer", &run, "tags", "a,d"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("question `tags`: option: `d` is not one of: a, b, c"),
        "{err}"
    );
    let out = nofx(&["answer", &run, "tags", "a, c", "--as", "ada", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let q: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(q["answer"]["value"], json!(["a", "c"]));
    assert_eq!(q["answer"]["answered_by"], "ada");
    let out = nofx(&["answer", &run, "go", "--idk"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("asking  ask: Tags? (multiselect: a | b | c)"),
        "{err}"
    );
    assert!(
        err.contains("answer  ask: go = false (default, by"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "succeeded");
    let out = nofx(&["answer", &run, "tags", "b"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already answered"));
    let out = nofx(&["questions", "ls", &run, "--status", "answered", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["questions"].as_array().unwrap().len(), 2);
}

/// A `nofx serve` on the data directory `dir`; its base URL.
fn serve(dir: &std::path::Path) -> (std::process::Child, String) {
    common::serve_with(common::nofx_cmd(dir).args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--grace",
        "0",
    ]))
}

/// SSE frames (id, event, data) of `resp` until `until` says stop, or the end.
async fn frames(
    resp: reqwest::Response,
    until: impl Fn(&str) -> bool,
) -> Vec<(i64, String, Value)> {
    use eventsource_stream::Eventsource;
    use futures::StreamExt;
    let mut out = Vec::new();
    let mut es = resp.bytes_stream().eventsource();
    while let Some(ev) = es.next().await {
        let ev = ev.unwrap();
        let Ok(id) = ev.id.parse::<i64>() else {
            continue;
        };
        let data: Value = serde_json::from_str(&ev.data).unwrap_or_default();
        let stop = until(&ev.event);
        out.push((id, ev.event, data));
        if stop {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_pending_when_serve_is_killed_is_answered_over_http_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let out = common::nofx_out(dir.path(), &["keys", "create", "--project", "acme"]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap()
            .to_string()
    };
    let (mut node, base) = tokio::task::spawn_blocking({
        let d = dir.path().to_path_buf();
        move || serve(&d)
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let plan = "name: http\ntasks:\n  - id: ask\n    tool: ask\n    inputs:\n      questions:\n        - { id: db, text: Which database?, type: select, options: [postgres, sqlite] }\n        - { id: n, text: How many?, type: number, validate: { min: 1 } }\n  - { id: use, tool: test:echo, depends_on: [ask], inputs: { db: \"${tasks.ask.outputs.db}\", n: \"${tasks.ask.outputs.n}\" } }\n";
    let r = http
        .post(format!("{base}/runs"))
        .bearer_auth(&key)
        .header("content-type", "application/yaml")
        .body(plan)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let run: Value = r.json().await.unwrap();
    let id = run["id"].as_str().unwrap().to_string();
    // The stream up to the second question: the client then goes away.
    let stream = |base: String, last: Option<i64>| {
        let mut r = http
            .get(format!("{base}/runs/{id}/stream"))
            .bearer_auth(&key);
        if let Some(l) = last {
            r = r.header("last-event-id", l.to_string());
        }
        r.send()
    };
    let seen = frames(stream(base.clone(), None).await.unwrap(), |e| {
        e == "task.started"
    })
    .await;
    let last = seen.last().unwrap().0;
    let pending = |base: String| {
        let (http, key) = (http.clone(), key.clone());
        async move {
            let r = http
                .get(format!("{base}/questions?status=pending"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["questions"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let mut listed = Vec::new();
    for _ in 0..400 {
        listed = pending(base.clone()).await;
        if listed.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(listed.len(), 2, "{listed:?}");

    // kill -9 with both questions pending; a new process on the same data directory.
    node.kill().unwrap();
    node.wait().unwrap();
    let (mut node, base) = tokio::task::spawn_blocking({
        let d = dir.path().to_path_buf();
        move || serve(&d)
    })
    .await
    .unwrap();
    // A client that comes late finds the questions in the pending list, and in the stream
    // resumed from the last event it saw.
    let listed = pending(base.clone()).await;
    let ids: Vec<&str> = listed
        .iter()
        .map(|q| q["question"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["db", "n"]);
    assert_eq!(listed[0]["runId"], id.as_str());
    assert_eq!(
        listed[0]["question"]["options"],
        json!(["postgres", "sqlite"])
    );
    let resumed = frames(stream(base.clone(), Some(last)).await.unwrap(), |e| {
        e == "run.waiting"
    })
    .await;
    let asked: Vec<&str> = resumed
        .iter()
        .filter(|(_, e, _)| e == "question.asked")
        .map(|(_, _, d)| d["data"]["question"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(asked, ["db", "n"], "{resumed:?}");
    assert_eq!(resumed[0].0, last + 1, "no gap");

    let answer = |q: &'static str, body: &'static str| {
        let (http, key, base, id) = (http.clone(), key.clone(), base.clone(), id.clone());
        async move {
            let r = http
                .post(format!("{base}/runs/{id}/questions/{q}/answer"))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    let (st, e) = answer("db", r#"{"value": "mysql"}"#).await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(
        (e["error"]["code"].as_str(), e["error"]["rule"].as_str()),
        (Some("bad_answer"), Some("option"))
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("question `db`: option:"),
        "{e}"
    );
    let (st, e) = answer("n", r#"{"value": 0}"#).await;
    assert_eq!((st, e["error"]["rule"].as_str()), (422, Some("min")));
    let (st, _) = answer("n", r#"{"value": 1, "idk": true}"#).await;
    assert_eq!(st, 400);
    let (st, _) = answer("n", r#"{"answer": 1}"#).await;
    assert_eq!(st, 400);
    let (st, _) = answer("zzz", r#"{"idk": true}"#).await;
    assert_eq!(st, 404);
    let (st, q) = answer("db", r#"{"value": "postgres"}"#).await;
    assert_eq!(st, 200, "{q}");
    assert_eq!(q["answer"]["source"], "user");
    assert!(
        q["answer"]["answered_by"]
            .as_str()
            .unwrap()
            .starts_with("key:"),
        "{q}"
    );
    let (st, _) = answer("db", r#"{"value": "postgres"}"#).await;
    assert_eq!(st, 200, "the same answer again");
    let (st, e) = answer("db", r#"{"value": "sqlite"}"#).await;
    assert_eq!(st, 409);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already answered: \"postgres\""),
        "{e}"
    );
    let (st, _) = answer("n", r#"{"value": "4"}"#).await;
    assert_eq!(st, 200);
    let end = frames(stream(base.clone(), Some(last)).await.unwrap(), |e| {
        e == "run.succeeded"
    })
    .await;
    assert_eq!(end.last().unwrap().1, "run.succeeded");
    let r = http
        .get(format!("{base}/runs/{id}"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let doc: Value = r.json().await.unwrap();
    assert_eq!(
        doc["tasks"][1]["outputs"],
        json!({"db": "postgres", "n": 4})
    );
    let r = http
        .get(format!("{base}/runs/{id}/questions?status=answered"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["questions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = http
        .get(format!("{base}/runs/{id}/questions?status=maybe"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
    node.kill().unwrap();
    node.wait().unwrap();
}
