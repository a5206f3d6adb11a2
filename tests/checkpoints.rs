//! Checkpoints: what a run has done (succeeded tasks, outputs, artifacts, a manifest of its
//! workspace kept content-addressed), restore and fork, on both stores and from the CLI.
#![cfg(feature = "cli")]

mod common;

use common::{events, plan, until};
use nofx::runtime::{Fork, Outcome, SubmitOptions};
use nofx::{EventType, RunStatus};
use serde_json::{json, Value};
use std::time::Duration;

/// A chain a → b → c. Each task appends its name to `log` (outside the workspace, so it
/// counts executions across runs); b and c read files written into the workspace before
/// them, so a restore that did not rebuild the workspace would fail.
fn chain(log: &std::path::Path, every: u32) -> String {
    let log = log.display();
    format!(
        r#"
name: chain
inputs:
  n: {{ type: integer, default: 3 }}
checkpoints: {{ every: {every} }}
tasks:
  - id: a
    tool: shell
    inputs: {{ argv: [sh, -c, "echo a >> {log}; mkdir -p d && echo from-a > d/a.txt && echo ${{inputs.n}}"], artifacts: [d/a.txt] }}
  - id: b
    tool: shell
    depends_on: [a]
    inputs: {{ argv: [sh, -c, "echo b >> {log}; cat d/a.txt > b.txt && echo b-$(cat d/a.txt)"] }}
  - id: c
    tool: shell
    depends_on: [b]
    inputs: {{ argv: [sh, -c, "echo c >> {log}; echo c-$(cat b.txt)"] }}
"#
    )
}

fn count(log: &std::path::Path, task: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == task)
        .count()
}

fn outputs(o: &Outcome) -> Vec<(String, Value)> {
    o.tasks
        .iter()
        .map(|t| (t.id.to_string(), t.outputs.clone().unwrap_or(Value::Null)))
        .collect()
}

const PLAN: &str = r#"
name: files
tasks:
  - id: write
    tool: shell
    inputs: { argv: [sh, -c, "mkdir -p sub && printf one > a.txt && printf two > sub/b.txt && echo done"], artifacts: [a.txt] }
  - id: read
    tool: shell
    depends_on: [write]
    inputs: { argv: [cat, sub/b.txt] }
  - id: broken
    tool: shell
    depends_on: [read]
    inputs: { argv: [sh, -c, "exit 3"] }
"#;

both_stores! {
    async fn a_checkpoint_records_succeeded_tasks_artifacts_and_the_workspace(store) {
        let rt = store.runtime().await;
        let run = rt.submit(&plan(PLAN), Default::default()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        let cp = rt.checkpoint(run.id(), Some("before the broken step".into())).await.unwrap();
        assert!(cp.id.starts_with("cp-"));
        assert_eq!(cp.step, 2);
        let ids: Vec<&str> = cp.tasks.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["write", "read"]);
        assert_eq!(cp.tasks[1]["outputs"]["stdout"], "two");
        let arts: Vec<&str> = cp.artifacts.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert!(arts.contains(&"a.txt"), "{arts:?}");
        let m = cp.manifest.as_object().unwrap();
        let blobs = nofx::store::Blobs::new(rt.data_dir().join("artifacts"));
        for (path, want) in [("a.txt", "one"), ("sub/b.txt", "two")] {
            let hash = m[path].as_str().unwrap();
            assert_eq!(std::fs::read_to_string(blobs.path_of(hash)).unwrap(), want, "{path}");
        }
        let listed = rt.store().checkpoints(run.id()).await.unwrap();
        assert_eq!(listed, vec![cp.clone()]);
        assert_eq!(rt.store().checkpoint(&cp.id).await.unwrap(), cp);
        let err = rt.store().checkpoint("cp-nope").await.unwrap_err();
        assert_eq!(err.to_string(), "no checkpoint `cp-nope` in the store");
        rt.shutdown().await;
    }
}

both_stores! {
    async fn restore_from_an_automatic_checkpoint_gives_the_same_outputs_without_rerunning(store) {
        let rt = store.runtime().await;
        let log = store.dir.path().join("count.log");
        let run = rt.submit(&plan(&chain(&log, 1)), Default::default()).await.unwrap();
        let original = run.wait().await.unwrap();
        assert_eq!(original.status, RunStatus::Succeeded);
        // Every succeeded task but the last (after it the run has ended) is checkpointed.
        let store_ = rt.store().clone();
        let id = run.id();
        until(Duration::from_secs(10), || {
            let s = store_.clone();
            async move { s.checkpoints(id).await.unwrap().len() == 2 }
        })
        .await;
        let cps = rt.store().checkpoints(run.id()).await.unwrap();
        assert_eq!(cps.iter().map(|c| c.step).collect::<Vec<_>>(), vec![1, 2]);
        let first = &cps[0];
        assert_eq!(first.manifest.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["d/a.txt"]);

        let restored = rt.restore(&first.id, SubmitOptions::default()).await.unwrap();
        let out = restored.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        assert_eq!(outputs(&out), outputs(&original));
        assert_eq!((count(&log, "a"), count(&log, "b"), count(&log, "c")), (1, 2, 2));
        let o = Outcome::load(rt.store(), restored.id()).await.unwrap();
        assert_eq!(o.parent_run_id, Some(run.id()));
        assert_eq!(o.checkpoint_id.as_deref(), Some(first.id.as_str()));
        assert_eq!(o.forked_at, None);
        let a = &o.tasks[0];
        assert_eq!((a.restored_from.as_deref(), a.attempts), (Some(first.id.as_str()), 0));
        assert!(o.tasks[1..].iter().all(|t| t.restored_from.is_none() && t.attempts == 1));
        // The restored task's artifact is shared by hash, not copied.
        let parent_arts = rt.store().artifacts(run.id()).await.unwrap();
        let arts = rt.store().artifacts(restored.id()).await.unwrap();
        let hash = |rows: &[nofx::store::ArtifactRow]| {
            rows.iter().find(|a| a.task_id.as_str() == "a" && a.name == "d/a.txt").map(|a| a.hash.clone())
        };
        assert!(hash(&arts).is_some());
        assert_eq!(hash(&arts), hash(&parent_arts));
        let evs = events(&rt, restored.id()).await;
        let r = evs.iter().find(|e| e.kind == EventType::RunRestored).unwrap();
        assert_eq!(r.data["restored"], json!(["a"]));
        assert_eq!(r.data["rerun"], json!(["b", "c"]));
        assert_eq!(r.seq, 2);

        let err = rt.restore("cp-nope", SubmitOptions::default()).await.err().unwrap();
        assert_eq!(err.to_string(), "no checkpoint `cp-nope` in the store");
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_restored_run_that_was_only_stored_keeps_its_restored_tasks_on_resume(store) {
        let rt = store.runtime().await;
        let log = store.dir.path().join("count.log");
        let run = rt.submit(&plan(&chain(&log, 0)), Default::default()).await.unwrap();
        run.wait().await.unwrap();
        let cp = rt.checkpoint(run.id(), None).await.unwrap();
        let opts = SubmitOptions { detach: true, ..Default::default() };
        let stored = rt.restore(&cp.id, opts).await.unwrap();
        rt.shutdown().await;
        let rt = store.runtime().await;
        let (_, h) = rt.resume(stored.id()).await.unwrap();
        let out = h.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded);
        assert_eq!((count(&log, "a"), count(&log, "b"), count(&log, "c")), (1, 1, 1));
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_fork_reruns_exactly_the_changed_part(store) {
        let rt = store.runtime().await;
        let log = store.dir.path().join("count.log");
        let l = log.display();
        let diamond = format!(r#"
name: diamond
inputs:
  who: {{ type: string, default: world }}
tasks:
  - {{ id: a, tool: shell, inputs: {{ argv: [sh, -c, "echo a >> {l}; echo a"] }} }}
  - {{ id: b, tool: shell, depends_on: [a], inputs: {{ argv: [sh, -c, "echo b >> {l}; echo b"] }} }}
  - {{ id: c, tool: shell, depends_on: [a], inputs: {{ argv: [sh, -c, "echo c >> {l}; echo hello ${{inputs.who}}"] }} }}
  - {{ id: d, tool: shell, depends_on: [b, c], inputs: {{ argv: [sh, -c, "echo d >> {l}; echo d"] }} }}
"#);
        let run = rt.submit(&plan(&diamond), Default::default()).await.unwrap();
        assert_eq!(run.wait().await.unwrap().status, RunStatus::Succeeded);
        let counts = || ["a", "b", "c", "d"].map(|t| count(&log, t));
        assert_eq!(counts(), [1, 1, 1, 1]);

        // A patch on c: c and d (downstream) run again; a and b are restored.
        let patch = json!({"tasks": {"c": {"inputs": {"argv": ["sh", "-c", format!("echo c >> {l}; echo patched")]}}}});
        let fork = Fork { at: "c".into(), patch: Some(patch), ..Default::default() };
        let f = rt.fork(run.id(), fork, SubmitOptions::default()).await.unwrap();
        let out = f.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded);
        assert_eq!(counts(), [1, 1, 2, 2]);
        let o = Outcome::load(rt.store(), f.id()).await.unwrap();
        assert_eq!(o.tasks[2].outputs.as_ref().unwrap()["stdout"], "patched\n");
        assert_eq!((o.parent_run_id, o.forked_at.as_deref()), (Some(run.id()), Some("c")));
        let restored: Vec<&str> = o.tasks.iter().filter(|t| t.restored_from.is_some()).map(|t| t.id.as_str()).collect();
        assert_eq!(restored, vec!["a", "b"]);
        let cp = rt.store().checkpoint(o.checkpoint_id.as_deref().unwrap()).await.unwrap();
        assert_eq!((cp.run_id, cp.description.as_deref()), (run.id(), Some("fork at c")));

        // Forking at b with a new input value: c uses the input, so c runs again too.
        let fork = Fork { at: "b".into(), inputs: [("who".to_string(), json!("nofx"))].into_iter().collect(), ..Default::default() };
        let f = rt.fork(run.id(), fork, SubmitOptions::default()).await.unwrap();
        let out = f.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded);
        assert_eq!(counts(), [1, 2, 3, 3]);
        assert_eq!(out.tasks[2].outputs.as_ref().unwrap()["stdout"], "hello nofx\n");

        // Bad forks are refused before anything is stored.
        let before = rt.store().runs(&[], 100).await.unwrap().len();
        let err = rt.fork(run.id(), Fork { at: "zz".into(), ..Default::default() }, SubmitOptions::default()).await.err().unwrap();
        assert!(err.to_string().contains("has no task `zz` (its tasks: a, b, c, d)"), "{err}");
        let bad = json!({"tasks": {"c": {"tool": "no-such-tool"}}});
        let err = rt.fork(run.id(), Fork { at: "c".into(), patch: Some(bad), ..Default::default() }, SubmitOptions::default()).await.err().unwrap();
        assert!(matches!(err, nofx::RuntimeError::Plan(_)), "{err}");
        assert!(err.to_string().contains("no-such-tool"), "{err}");
        let err = rt.fork(run.id(), Fork { at: "c".into(), patch: Some(json!([1])), ..Default::default() }, SubmitOptions::default()).await.err().unwrap();
        assert!(err.to_string().contains("must be a JSON object"), "{err}");
        assert_eq!(rt.store().runs(&[], 100).await.unwrap().len(), before);
        assert_eq!(counts(), [1, 2, 3, 3]);
        rt.shutdown().await;
    }
}

#[test]
fn the_cli_prints_the_checkpoint_id_alone_on_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let nofx = |args: &[&str]| common::nofx_out(dir.path(), args);
    std::fs::write(
        dir.path().join("p.yaml"),
        "name: t\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n",
    )
    .unwrap();
    let out = nofx(&["run", "p.yaml"]);
    let run = String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let out = nofx(&["checkpoints", "create", &run, "--description", "first"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let id = stdout.trim().lines().last().unwrap();
    assert!(id.starts_with("cp-") && !id.contains(' '), "{stdout}");
    let out = nofx(&["checkpoints", "ls", &run, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = &doc["checkpoints"];
    assert_eq!(v[0]["id"], id);
    assert_eq!(v[0]["description"], "first");
    assert_eq!(v[0]["step"], 1);
    assert!(
        v[0]["createdAt"].as_str().unwrap().ends_with('Z'),
        "RFC 3339: {v}"
    );
    let out = nofx(&["checkpoints", "ls", "ffffffff"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_cli_restores_and_forks_in_the_foreground_or_detached() {
    let dir = tempfile::tempdir().unwrap();
    let nofx = |args: &[&str]| common::nofx_out(dir.path(), args);
    let last_line = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    let log = dir.path().join("count.log");
    std::fs::write(dir.path().join("p.yaml"), chain(&log, 0)).unwrap();
    let out = nofx(&["run", "p.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    let run = last_line(&out);
    let cp = last_line(&nofx(&["checkpoints", "create", &run]));

    let out = nofx(&["checkpoints", "restore", &cp, "--detach"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = last_line(&out);
    let out = nofx(&["runs", "show", &stored, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["checkpointId"].as_str()),
        (Some("pending"), Some(cp.as_str()))
    );
    assert_eq!(v["parentRunId"], run.as_str());
    assert_eq!(v["forkedAt"], Value::Null);
    assert!(v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["restoredFrom"] == cp.as_str()));

    std::fs::write(
        dir.path().join("patch.yaml"),
        "tasks:\n  c:\n    inputs: { argv: [echo, patched] }\n",
    )
    .unwrap();
    let out = nofx(&["runs", "fork", &run, "--at", "c", "--patch", "patch.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("restored 2 task(s) from checkpoint"), "{err}");
    assert!(err.contains("run succeeded"), "{err}");
    let forked = last_line(&out);
    let out = nofx(&["runs", "show", &forked, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["parentRunId"].as_str(), v["forkedAt"].as_str()),
        (Some(run.as_str()), Some("c"))
    );
    assert_eq!(v["tasks"][2]["outputs"]["stdout"], "patched\n");
    assert_eq!(v["tasks"][2]["restoredFrom"], Value::Null);
    assert_eq!(count(&log, "a"), 1);

    // Bad input: exit 2 with a message naming what is wrong.
    let out = nofx(&["runs", "fork", &run, "--at", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no task `nope`"));
    std::fs::write(dir.path().join("bad.json"), "[1, 2]").unwrap();
    let out = nofx(&["runs", "fork", &run, "--at", "c", "--patch", "bad.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.json: a merge patch must be an object")
    );
    let out = nofx(&["checkpoints", "restore", "cp-missing"]);
    assert_eq!(out.status.code(), Some(2));
}
