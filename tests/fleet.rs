//! Several processes on one store: fencing tokens refuse an old owner's late writes, an owner
//! that cannot renew its leases stops its tasks, and a fleet of three `nofx serve` nodes on
//! Postgres finishes every run when one node is killed.
#![cfg(feature = "cli")]

mod common;

use common::{events, plan, until, TestStore};
use nofx::{EventType, RunId, RunStatus, Runtime, TaskStatus};
use std::collections::HashMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Raw SQL on the test store, standing in for another process (or a network partition).
async fn task_status(rt: &Runtime, run: RunId, task: &str) -> Option<TaskStatus> {
    rt.store()
        .tasks(run)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.task_id.as_str() == task)
        .map(|t| t.status)
}

/// Waits until the task's row says it is running.
async fn running(rt: &Runtime, run: RunId, task: &'static str) {
    until(Duration::from_secs(10), || {
        let rt = rt.clone();
        async move { task_status(&rt, run, task).await == Some(TaskStatus::Running) }
    })
    .await;
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

both_stores! {
    async fn a_late_write_from_an_old_owner_is_refused_by_its_fencing_token(store) {
        let rt = store.runtime().await;
        let log = store.dir.path().join("exec.log");
        let src = format!(
            "name: f\ntasks:\n  - {{ id: slow, tool: shell, inputs: {{ argv: [sh, -c, \"echo slow >> {0}; sleep 1.5\"] }} }}\n  - {{ id: next, tool: shell, depends_on: [slow], inputs: {{ argv: [sh, -c, \"echo next >> {0}\"] }} }}\n",
            log.display()
        );
        let run = rt.submit(&plan(&src), Default::default()).await.unwrap();
        let id = run.id();
        running(&rt, id, "slow").await;
        // Another process takes the run over (as after this one's lease expired).
        store.sql(&format!("UPDATE leases SET expires_at = 0 WHERE run_id = '{id}'")).await;
        let until = chrono::Utc::now().timestamp_millis() + 60_000;
        store.sql(&format!(
            "UPDATE leases SET holder = 'other-node', host = 'elsewhere', pid = 1, \
             token = token + 1, expires_at = {until} WHERE run_id = '{id}'"
        )).await;
        let lease = rt.store().lease(id).await.unwrap().unwrap();
        assert_eq!((lease.holder.as_str(), lease.token), ("other-node", 2));
        // The old owner's result arrives late: it is dropped, and the old owner stops.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(task_status(&rt, id, "slow").await, Some(TaskStatus::Running));
        assert!(!events(&rt, id).await.iter().any(|e| e.kind == EventType::TaskSucceeded));
        assert!(rt.active_runs().await.unwrap().is_empty(), "the old owner stopped");
        assert_eq!(lines(&log), vec!["slow"], "nothing downstream ran");
        rt.shutdown().await;

        // The new owner (here: a runtime after the lease expired) finishes the run.
        store.sql(&format!("UPDATE leases SET expires_at = 0 WHERE run_id = '{id}'")).await;
        let rt = store.runtime().await;
        let (_, h) = rt.resume(id).await.unwrap();
        assert_eq!(h.wait().await.unwrap().status, RunStatus::Succeeded);
        assert_eq!(lines(&log), vec!["slow", "slow", "next"]);
        assert_eq!(rt.store().lease(id).await.unwrap().unwrap().token, 3);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn an_owner_that_cannot_renew_within_half_the_ttl_stops_its_tasks(store) {
        let rt = store.builder().lease_ttl(Duration::from_secs(2)).build().await.unwrap();
        let log = store.dir.path().join("exec.log");
        let src = format!(
            "name: r\ntasks:\n  - {{ id: long, tool: shell, inputs: {{ argv: [sh, -c, \"echo start >> {0}; sleep 4; echo end >> {0}\"] }} }}\n",
            log.display()
        );
        let run = rt.submit(&plan(&src), Default::default()).await.unwrap();
        let id = run.id();
        running(&rt, id, "long").await;
        // The store stops answering this process's lease renewals for 2.5 s.
        let hold = tokio::spawn({
            let url = store.url.clone();
            let pg = store.is_postgres();
            async move {
                if pg {
                    let pool = sqlx::PgPool::connect(&url).await.unwrap();
                    let mut tx = pool.begin().await.unwrap();
                    sqlx::query("LOCK TABLE leases IN ACCESS EXCLUSIVE MODE").execute(&mut *tx).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(2500)).await;
                    tx.rollback().await.unwrap();
                } else {
                    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                    let mut conn = pool.acquire().await.unwrap();
                    sqlx::query("BEGIN EXCLUSIVE").execute(&mut *conn).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(2500)).await;
                    sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
                }
            }
        });
        hold.await.unwrap();
        assert!(rt.active_runs().await.unwrap().is_empty(), "its runs were stopped");
        // The task was stopped before it could finish (it would have written `end` at 4 s).
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(lines(&log), vec!["start"]);
        // Claimed again (its lease is still this process's), it runs the task again.
        let (_, h) = rt.resume(id).await.unwrap();
        assert_eq!(h.wait().await.unwrap().status, RunStatus::Succeeded);
        assert_eq!(lines(&log), vec!["start", "start", "end"]);
        rt.shutdown().await;
    }
}

/// A `nofx serve` node of the fleet; its base URL.
fn start_node(dir: &Path, url: &str) -> (Child, String) {
    common::serve_with(common::nofx_cmd(dir).env("NOFX_DATABASE_URL", url).args([
        "--lease-ttl",
        "2",
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--grace",
        "0",
    ]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_three_nodes_finishes_every_run_when_one_is_killed() {
    let store = TestStore::postgres().await;
    let dir = store.dir.path().to_path_buf();
    std::fs::create_dir(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("policies/tools.toml"),
        "[commands]\nallow = [\"*\"]\n",
    )
    .unwrap();
    let key = {
        let out = common::nofx_cmd(&dir)
            .env("NOFX_DATABASE_URL", &store.url)
            .args([
                "keys",
                "create",
                "--project",
                "fleet",
                "--scope",
                "submit,shell",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap()
            .to_string()
    };
    let mut nodes: Vec<(Child, String)> = (0..3).map(|_| start_node(&dir, &store.url)).collect();
    let log = dir.join("exec.log");
    // Each task logs run, task and attempt: the log counts executions.
    let task = |id: &str, dep: &str| {
        format!(
            "  - {{ id: {id}, tool: shell, {dep}inputs: {{ argv: [sh, -c, \"echo $NOFX_RUN_ID {id} $NOFX_ATTEMPT >> {}; sleep 1\"] }} }}\n",
            log.display()
        )
    };
    let src = format!(
        "name: chain\ntasks:\n{}{}{}",
        task("a", ""),
        task("b", "depends_on: [a], "),
        task("c", "depends_on: [b], ")
    );
    // Every node has heard of the others (their heartbeats run every second).
    let rt = store.runtime().await;
    until(Duration::from_secs(20), || {
        let rt = rt.clone();
        async move { rt.store().nodes().await.unwrap().len() == 3 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = common::nofx_cmd(&dir)
        .env("NOFX_DATABASE_URL", &store.url)
        .args(["--lease-ttl", "2", "nodes", "ls", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = doc["nodes"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(
        listed.iter().all(|n| n["live"] == true && n["load"] == 0),
        "{doc}"
    );
    let http = reqwest::Client::new();
    let mut runs = Vec::new();
    for _ in 0..12 {
        let r = http
            .post(format!("{}/runs", nodes[0].1))
            .bearer_auth(&key)
            .header("content-type", "application/yaml")
            .body(src.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
        let v: serde_json::Value = r.json().await.unwrap();
        runs.push(v["id"].as_str().unwrap().parse::<RunId>().unwrap());
    }
    // Wait until every node executes runs, then kill one (SIGKILL) mid-run.
    let node_ids: Vec<String> = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let leases = rt.store().live_leases().await.unwrap();
            let mut holders: Vec<String> = leases.iter().map(|l| l.holder.clone()).collect();
            holders.sort();
            holders.dedup();
            if holders.len() == 3 {
                break holders;
            }
            assert!(
                Instant::now() < deadline,
                "the runs were not spread over three nodes"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let victim = nodes.remove(1);
    let victim_id = node_ids
        .iter()
        .find(|h| h.starts_with(&format!("{}:", victim.0.id())))
        .unwrap()
        .clone();
    let orphaned: Vec<RunId> = rt
        .store()
        .live_leases()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.holder == victim_id)
        .map(|l| l.run_id.parse().unwrap())
        .collect();
    assert!(!orphaned.is_empty());
    let out = common::nofx_cmd(&dir)
        .env("NOFX_DATABASE_URL", &store.url)
        .args(["--lease-ttl", "2", "nodes", "ls", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let held: usize = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["leases"].as_array().unwrap().len())
        .sum();
    assert!(held >= 3, "{doc}");
    let mut victim = victim.0;
    victim.kill().unwrap();
    let killed = chrono::Utc::now().timestamp_millis();
    victim.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    for run in &runs {
        loop {
            let status = rt.store().run(*run).await.unwrap().status;
            if status.is_terminal() {
                assert_eq!(status, RunStatus::Succeeded, "run {run}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "run {run} did not finish after the kill"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // No succeeded task ran again; at most the task in flight at the kill ran twice a run.
    let mut executions: HashMap<(String, String), usize> = HashMap::new();
    for l in lines(&log) {
        let mut f = l.split_whitespace();
        let (run, task) = (f.next().unwrap().to_string(), f.next().unwrap().to_string());
        *executions.entry((run, task)).or_default() += 1;
    }
    let mut takeover_ms = Vec::new();
    for run in &runs {
        let evs = events(&rt, *run).await;
        let mut twice = 0;
        for t in ["a", "b", "c"] {
            let n = executions
                .get(&(run.to_string(), t.to_string()))
                .copied()
                .unwrap_or(0);
            let succeeded = evs
                .iter()
                .filter(|e| {
                    e.kind == EventType::TaskSucceeded
                        && e.task_id.as_ref().is_some_and(|k| k.as_str() == t)
                })
                .count();
            assert_eq!(succeeded, 1, "run {run} task {t} succeeded once");
            assert!((1..=2).contains(&n), "run {run} task {t} ran {n} times");
            twice += usize::from(n == 2);
        }
        assert!(twice <= 1, "run {run}: {twice} tasks ran twice");
        if orphaned.contains(run) {
            if let Some(e) = evs
                .iter()
                .find(|e| e.kind == EventType::RunStarted && e.at.timestamp_millis() > killed)
            {
                takeover_ms.push(e.at.timestamp_millis() - killed);
            }
        }
    }
    assert!(
        !takeover_ms.is_empty(),
        "the killed node's runs were taken over"
    );
    let worst = takeover_ms.iter().max().copied().unwrap_or(0);
    eprintln!("takeover after SIGKILL (lease TTL 2 s): {takeover_ms:?} ms");
    assert!(worst < 6_000, "takeover took {worst} ms");
    for (child, _) in &nodes {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    for (mut child, _) in nodes {
        let _ = child.wait();
    }
    rt.shutdown().await;
}
