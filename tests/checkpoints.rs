//! Checkpoints: what a run has done (succeeded tasks, outputs, artifacts, a manifest of its
//! workspace kept content-addressed), on both stores and from the CLI.

mod common;

use common::plan;
use nofx::RunStatus;

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

#[test]
fn the_cli_prints_the_checkpoint_id_alone_on_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let nofx = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nofx"))
            .current_dir(dir.path())
            .env_remove("NOFX_DATABASE_URL")
            .args(args)
            .output()
            .unwrap()
    };
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
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], id);
    assert_eq!(v[0]["description"], "first");
    assert_eq!(v[0]["step"], 1);
    let out = nofx(&["checkpoints", "ls", "ffffffff"]);
    assert_eq!(out.status.code(), Some(2));
}
