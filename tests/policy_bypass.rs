//! The command policy cannot be got round from a plan: a program named by path or by a
//! reference is the file checked; variables that choose or load code (`PATH`, `LD_PRELOAD`,
//! `BASH_ENV`, nofx's own) are refused whether written out or produced at run time; artifact
//! paths that are absolute, climb with `..` or hold a NUL byte are refused before the run.

mod common;

use common::{plan, TestStore};
use nofx::tools::CommandPolicy;
use nofx::{RunStatus, Runtime, RuntimeError};
use serde_json::Map;

async fn runtime(store: &TestStore) -> Runtime {
    let policy =
        CommandPolicy::from_toml("[commands]\nallow = [\"echo\"]\n", "tools.toml").unwrap();
    store
        .builder()
        .command_policy(policy)
        .build()
        .await
        .unwrap()
}

/// The problems the check finds in `yaml`, as text.
async fn refused(rt: &Runtime, yaml: &str) -> Vec<String> {
    match rt.submit(&plan(yaml), Map::new()).await {
        Err(RuntimeError::Plan(p)) => p.0.iter().map(|i| i.error.to_string()).collect(),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(run) => panic!("accepted: run {}", run.id()),
    }
}

/// The run failed at its task `b`: why.
async fn failure_of_b(run: &nofx::RunHandle) -> String {
    let outcome = run.wait().await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failed);
    let b = outcome.tasks.iter().find(|t| t.id.as_str() == "b").unwrap();
    b.error.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_that_choose_or_load_code_are_refused_before_the_run() {
    let store = TestStore::sqlite().await;
    let rt = runtime(&store).await;
    for name in [
        "PATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "BASH_ENV",
        "ENV",
        "GLIBC_TUNABLES",
        "NOFX_IDEMPOTENCY_KEY",
    ] {
        let problems = refused(
            &rt,
            &format!("name: e\ntasks:\n  - {{ id: t, tool: shell, inputs: {{ argv: [echo, hi], env: {{ {name}: /tmp/x }} }} }}\n"),
        )
        .await;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains(&format!("env.{name}")) && problems[0].contains("may not be set"),
            "{problems:?}"
        );
    }
    // Ordinary variables are the plan's to set.
    let run = rt
        .submit(
            &plan("name: ok\ntasks:\n  - { id: t, tool: shell, inputs: { argv: [echo, hi], env: { GREETING: yo, path: lower-case-is-another-variable } } }\n"),
            Map::new(),
        )
        .await
        .unwrap();
    assert_eq!(run.wait().await.unwrap().status, RunStatus::Succeeded);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_a_reference_produces_are_refused_when_the_task_runs() {
    let store = TestStore::sqlite().await;
    let rt = runtime(&store).await;
    let run = rt
        .submit(
            &plan("name: r\ntasks:\n  - { id: a, tool: test:echo, inputs: { env: { LD_PRELOAD: /tmp/evil.so } } }\n  - { id: b, tool: shell, depends_on: [a], inputs: { argv: [echo, hi], env: \"${tasks.a.outputs.env}\" } }\n"),
            Map::new(),
        )
        .await
        .unwrap();
    let error = failure_of_b(&run).await;
    assert!(
        error.contains("LD_PRELOAD") && error.contains("may not be set"),
        "{error}"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_the_policy_does_not_allow_are_refused_however_they_are_named() {
    let store = TestStore::sqlite().await;
    let rt = runtime(&store).await;
    for argv0 in ["sh", "/bin/sh", "./echo", "../echo"] {
        let problems = refused(
            &rt,
            &format!("name: p\ntasks:\n  - {{ id: t, tool: shell, inputs: {{ argv: ['{argv0}', -c, id] }} }}\n"),
        )
        .await;
        assert_eq!(problems.len(), 1, "{argv0}: {problems:?}");
        assert!(problems[0].contains("command"), "{argv0}: {problems:?}");
    }
    // A program named by a reference is checked when the task runs.
    let run = rt
        .submit(
            &plan("name: late\ntasks:\n  - { id: a, tool: test:echo, inputs: { prog: sh } }\n  - { id: b, tool: shell, depends_on: [a], inputs: { argv: [\"${tasks.a.outputs.prog}\", -c, 'echo escaped > escaped'] } }\n"),
            Map::new(),
        )
        .await
        .unwrap();
    let error = failure_of_b(&run).await;
    assert!(error.contains("not allowed"), "{error}");
    let ws = rt.store().run(run.id()).await.unwrap().workspace;
    assert!(!std::path::Path::new(&ws).join("escaped").exists());
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_paths_that_leave_the_workspace_or_hold_nul_are_refused_before_the_run() {
    let store = TestStore::sqlite().await;
    let rt = runtime(&store).await;
    for (path, why) in [
        ("/etc/passwd", "absolute"),
        ("../outside", "`..`"),
        ("a/../../outside", "`..`"),
        ("a\\u0000b", "NUL"),
    ] {
        let problems = refused(
            &rt,
            &format!("name: a\ntasks:\n  - {{ id: t, tool: shell, inputs: {{ argv: [echo, hi], artifacts: [\"{path}\"] }} }}\n"),
        )
        .await;
        assert_eq!(problems.len(), 1, "{path}: {problems:?}");
        assert!(problems[0].contains(why), "{path}: {problems:?}");
    }
    rt.shutdown().await;
}
