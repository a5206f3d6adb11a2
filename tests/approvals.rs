//! Manual approval gates: a task's result waits for a person's decision, durably; on both
//! stores, through the library, another runtime on the same store, HTTP and the CLI.
#![cfg(feature = "cli")]

mod common;

use common::{events, plan, until};
use nofx::runtime::{Decision, Outcome};
use nofx::{EventType, RunId, RunStatus, Runtime, RuntimeError, TaskStatus};
use serde_json::json;
use std::time::Duration;

/// build → deploy (manual gate after a pattern gate) → notify.
fn gated(gate: &str) -> String {
    format!(
        r#"
name: release
tasks:
  - {{ id: build, tool: test:echo, inputs: {{ version: v1 }} }}
  - id: deploy
    tool: test:echo
    depends_on: [build]
    retry: {{ max: 2 }}
    inputs: {{ target: "prod-${{tasks.build.outputs.version}}" }}
    gates:
      - {{ kind: pattern, output: target, regex: "^prod-" }}
      - {gate}
  - {{ id: notify, tool: test:echo, depends_on: [deploy], inputs: {{ msg: "${{tasks.deploy.outputs.target}}" }} }}
"#
    )
}

async fn status_is(rt: &Runtime, run: RunId, want: RunStatus) {
    let store = rt.store().clone();
    until(Duration::from_secs(10), || {
        let s = store.clone();
        async move { s.run(run).await.unwrap().status == want }
    })
    .await;
}

fn task_status(o: &Outcome, id: &str) -> TaskStatus {
    o.tasks.iter().find(|t| t.id.as_str() == id).unwrap().status
}

both_stores! {
    async fn an_approved_task_goes_on_with_its_outputs_and_only_approvers_decide(store) {
        let rt = store.runtime().await;
        let run = rt.submit(&plan(&gated("{ kind: manual, approvers: [alice, bob] }")), Default::default()).await.unwrap();
        status_is(&rt, run.id(), RunStatus::Waiting).await;
        let o = Outcome::load(rt.store(), run.id()).await.unwrap();
        assert_eq!(task_status(&o, "deploy"), TaskStatus::Waiting);
        assert_eq!(task_status(&o, "notify"), TaskStatus::Pending);
        let evs = events(&rt, run.id()).await;
        let req = evs.iter().find(|e| e.kind == EventType::ApprovalRequested).unwrap();
        assert_eq!(req.data["approvers"], json!(["alice", "bob"]));
        assert_eq!(req.data["gate"], 2);
        assert_eq!(req.data["outputs"]["target"], "prod-v1");
        assert!(evs.iter().any(|e| e.kind == EventType::RunWaiting));
        // The policy's default checkpoints the run before the wait.
        let (st, id) = (rt.store().clone(), run.id());
        until(Duration::from_secs(10), || {
            let s = st.clone();
            async move { !s.checkpoints(id).await.unwrap().is_empty() }
        })
        .await;
        let cps = rt.store().checkpoints(run.id()).await.unwrap();
        assert_eq!(cps.len(), 1, "{cps:?}");
        assert_eq!(cps[0].step, 1);

        let err = run.approve("deploy", "mallory", None).await.unwrap_err();
        assert!(matches!(err, RuntimeError::NotApprover(_)), "{err}");
        assert_eq!(err.to_string(), "mallory may not decide on task `deploy`; its approvers: alice, bob");
        let err = run.approve("build", "alice", None).await.unwrap_err();
        assert!(matches!(err, RuntimeError::NotWaiting(_)), "{err}");
        let err = run.approve("nope", "alice", None).await.unwrap_err();
        assert!(matches!(err, RuntimeError::NoSuchTask(_)), "{err}");

        let w = run.approve("deploy", "alice", Some("ship it")).await.unwrap();
        assert_eq!((w.decision.as_deref(), w.decided_by.as_deref()), (Some("approve"), Some("alice")));
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded);
        let notify = out.tasks.iter().find(|t| t.id.as_str() == "notify").unwrap();
        assert_eq!(notify.outputs.as_ref().unwrap()["msg"], "prod-v1");
        let deploy = out.tasks.iter().find(|t| t.id.as_str() == "deploy").unwrap();
        assert_eq!(deploy.attempts, 1);
        let evs = events(&rt, run.id()).await;
        let dec = evs.iter().find(|e| e.kind == EventType::ApprovalDecided).unwrap();
        assert_eq!((dec.data["by"].as_str(), dec.data["reason"].as_str()), (Some("alice"), Some("ship it")));
        // Decided once: a second decision is refused.
        let err = run.reject("deploy", "bob", None).await.unwrap_err();
        assert!(err.to_string().contains("was already decided: approve by alice"), "{err}");
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_rejected_task_fails_without_a_retry_and_its_dependents_are_skipped(store) {
        let rt = store.runtime().await;
        let run = rt.submit(&plan(&gated("{ kind: manual }")), Default::default()).await.unwrap();
        status_is(&rt, run.id(), RunStatus::Waiting).await;
        // No approvers listed: anyone with a name may decide.
        run.reject("deploy", "carol", Some("not on a Friday")).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        let deploy = out.tasks.iter().find(|t| t.id.as_str() == "deploy").unwrap();
        assert_eq!(deploy.status, TaskStatus::Failed);
        assert_eq!(deploy.attempts, 1, "a rejection is not retried");
        assert_eq!(deploy.error.as_deref(), Some("rejected by carol: not on a Friday"));
        assert_eq!(task_status(&Outcome::load(rt.store(), run.id()).await.unwrap(), "notify"), TaskStatus::Skipped);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn the_timeout_decides_by_policy_and_the_wait_is_not_the_tasks_timeout(store) {
        let rt = store.runtime().await;
        // The task's own timeout (0.5 s) does not run while it waits 1 s for the default.
        let src = gated("{ kind: manual, approvers: [alice], timeout_s: 1, on_timeout: approve }")
            .replace("retry: { max: 2 }", "retry: { max: 2 }\n    timeout_s: 0.5");
        let run = rt.submit(&plan(&src), Default::default()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
        let w = rt.store().last_wait(run.id(), "deploy").await.unwrap().unwrap();
        assert_eq!((w.decision.as_deref(), w.decided_by.as_deref()), (Some("approve"), Some("timeout")));
        assert_eq!(w.reason.as_deref(), Some("no decision within 1s"));

        let run = rt.submit(&plan(&gated("{ kind: manual, timeout_s: 0.3 }")), Default::default()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        let deploy = out.tasks.iter().find(|t| t.id.as_str() == "deploy").unwrap();
        assert_eq!(deploy.error.as_deref(), Some("rejected by timeout: no decision within 0.3s"));
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_wait_survives_a_restart_and_a_decision_from_another_process_reaches_the_owner(store) {
        let rt = store.runtime().await;
        let run = rt.submit(&plan(&gated("{ kind: manual, approvers: [alice] }")), Default::default()).await.unwrap();
        let id = run.id();
        status_is(&rt, id, RunStatus::Waiting).await;
        rt.shutdown().await;

        // Nobody executes the run: the decision is recorded and applied on resume.
        let other = store.runtime().await;
        other.decide(id, "deploy", Decision { approve: true, by: "alice".into(), reason: None }).await.unwrap();
        other.shutdown().await;
        let rt = store.runtime().await;
        let (_, h) = rt.resume(id).await.unwrap();
        let out = h.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded);
        let build = out.tasks.iter().find(|t| t.id.as_str() == "build").unwrap();
        assert_eq!(build.attempts, 1, "nothing that succeeded ran again");

        // The owner is alive: a decision made by another runtime reaches it as a command.
        let run = rt.submit(&plan(&gated("{ kind: manual, approvers: [alice] }")), Default::default()).await.unwrap();
        status_is(&rt, run.id(), RunStatus::Waiting).await;
        let other = store.runtime().await;
        other.decide(run.id(), "deploy", Decision { approve: false, by: "alice".into(), reason: Some("no".into()) }).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        other.shutdown().await;

        // A deadline that passed while nobody owned the run decides at resume.
        let run = rt.submit(&plan(&gated("{ kind: manual, timeout_s: 0.5, on_timeout: approve }")), Default::default()).await.unwrap();
        let id = run.id();
        status_is(&rt, id, RunStatus::Waiting).await;
        rt.shutdown().await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let rt = store.runtime().await;
        let (_, h) = rt.resume(id).await.unwrap();
        assert_eq!(h.wait().await.unwrap().status, RunStatus::Succeeded);
        let w = rt.store().last_wait(id, "deploy").await.unwrap().unwrap();
        assert_eq!(w.decided_by.as_deref(), Some("timeout"));
        rt.shutdown().await;
    }
}

#[test]
fn bad_manual_gates_are_refused_at_validation() {
    let tools = nofx::tools::ToolRegistry::builtin();
    let agents = nofx::config::builtin_agents();
    let src = plan(
        "name: x\ntasks:\n  - id: a\n    tool: test:echo\n    gates:\n      - { kind: manual, timeout_s: 0 }\n      - { kind: manual, approvers: [\" \"] }\n",
    );
    let err = nofx::plan::validate(&src, &Default::default(), &tools, &agents)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("`timeout_s` must be above 0"), "{err}");
    assert!(err.contains("a task has at most one manual gate"), "{err}");
    let err = nofx::plan::PlanSource::parse(
        "name: x\ntasks:\n  - id: a\n    tool: test:echo\n    gates: [{ kind: manual, on_timeout: maybe }]\n",
        nofx::plan::Format::Yaml,
        Some("p.yaml"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("p.yaml") && err.contains("maybe"), "{err}");
}

#[test]
fn the_cli_approves_a_run_another_process_executes() {
    let dir = tempfile::tempdir().unwrap();
    let nofx = |args: &[&str]| common::nofx_out(dir.path(), args);
    std::fs::write(
        dir.path().join("p.yaml"),
        gated("{ kind: manual, approvers: [alice] }"),
    )
    .unwrap();
    let child = common::nofx_cmd(dir.path())
        .args(["run", "p.yaml", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the run to wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let run = loop {
        let out = nofx(&["runs", "ls", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if v["runs"][0]["status"] == "waiting" {
            break v["runs"][0]["id"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "the run never waited");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = nofx(&["runs", "show", &run]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("waiting for approval by alice"), "{shown}");
    let out = nofx(&["approve", &run, "deploy", "--as", "mallory"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mallory may not decide"));
    let out = nofx(&["reject", &run, "notify", "--as", "alice"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not waiting for approval"));
    let out = nofx(&[
        "approve", &run, "deploy", "--as", "alice", "--reason", "ok", "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (w["decision"].as_str(), w["decidedBy"].as_str()),
        (Some("approve"), Some("alice"))
    );
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("waiting deploy: approval by alice"), "{err}");
    assert!(err.contains("approved deploy by alice: ok"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "succeeded");
    let out = nofx(&["approve", &run, "deploy", "--as", "alice"]);
    assert_eq!(out.status.code(), Some(2));
}
