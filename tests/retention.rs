//! Retention: a sweep deletes exactly what the policy says is past retention, on both
//! stores; `nofx gc` from the CLI.
#![cfg(feature = "cli")]

mod common;

use common::{events, plan};
use nofx::retention::{sweep, RetentionPolicy};
use nofx::store::{Blobs, ModelCallRow};
use nofx::{RunId, RunStatus, Runtime};
use std::time::Duration;

const DAY: i64 = 86_400_000;

/// A run that writes an artifact and a workspace file only a checkpoint refers to.
fn files(project: &str) -> String {
    format!(
        r#"
name: files
project: {project}
tasks:
  - id: write
    tool: shell
    inputs: {{ argv: [sh, -c, "echo kept > out.txt && echo only-in-workspace-{project} > scratch.txt && echo done"], artifacts: [out.txt] }}
  - {{ id: after, tool: test:echo, depends_on: [write], inputs: {{ x: 1 }} }}
"#
    )
}

fn policy() -> RetentionPolicy {
    RetentionPolicy::from_toml(
        "days = 30\nmax_checkpoints_per_run = 2\nartifact_grace_hours = 24\n[projects.short]\ndays = 1\n",
        "retention.toml",
    )
    .unwrap()
}

async fn finished(rt: &Runtime, project: &str) -> RunId {
    let run = rt
        .submit(&plan(&files(project)), Default::default())
        .await
        .unwrap();
    assert_eq!(run.wait().await.unwrap().status, RunStatus::Succeeded);
    run.id()
}

fn usage_row(run: RunId) -> ModelCallRow {
    ModelCallRow {
        run_id: Some(run.to_string()),
        task_id: Some("write".into()),
        tool: Some("llm:generate".into()),
        agent: None,
        model: "m".into(),
        provider: "p".into(),
        input_tokens: 10,
        output_tokens: 5,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        estimated_cost_micro_usd: 3,
        cost_micro_usd: 3,
        duration_ms: 1,
        success: true,
        error_type: None,
        correlation_id: "corr".into(),
        at: chrono::Utc::now().timestamp_millis(),
        project: Some("short".into()),
    }
}

both_stores! {
    async fn a_sweep_deletes_exactly_what_is_past_retention(store) {
        let rt = store.runtime().await;
        let data = rt.data_dir().to_path_buf();
        let blobs = Blobs::new(data.join("artifacts"));
        // `old` ends in a project kept 1 day, `recent` in one kept 30 days; both are swept two
        // days later. `waiting` has not finished: nothing of it goes.
        let old = finished(&rt, "short").await;
        let old_cp = rt.checkpoint(old, None).await.unwrap();
        let scratch = old_cp.manifest["scratch.txt"].as_str().unwrap().to_string();
        let recent = finished(&rt, "long").await;
        let mut cps = Vec::new();
        for n in 0..4 {
            cps.push(rt.checkpoint(recent, Some(format!("cp {n}"))).await.unwrap().id);
        }
        let waiting = rt
            .submit(&plan("name: w\nproject: short\ntasks:\n  - { id: a, tool: test:echo, gates: [{ kind: manual }] }\n"), Default::default())
            .await
            .unwrap();
        let w = waiting.id();
        let st = rt.store().clone();
        common::until(Duration::from_secs(10), || {
            let s = st.clone();
            async move { s.run(w).await.unwrap().status == RunStatus::Waiting }
        })
        .await;
        let orphan = blobs.put(b"written, never committed").await.unwrap();
        common::record_model_calls(&store.url, &[usage_row(old)]).await;

        let later = chrono::Utc::now().timestamp_millis() + 2 * DAY;
        let before_old = rt.store().run_rows(old).await.unwrap();
        let dry = sweep(rt.store(), &data, &policy(), true, later).await.unwrap();
        assert!(dry.dry_run);
        assert_eq!(dry.runs_pruned, 1);
        assert_eq!(dry.events, before_old.events);
        assert_eq!(dry.metrics, before_old.metrics);
        assert_eq!(dry.checkpoints_expired, 1);
        assert_eq!(dry.checkpoints_over_limit, 2);
        assert_eq!(dry.workspaces, 1);
        // The orphan, and the scratch file only the old run's checkpoint refers to.
        assert_eq!(dry.artifact_files, 2, "{dry:?}");
        assert_eq!(rt.store().run_rows(old).await.unwrap(), before_old, "a dry run deletes nothing");
        assert!(blobs.path_of(&orphan.hash).exists());

        let r = sweep(rt.store(), &data, &policy(), false, later).await.unwrap();
        assert_eq!(r, nofx::retention::GcReport { dry_run: false, ..dry.clone() });
        // Removed: the old run's events, metrics, checkpoint, workspace; the orphan blob and
        // the scratch file no checkpoint refers to any more.
        assert_eq!(rt.store().run_rows(old).await.unwrap(), Default::default());
        assert!(events(&rt, old).await.is_empty());
        assert!(!data.join("runs").join(old.to_string()).exists());
        assert!(!blobs.path_of(&orphan.hash).exists());
        assert!(!blobs.path_of(&scratch).exists());
        let again = sweep(rt.store(), &data, &policy(), false, later).await.unwrap();
        assert_eq!(again, nofx::retention::GcReport::default());
        // Kept: the old run's row, tasks and artifacts (and the artifact's file), usage rows.
        let o = nofx::runtime::Outcome::load(rt.store(), old).await.unwrap();
        assert_eq!(o.status, RunStatus::Succeeded);
        assert_eq!(o.tasks.len(), 2);
        let arts = rt.store().artifacts(old).await.unwrap();
        let out = arts.iter().find(|a| a.name == "out.txt").unwrap();
        assert!(blobs.path_of(&out.hash).exists());
        let usage = rt.store().model_calls(old).await.unwrap();
        assert_eq!(usage.len(), 1);
        // The recent run keeps everything but its two oldest checkpoints.
        assert!(!events(&rt, recent).await.is_empty());
        assert!(data.join("runs").join(recent.to_string()).exists());
        let left: Vec<_> = rt.store().checkpoints(recent).await.unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(left, cps[2..].to_vec());
        // The unfinished run keeps everything.
        assert!(!events(&rt, w).await.is_empty());
        assert_eq!(rt.store().run(w).await.unwrap().status, RunStatus::Waiting);
        // A sweep now (inside every grace period) finds nothing more.
        let now = chrono::Utc::now().timestamp_millis();
        let idle = sweep(rt.store(), &data, &policy(), false, now).await.unwrap();
        assert_eq!(idle, nofx::retention::GcReport::default());
        rt.shutdown().await;
    }
}

#[test]
fn bad_retention_files_name_file_line_and_key() {
    let err = RetentionPolicy::from_toml(
        "days = -1\nmax_checkpoints_per_run = 2\n[projects.a]\ndays = nan\n",
        "retention.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("retention.toml:1: `days` must be a number of 0 or more, got -1"),
        "{err}"
    );
    assert!(err.contains("retention.toml:4: `projects.a.days`"), "{err}");
    let err = RetentionPolicy::from_toml("dayz = 3\n", "retention.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("retention.toml:1:") && err.contains("dayz"),
        "{err}"
    );
    let err = RetentionPolicy::from_toml("sweep_every_minutes = 0\n", "r.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be a number above 0"), "{err}");
}

#[test]
fn the_cli_gc_reports_and_applies_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    // Runs are kept about a second.
    std::fs::write(
        dir.path().join("policies/retention.toml"),
        "days = 0.00001\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "name: t\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n",
    )
    .unwrap();
    let out = common::nofx_out(dir.path(), &["run", "p.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    std::thread::sleep(Duration::from_millis(1200));
    let out = common::nofx_out(dir.path(), &["gc", "--dry-run", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["dryRun"].as_bool(), v["runsPruned"].as_u64()),
        (Some(true), Some(1))
    );
    assert_eq!(v["workspaces"], 1, "{v}");
    let runs = dir.path().join(".nofx/runs");
    let workspace = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // With the default, relative `--data-dir .nofx`, the workspace goes with the run.
    let out = common::nofx_out(dir.path(), &["gc"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("pruned 1 finished run(s) past retention")
            && text.contains("1 workspaces"),
        "{text}"
    );
    assert!(!workspace.exists(), "the pruned run's workspace is deleted");
    // A workspace a pruned run left behind (an older sweep's leak) goes at the next sweep;
    // a directory that is not a run's stays.
    std::fs::create_dir_all(workspace.join("workspace")).unwrap();
    std::fs::write(workspace.join("workspace/left.txt"), "x").unwrap();
    std::fs::create_dir_all(runs.join("not-a-run")).unwrap();
    let out = common::nofx_out(dir.path(), &["gc", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["runsPruned"].as_u64(), v["workspaces"].as_u64()),
        (Some(0), Some(1)),
        "{v}"
    );
    assert!(!workspace.exists());
    assert!(runs.join("not-a-run").exists());
    std::fs::write(dir.path().join("policies/retention.toml"), "days = \"x\"\n").unwrap();
    let out = common::nofx_out(dir.path(), &["gc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("retention.toml:1"));
}
