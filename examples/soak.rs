//! Crash-loop soak of a fleet: N `nofx serve` nodes on one Postgres database (or one node on
//! SQLite) under a steady load of runs, while a chaos loop SIGKILLs a random node every 5–20 s
//! and starts it again. Each run mixes shell tasks that append to a ledger, a retried task,
//! a pattern gate, a manual approval (answered by the load), automatic checkpoints and a
//! model call to a fake provider that fails one request in seven (429, 529, 500, malformed
//! JSON, answers cut off; examples/support/chaos_provider.rs). When
//! the time is up the load stops, every node is brought back, and once the runs have ended
//! the checker verifies:
//!
//! - every run the API accepted (201) ended `succeeded`, every task of it once in the store;
//! - the ledger: no task executed more often than its attempts plus one per kill;
//! - every run's events are gap-free (sequence 1..n);
//! - no lease is held by a node that is gone, past the TTL; no run is left `running`;
//! - no usage row for a model call the provider never saw.
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example soak -- --minutes 20 \
//!     --database-url postgres://postgres@127.0.0.1:5432/postgres
//! cargo run --release --example soak -- --minutes 20 --sqlite
//! ```
//!
//! It prints one JSON line of figures and exits 1 when a check fails. A Postgres soak creates
//! (and afterwards drops) a database of its own on that server.

#[path = "support/node.rs"]
mod node;

// Shared with the chaos test and the fake provider; each uses part of it.
#[allow(dead_code)]
#[path = "support/chaos_provider.rs"]
mod chaos;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    minutes: f64,
    nodes: usize,
    rate: f64,
    url: Option<String>,
    nofx: String,
    lease_ttl: f64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        minutes: 20.0,
        nodes: 3,
        rate: 2.0,
        url: Some("postgres://postgres@127.0.0.1:5432/postgres".into()),
        nofx: "target/release/nofx".into(),
        lease_ttl: 3.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--sqlite" {
            a.url = None;
            a.nodes = 1;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or(format!("{flag}: `{value}` is not a positive number"))
        };
        match flag.as_str() {
            "--minutes" => a.minutes = number()?,
            "--nodes" => a.nodes = number()? as usize,
            "--rate" => a.rate = number()?,
            "--lease-ttl" => a.lease_ttl = number()?,
            "--database-url" => a.url = Some(value),
            "--nofx" => a.nofx = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    a.nofx = std::fs::canonicalize(&a.nofx)
        .map_err(|e| format!("{}: {e} (build it with cargo build --release)", a.nofx))?
        .display()
        .to_string();
    if a.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    Ok(a)
}

/// The fleet: where each node's process and URL are, while it is up.
struct Fleet {
    nofx: String,
    /// The fake model provider's base URL.
    provider: String,
    dir: std::path::PathBuf,
    store: String,
    ttl: String,
    nodes: Vec<Option<(Child, String)>>,
}

impl Fleet {
    fn start(&mut self, i: usize) -> Result<(), String> {
        let mut cmd = Command::new(&self.nofx);
        cmd.current_dir(&self.dir)
            .env("NOFX_DATABASE_URL", &self.store)
            .env("OPENAI_BASE_URL", &self.provider)
            .env("RUST_LOG", "error");
        let data = self.dir.join(format!("node{i}"));
        let data = data.to_string_lossy();
        self.nodes[i] = Some(node::start(
            cmd,
            &["--lease-ttl", &self.ttl, "--data-dir", &data],
        )?);
        Ok(())
    }

    fn kill(&mut self, i: usize) {
        if let Some((mut child, _)) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flatten()
            .map(|(_, u)| u.clone())
            .collect()
    }
}

/// A small xorshift generator: the soak needs variety, not quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn plan(ledger: &str) -> String {
    let log = format!("echo \"$NOFX_IDEMPOTENCY_KEY $NOFX_ATTEMPT\" >> {ledger}");
    format!(
        "name: soak\ncheckpoints: {{ every: 2 }}\ntasks:\n\
  - {{ id: a, tool: shell, inputs: {{ argv: [sh, -c, '{log}; sleep 0.2'] }} }}\n\
  - {{ id: flaky, tool: shell, depends_on: [a], retry: {{ max: 2, backoff_ms: 50 }}, inputs: {{ argv: [sh, -c, '{log}; [ \"$NOFX_ATTEMPT\" -ge 2 ]'] }} }}\n\
  - {{ id: gated, tool: shell, depends_on: [a], inputs: {{ argv: [sh, -c, '{log}; sleep 0.3; echo ok'] }}, gates: [ {{ kind: pattern, output: stdout, regex: '^ok' }} ] }}\n\
  - {{ id: write, tool: llm:generate, depends_on: [a], retry: {{ max: 2, backoff_ms: 100 }}, inputs: {{ prompt: 'A line for the soak', max_tokens: 100 }} }}\n\
  - {{ id: approve, tool: shell, depends_on: [flaky, gated, write], inputs: {{ argv: [sh, -c, '{log}'] }}, gates: [ {{ kind: manual }} ] }}\n\
  - {{ id: last, tool: shell, depends_on: [approve], inputs: {{ argv: [sh, -c, '{log}; sleep 0.1'] }} }}\n"
    )
}

/// Tasks of the plan and the executions each makes without faults (`flaky` fails once).
const TASKS: [(&str, u64); 5] = [
    ("a", 1),
    ("flaky", 2),
    ("gated", 1),
    ("approve", 1),
    ("last", 1),
];

#[tokio::main]
async fn main() {
    match soak().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

async fn soak() -> Result<bool, String> {
    let a = args()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = dir.path().to_path_buf();
    std::fs::create_dir_all(d.join("policies")).map_err(|e| e.to_string())?;
    std::fs::write(
        d.join("policies").join("tools.toml"),
        "[commands]\nallow = [\"sh\"]\n",
    )
    .map_err(|e| e.to_string())?;
    let ledger = d.join("ledger").display().to_string();
    let (store, admin) = node::scratch_store(a.url.as_deref(), "nofx_soak", &d).await?;
    let key = node::create_key(&a.nofx, &d, &store, "soak", "submit,shell")?;
    let faults = chaos::Faults {
        rate_limited: 0.04,
        retry_after: Duration::from_millis(200),
        overloaded: 0.03,
        server_error: 0.03,
        malformed: 0.02,
        cut: 0.03,
        ..chaos::Faults::NONE
    };
    let provider = chaos::ChaosProvider::new(faults, u64::from(std::process::id()));
    let provider_url = provider.start(0).await.map_err(|e| e.to_string())?;
    let fleet = Arc::new(Mutex::new(Fleet {
        nofx: a.nofx.clone(),
        provider: provider_url,
        dir: d.clone(),
        store: store.clone(),
        ttl: a.lease_ttl.to_string(),
        nodes: (0..a.nodes).map(|_| None).collect(),
    }));
    for i in 0..a.nodes {
        fleet.lock().map_err(|e| e.to_string())?.start(i)?;
    }
    let urls = || fleet.lock().map(|f| f.urls()).unwrap_or_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(a.minutes * 60.0);
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut refused = 0u64;
    let mut kills = 0u64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let mut next_kill = Instant::now() + Duration::from_secs(5 + rng.below(16));
    let mut next_submit = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / a.rate);
    let text = plan(&ledger);
    eprintln!(
        "soak: {} node(s) on {}, {:.1} runs/s for {} min; a node is killed every 5–20 s",
        a.nodes,
        if a.url.is_some() {
            "Postgres"
        } else {
            "SQLite"
        },
        a.rate,
        a.minutes
    );
    let mut last_report = Instant::now();
    while Instant::now() < until {
        let now = Instant::now();
        if now >= next_kill {
            let i = rng.below(a.nodes as u64) as usize;
            let mut f = fleet.lock().map_err(|e| e.to_string())?;
            f.kill(i);
            kills += 1;
            f.start(i)?;
            next_kill = Instant::now() + Duration::from_secs(5 + rng.below(16));
        }
        if now >= next_submit {
            next_submit += gap;
            let live = urls();
            let url = &live[rng.below(live.len() as u64) as usize];
            let sent = http
                .post(format!("{url}/runs"))
                .bearer_auth(&key)
                .header("content-type", "application/yaml")
                .body(text.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                    let v: Value = r.json().await.map_err(|e| e.to_string())?;
                    if let Some(id) = v["id"].as_str() {
                        accepted.lock().map_err(|e| e.to_string())?.push(id.into());
                    }
                }
                // Killed mid-request, or the node is just starting: not accepted.
                _ => refused += 1,
            }
        }
        approve_waiting(&http, &urls(), &key).await;
        if last_report.elapsed() > Duration::from_secs(60) {
            last_report = Instant::now();
            eprintln!(
                "soak: {:.0}s, {} runs accepted, {kills} kills",
                started.elapsed().as_secs_f64(),
                accepted.lock().map(|v| v.len()).unwrap_or(0)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The load stops; every node is up; the runs finish.
    {
        let mut f = fleet.lock().map_err(|e| e.to_string())?;
        for i in 0..a.nodes {
            if f.nodes[i].is_none() {
                f.start(i)?;
            }
        }
    }
    let ids = accepted.lock().map_err(|e| e.to_string())?.clone();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&store)
        .await
        .map_err(|e| e.to_string())?;
    let drain_until = Instant::now() + Duration::from_secs(600);
    loop {
        approve_waiting(&http, &urls(), &key).await;
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())?;
        if open == 0 || Instant::now() > drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut report = check(&pool, &ids, &ledger, kills, a.lease_ttl).await?;
    // Model calls: a usage row per attempt the provider saw, but for the attempts in flight
    // in a node when it was killed.
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM model_calls")
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())?;
    let requests: u64 = provider.tally().values().sum();
    if rows as u64 > requests {
        if let Some(f) = report["failures"].as_array_mut() {
            f.push(json!(format!(
                "{rows} usage rows for {requests} model requests"
            )));
        }
    }
    report["modelRequests"] = json!(provider.tally());
    report["usageRows"] = json!(rows);
    pool.close().await;
    {
        let mut f = fleet.lock().map_err(|e| e.to_string())?;
        for i in 0..a.nodes {
            f.kill(i);
        }
    }
    if let Some((admin, db)) = admin {
        let _ = sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
            .execute(&admin)
            .await;
    }
    let ok = report["failures"].as_array().is_some_and(Vec::is_empty);
    report["store"] = json!(if a.url.is_some() {
        "postgres"
    } else {
        "sqlite"
    });
    report["nodes"] = json!(a.nodes);
    report["minutes"] = json!(a.minutes);
    report["submitsNotAccepted"] = json!(refused);
    println!("{report}");
    Ok(ok)
}

/// Approves every manual gate waiting in the soak's runs, on any live node.
async fn approve_waiting(http: &reqwest::Client, urls: &[String], key: &str) {
    let Some(url) = urls.first() else { return };
    let Ok(r) = http
        .get(format!("{url}/runs?status=waiting&limit=100"))
        .bearer_auth(key)
        .send()
        .await
    else {
        return;
    };
    let Ok(v) = r.json::<Value>().await else {
        return;
    };
    let runs = v["runs"].as_array().or_else(|| v.as_array()).cloned();
    for run in runs.unwrap_or_default() {
        let Some(id) = run["id"].as_str() else {
            continue;
        };
        let _ = http
            .post(format!("{url}/runs/{id}/tasks/approve/approval"))
            .bearer_auth(key)
            .json(&json!({"decision": "approve", "by": "soak"}))
            .send()
            .await;
    }
}

/// The checks; a JSON report with `failures` (empty when all hold).
async fn check(
    pool: &sqlx::AnyPool,
    accepted: &[String],
    ledger: &str,
    kills: u64,
    ttl: f64,
) -> Result<Value, String> {
    use sqlx::Row;
    let mut failures: Vec<String> = Vec::new();
    let q = |e: sqlx::Error| e.to_string();
    let mut statuses: HashMap<String, String> = HashMap::new();
    for r in sqlx::query("SELECT id, status FROM runs")
        .fetch_all(pool)
        .await
        .map_err(q)?
    {
        statuses.insert(r.try_get(0).map_err(q)?, r.try_get(1).map_err(q)?);
    }
    let mut succeeded = 0;
    for id in accepted {
        match statuses.get(id).map(String::as_str) {
            Some("succeeded") => succeeded += 1,
            other => failures.push(format!("run {id} accepted, ended {other:?}")),
        }
    }
    let mut tasks_ok = 0i64;
    for r in sqlx::query("SELECT run_id, task_id, status FROM tasks")
        .fetch_all(pool)
        .await
        .map_err(q)?
    {
        let (run, task, status): (String, String, String) = (
            r.try_get(0).map_err(q)?,
            r.try_get(1).map_err(q)?,
            r.try_get(2).map_err(q)?,
        );
        if status == "succeeded" {
            tasks_ok += 1;
        } else if accepted.contains(&run) {
            failures.push(format!("run {run} task {task} is {status}"));
        }
    }
    let gaps = sqlx::query(
        "SELECT run_id, COUNT(*), MAX(seq), MIN(seq) FROM events GROUP BY run_id \
         HAVING COUNT(*) <> MAX(seq) OR MIN(seq) <> 1",
    )
    .fetch_all(pool)
    .await
    .map_err(q)?;
    for g in gaps {
        let run: String = g.try_get(0).map_err(q)?;
        failures.push(format!("run {run}: its events have a gap"));
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis() as i64;
    let stale: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM leases WHERE holder IS NOT NULL AND holder <> '' \
         AND expires_at > 0 AND expires_at < {}",
        now_ms - (ttl * 1000.0) as i64
    ))
    .fetch_one(pool)
    .await
    .map_err(q)?;
    if stale > 0 {
        failures.push(format!("{stale} lease(s) held past their TTL"));
    }
    let running = statuses.values().filter(|s| *s == "running").count();
    if running > 0 {
        failures.push(format!("{running} run(s) left running"));
    }
    // The ledger: executions per task, against its attempts without faults plus one a kill.
    let text = std::fs::read_to_string(ledger).unwrap_or_default();
    let mut executions: HashMap<&str, u64> = HashMap::new();
    for line in text.lines() {
        if let Some((key, _attempt)) = line.rsplit_once(' ') {
            *executions.entry(key).or_default() += 1;
        }
    }
    let mut repeats = 0u64;
    let expected: HashMap<&str, u64> = TASKS.iter().copied().collect();
    for (key, n) in &executions {
        let base = expected
            .iter()
            .find(|(task, _)| key.ends_with(&format!("-{task}")))
            .map_or(1, |(_, b)| *b);
        let extra = n.saturating_sub(base);
        repeats += extra;
        if extra > kills {
            failures.push(format!("{key} executed {n} times with {kills} kills"));
        }
    }
    Ok(json!({
        "runsAccepted": accepted.len(),
        "runsSucceeded": succeeded,
        "tasksSucceeded": tasks_ok,
        "kills": kills,
        "executions": executions.values().sum::<u64>(),
        "repeatedExecutions": repeats,
        "failures": failures,
    }))
}
