//! Load on one node: waves of concurrent runs submitted over HTTP to one `nofx serve`, each
//! run a set of independent shell tasks that sleep, on agents whose concurrency and rates are
//! limited. For every wave it measures how long the runs sent at once wait for their 201
//! (`burst`), and while they execute the latencies of `GET /runs/{id}` (a run every 5 ms, in
//! turn) and of `POST /runs` (one more run every 500 ms) as p50 and p99, and the node's RSS
//! once the wave has ended; at the end it checks from the store's
//! metrics rows that no agent ever ran more tasks at once than its `max_concurrency` nor
//! started more in a second than its `rate` allows, that every run succeeded with all its
//! tasks, and that the RSS after the last wave is within 10% of the RSS after the first.
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example load                       # 3 waves of 1,000 runs of 10 tasks
//! cargo run --release --example load -- --minutes 30      # waves for 30 min, RSS every minute
//! cargo run --release --example load -- --database-url postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! Flags: `--runs N` per wave (1000), `--tasks N` per run (10), `--sleep-ms N` per task
//! (100), `--waves N` (3), `--minutes M` (waves until M minutes have passed, the RSS sampled
//! every minute; the check is then on the samples after the first wave), `--database-url URL`
//! (a database of its own is created on that server, and dropped after), `--nofx PATH`
//! (`target/release/nofx`). It prints one JSON line of figures and exits 1 when a check fails.

#[path = "support/node.rs"]
mod node;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    runs: usize,
    tasks: usize,
    sleep_ms: u64,
    waves: usize,
    minutes: Option<f64>,
    url: Option<String>,
    nofx: String,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        runs: 1000,
        tasks: 10,
        sleep_ms: 100,
        waves: 3,
        minutes: None,
        url: None,
        nofx: "target/release/nofx".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let count = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or(format!("{flag}: `{value}` is not a positive whole number"))
        };
        match flag.as_str() {
            "--runs" => a.runs = count()?,
            "--tasks" => a.tasks = count()?,
            "--sleep-ms" => a.sleep_ms = count()? as u64,
            "--waves" => a.waves = count()?,
            "--minutes" => {
                a.minutes = Some(
                    value
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v > 0.0)
                        .ok_or(format!("--minutes: `{value}` is not a positive number"))?,
                )
            }
            "--database-url" => a.url = Some(value),
            "--nofx" => a.nofx = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    a.nofx = std::fs::canonicalize(&a.nofx)
        .map_err(|e| format!("{}: {e} (build it with cargo build --release)", a.nofx))?
        .display()
        .to_string();
    Ok(a)
}

/// The agents: one bound by its concurrency, one by its rate, one by both.
const AGENTS: [(&str, &str, u32, Option<f64>); 3] = [
    ("lead", "coordinator", 8, None),
    ("builder", "specialist", 48, Some(100.0)),
    ("worker", "worker", 16, Some(120.0)),
];

fn plan(tasks: usize, sleep_ms: u64) -> String {
    let secs = sleep_ms as f64 / 1000.0;
    let mut p = String::from("name: load\ntasks:\n");
    for i in 0..tasks {
        p.push_str(&format!(
            "  - {{ id: t{i}, tool: shell, inputs: {{ argv: [\"sleep\", \"{secs}\"] }} }}\n"
        ));
    }
    p
}

fn rss_mb(pid: u32) -> Result<f64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read the node's memory: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .ok_or_else(|| "no VmRSS in /proc".to_string())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn latency(mut ms: Vec<f64>) -> Value {
    ms.sort_by(f64::total_cmp);
    json!({"n": ms.len(), "p50_ms": percentile(&ms, 0.5), "p99_ms": percentile(&ms, 0.99)})
}

#[tokio::main]
async fn main() {
    match load().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

struct Wave {
    ids: Vec<String>,
    /// The wave's runs, all sent at once: how long each waited for its 201.
    burst_ms: Vec<f64>,
    /// A run submitted now and then while the wave executes.
    post_ms: Vec<f64>,
    get_ms: Vec<f64>,
    seconds: f64,
}

/// Submits `text`; the new run's id and how long the 201 took.
async fn post(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    text: &str,
) -> Result<(String, f64), String> {
    let t = Instant::now();
    let r = http
        .post(format!("{url}/runs"))
        .bearer_auth(key)
        .header("content-type", "application/yaml")
        .body(text.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if r.status() != reqwest::StatusCode::CREATED {
        return Err(format!("POST /runs answered {}", r.status()));
    }
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    let id = v["id"].as_str().ok_or("no id in the answer")?.to_string();
    Ok((id, ms))
}

/// Time between two probe submissions while a wave executes.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// Time between two reads of a run while a wave executes.
const READ_EVERY: Duration = Duration::from_millis(5);

async fn wave(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    text: &str,
    runs: usize,
) -> Result<Wave, String> {
    let started = Instant::now();
    let mut posts = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (http, url, key, text) = (
            http.clone(),
            url.to_string(),
            key.to_string(),
            text.to_string(),
        );
        posts.push(tokio::spawn(
            async move { post(&http, &url, &key, &text).await },
        ));
    }
    let mut ids = Vec::with_capacity(runs);
    let mut burst_ms = Vec::with_capacity(runs);
    for p in posts {
        let (id, ms) = p.await.map_err(|e| e.to_string())??;
        ids.push(id);
        burst_ms.push(ms);
    }
    // Read runs while they execute, round robin, submitting one more now and then, until
    // every one has ended.
    let mut get_ms = Vec::new();
    let mut post_ms = Vec::new();
    let mut open: Vec<String> = ids.clone();
    let mut i = 0;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut next_probe = Instant::now();
    let mut reads = tokio::time::interval(READ_EVERY);
    while !open.is_empty() {
        reads.tick().await;
        if Instant::now() > deadline {
            return Err(format!("{} runs did not end within 30 minutes", open.len()));
        }
        if Instant::now() >= next_probe {
            next_probe += PROBE_EVERY;
            let (id, ms) = post(http, url, key, text).await?;
            post_ms.push(ms);
            open.push(id.clone());
            ids.push(id);
        }
        i = (i + 1) % open.len();
        let t = Instant::now();
        let r = http
            .get(format!("{url}/runs/{}", open[i]))
            .bearer_auth(key)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let v: Value = r.json().await.map_err(|e| e.to_string())?;
        get_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if !status.is_success() {
            return Err(format!("GET /runs/{} answered {status}", open[i]));
        }
        if matches!(
            v["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            open.swap_remove(i);
        }
    }
    Ok(Wave {
        ids,
        burst_ms,
        post_ms,
        get_ms,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn load() -> Result<bool, String> {
    let a = args()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = dir.path().to_path_buf();
    std::fs::create_dir_all(d.join("policies")).map_err(|e| e.to_string())?;
    std::fs::write(
        d.join("policies").join("tools.toml"),
        "[commands]\nallow = [\"sleep\"]\n",
    )
    .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(d.join("agents")).map_err(|e| e.to_string())?;
    for (id, role, max, rate) in AGENTS {
        let rate = rate.map(|r| format!("rate = {r}\n")).unwrap_or_default();
        std::fs::write(
            d.join("agents").join(format!("{id}.toml")),
            format!("id = \"{id}\"\nrole = \"{role}\"\ncapabilities = [\"shell\"]\nmax_concurrency = {max}\n{rate}"),
        )
        .map_err(|e| e.to_string())?;
    }
    let (store, admin) = node::scratch_store(a.url.as_deref(), "nofx_load", &d).await?;
    let result = drive(&a, &d, &store).await;
    if let Some((admin, db)) = admin {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(&admin)
            .await;
    }
    result
}

async fn drive(a: &Args, d: &std::path::Path, store: &str) -> Result<bool, String> {
    let key = node::create_key(&a.nofx, d, store, "load", "submit,shell")?;
    let mut cmd = Command::new(&a.nofx);
    cmd.current_dir(d)
        .env("NOFX_DATABASE_URL", store)
        .env("RUST_LOG", "error");
    let data = d.join("data").display().to_string();
    let (mut child, url) = node::start(cmd, &["--data-dir", &data])?;
    let pid = child.id();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| e.to_string())?;
    let text = plan(a.tasks, a.sleep_ms);
    eprintln!(
        "load: waves of {} runs of {} tasks ({} ms each) on {}",
        a.runs,
        a.tasks,
        a.sleep_ms,
        if a.url.is_some() {
            "Postgres"
        } else {
            "SQLite"
        }
    );
    let started = Instant::now();
    let samples: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    if a.minutes.is_some() {
        let samples = samples.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                if let (Ok(mb), Ok(mut s)) = (rss_mb(pid), samples.lock()) {
                    s.push((started.elapsed().as_secs_f64() / 60.0, mb));
                    eprintln!(
                        "load: {:.0} min, RSS {mb:.0} MB",
                        started.elapsed().as_secs_f64() / 60.0
                    );
                }
            }
        });
    }
    let mut waves = Vec::new();
    let mut all_ids = Vec::new();
    let mut bursts = Vec::new();
    let mut posts = Vec::new();
    let mut gets = Vec::new();
    loop {
        let w = wave(&http, &url, &key, &text, a.runs).await?;
        let rss = rss_mb(pid)?;
        eprintln!(
            "load: wave {} ended in {:.1}s, RSS {rss:.0} MB",
            waves.len() + 1,
            w.seconds
        );
        let accepted_s = w.burst_ms.iter().copied().fold(0.0, f64::max) / 1000.0;
        waves.push(
            json!({"seconds": w.seconds, "rss_mb": rss, "runs": w.ids.len(),
                          "burst": latency(w.burst_ms.clone()), "all_accepted_s": accepted_s,
                          "post": latency(w.post_ms.clone()), "get": latency(w.get_ms.clone())}),
        );
        bursts.extend(w.burst_ms);
        posts.extend(w.post_ms);
        gets.extend(w.get_ms);
        all_ids.extend(w.ids);
        let more = match a.minutes {
            Some(m) => started.elapsed().as_secs_f64() < m * 60.0,
            None => waves.len() < a.waves,
        };
        if !more {
            break;
        }
    }
    let checked = check(a, store, &all_ids).await;
    let _ = child.kill();
    let _ = child.wait();
    let (mut failures, limits) = checked?;
    let rss: Vec<f64> = match a.minutes {
        Some(_) => samples
            .lock()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|s| s.1)
            .collect(),
        None => waves.iter().filter_map(|w| w["rss_mb"].as_f64()).collect(),
    };
    // Against the first wave (in a timed soak, the first sample after it): the heap has
    // grown to its working size by then.
    let first_wave_s = waves[0]["seconds"].as_f64().unwrap_or(0.0);
    let baseline = match a.minutes {
        Some(_) => {
            rss.get(((first_wave_s / 60.0).ceil() as usize).min(rss.len().saturating_sub(1)))
        }
        None => rss.first(),
    }
    .copied();
    if let (Some(first), Some(last)) = (baseline, rss.last().copied()) {
        if last > first * 1.10 {
            failures.push(format!(
                "RSS grew from {first:.0} MB to {last:.0} MB (over 10%)"
            ));
        }
    }
    let figures = json!({
        "store": if a.url.is_some() { "postgres" } else { "sqlite" },
        "runs": all_ids.len(), "tasks_per_run": a.tasks, "sleep_ms": a.sleep_ms,
        "seconds": started.elapsed().as_secs_f64(),
        "waves": waves,
        "burst": latency(bursts), "post": latency(posts), "get": latency(gets),
        "rss_mb": rss, "agents": limits,
        "failures": failures,
    });
    println!("{figures}");
    for f in &failures {
        eprintln!("FAILED: {f}");
    }
    Ok(failures.is_empty())
}

/// Every run succeeded with all its tasks; per agent, the most tasks that ran at once and
/// started within one second, from the metrics rows, against its limits.
async fn check(a: &Args, store: &str, ids: &[String]) -> Result<(Vec<String>, Value), String> {
    let s = nofx::store::Store::open(store)
        .await
        .map_err(|e| e.to_string())?;
    let mut failures = Vec::new();
    let mut runs: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for id in ids {
        let run: nofx::RunId = id.parse().map_err(|_| format!("bad run id {id}"))?;
        let (status, reason) = s.run_status(run).await.map_err(|e| e.to_string())?;
        if status != nofx::RunStatus::Succeeded {
            failures.push(format!("run {id} ended {status:?} ({reason:?})"));
        }
        let metrics = s.metrics(run).await.map_err(|e| e.to_string())?;
        let done = metrics.iter().filter(|m| m.success).count();
        if done != a.tasks {
            failures.push(format!("run {id}: {done} of {} tasks succeeded", a.tasks));
        }
        for m in metrics {
            let agent = m.agent.as_deref().unwrap_or("?");
            let agent = AGENTS.iter().find(|x| x.0 == agent).map_or("?", |x| x.0);
            runs.entry(agent)
                .or_default()
                .push((m.at - m.duration_ms, m.at));
        }
    }
    let mut limits = serde_json::Map::new();
    for (agent, spans) in &mut runs {
        let Some(&(_, _, max, rate)) = AGENTS.iter().find(|x| x.0 == *agent) else {
            failures.push(format!(
                "{} attempts by an agent not configured",
                spans.len()
            ));
            continue;
        };
        // Most at once: +1 at a start, -1 at an end (an end before a start at the same ms).
        let mut edges: Vec<(i64, i32)> = spans
            .iter()
            .flat_map(|(from, to)| [(*from, 1), (*to, -1)])
            .collect();
        edges.sort();
        let (mut now, mut most) = (0i32, 0i32);
        for (_, d) in edges {
            now += d;
            most = most.max(now);
        }
        if most > max as i32 {
            failures.push(format!(
                "{agent} ran {most} tasks at once (max_concurrency {max})"
            ));
        }
        // Most starts within any one second.
        let mut starts: Vec<i64> = spans.iter().map(|s| s.0).collect();
        starts.sort();
        let mut most_per_s = 0;
        let mut lo = 0;
        for hi in 0..starts.len() {
            while starts[hi] - starts[lo] >= 1000 {
                lo += 1;
            }
            most_per_s = most_per_s.max(hi - lo + 1);
        }
        if let Some(r) = rate {
            // Governor's quota: one start every 1/rate s, a burst of one.
            let allowed = r.floor() as usize + 1;
            if most_per_s > allowed {
                failures.push(format!(
                    "{agent} started {most_per_s} tasks within a second (rate {r}/s)"
                ));
            }
        }
        limits.insert(
            agent.to_string(),
            json!({"attempts": spans.len(), "max_concurrency": max, "most_at_once": most,
                   "rate": rate, "most_started_in_1s": most_per_s}),
        );
    }
    s.close().await;
    Ok((failures, Value::Object(limits)))
}
