//! Fleet throughput: starts N `nofx serve` nodes on one Postgres database, submits R runs of a
//! fan-out plan (one root, W parallel `test:echo` tasks, one sink) spread over the nodes, and
//! reports tasks per second from the first submit to the last run's end.
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example fleet_bench -- --nodes 3 --runs 100 --width 100 \
//!     --database-url postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! Each invocation creates (and afterwards drops) a database of its own on that server.

#[path = "support/node.rs"]
mod node;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Args {
    nodes: usize,
    runs: usize,
    width: usize,
    url: String,
    nofx: String,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        nodes: 3,
        runs: 100,
        width: 100,
        url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
        nofx: "target/release/nofx".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag}: `{value}` is not a number"))
        };
        match flag.as_str() {
            "--nodes" => a.nodes = number()?,
            "--runs" => a.runs = number()?,
            "--width" => a.width = number()?,
            "--database-url" => a.url = value,
            "--nofx" => a.nofx = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    a.nofx = std::fs::canonicalize(&a.nofx)
        .map_err(|e| format!("{}: {e} (build it with cargo build --release)", a.nofx))?
        .display()
        .to_string();
    if a.nodes == 0 || a.runs == 0 || a.width == 0 {
        return Err("--nodes, --runs and --width must be at least 1".into());
    }
    Ok(a)
}

fn start_node(a: &Args, url: &str, dir: &std::path::Path) -> Result<(Child, String), String> {
    let mut cmd = Command::new(&a.nofx);
    cmd.current_dir(dir).env("NOFX_DATABASE_URL", url);
    node::start(cmd, &[])
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let a = args()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (url, scratch) = node::scratch_store(Some(&a.url), "nofx_fleet_bench", dir.path()).await?;
    let (admin, db) = scratch.ok_or("a Postgres server gives a database of its own")?;
    let key = node::create_key(&a.nofx, dir.path(), &url, "bench", "submit")?;
    let mut nodes = Vec::new();
    for _ in 0..a.nodes {
        nodes.push(start_node(&a, &url, dir.path())?);
    }
    // Let every node hear of the others.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut plan =
        String::from("name: fan\ntasks:\n  - { id: root, tool: test:echo, inputs: { x: 1 } }\n");
    for i in 0..a.width {
        plan.push_str(&format!(
            "  - {{ id: t{i}, tool: test:echo, depends_on: [root], inputs: {{ i: {i} }} }}\n"
        ));
    }
    let all: Vec<String> = (0..a.width).map(|i| format!("t{i}")).collect();
    plan.push_str(&format!(
        "  - {{ id: sink, tool: test:echo, depends_on: [{}], inputs: {{ done: true }} }}\n",
        all.join(", ")
    ));
    let http = reqwest::Client::new();
    let started = Instant::now();
    // Eight submitters at once, round-robin over the nodes.
    use futures::StreamExt;
    let submissions = futures::stream::iter(0..a.runs).map(|r| {
        let (http, key, plan) = (http.clone(), key.clone(), plan.clone());
        let base = nodes[r % nodes.len()].1.clone();
        async move {
            let resp = http
                .post(format!("{base}/runs"))
                .bearer_auth(&key)
                .header("content-type", "application/yaml")
                .body(plan)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
            v["id"]
                .as_str()
                .map(str::to_string)
                .ok_or(format!("submit failed: {v}"))
        }
    });
    let ids: Vec<Result<String, String>> = submissions.buffer_unordered(8).collect().await;
    for id in ids {
        id?;
    }
    let submitted = started.elapsed().as_secs_f64();
    let pool = sqlx::PgPool::connect(&url)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())?;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE status <> 'succeeded'")
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())?;
    pool.close().await;
    let tasks = a.runs * (a.width + 2);
    println!(
        "{{\"nodes\": {}, \"runs\": {}, \"tasksPerRun\": {}, \"submittedAfter\": {submitted:.3}, \"seconds\": {secs:.3}, \"tasksPerSecond\": {:.0}, \"failedRuns\": {failed}}}",
        a.nodes,
        a.runs,
        a.width + 2,
        tasks as f64 / secs
    );
    for (mut child, _) in nodes {
        let _ = child.kill();
        let _ = child.wait();
    }
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&admin)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
