//! Benchmark: runs generated plans of `test:echo` tasks through the full actor path and
//! reports throughput (submit to the run's end committed), task latency (ready → committed)
//! and peak memory as one JSON line.
//!
//! Shapes: `chain` (N in sequence), `fanout` (1 → N → 1), `layered` (N/100 layers of 100,
//! each layer depending on the whole previous one), `foreach` (a root listing N-3 items, a
//! task that decomposes into one subtask per item, a sink: the fan-out made at run time),
//! and `commit`: no plan, N one-row transactions in a loop through the store's group commit
//! (the same code the persistence actor calls, checking a lease as it does), the store's own
//! commit latency.
//!
//! `agent_loop`: one `agent` task whose model (a local OpenAI-compatible server that answers
//! at once) asks for one `test:echo` call a turn; it reports the loop's overhead per turn —
//! from one model request to the next: reading the answer, committing the turn and the
//! call's `started` row, running the call, committing its result, building the next
//! request.

use crate::domain::plan::{Plan, PlanSource, TaskSpec};
use crate::domain::{AgentSpec, Role, RunStatus};
use crate::runtime::{Runtime, RuntimeError};
use serde::Serialize;
use serde_json::Map;
use std::time::Instant;

/// Plan shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// N tasks in sequence.
    Chain,
    /// One root, N parallel tasks, one sink.
    Fanout,
    /// N/100 layers of 100 tasks, each depending on the whole previous layer.
    Layered,
    /// A root listing N-3 items, a `for_each` decomposition into one subtask per item, a sink.
    Foreach,
    /// No plan: N one-row transactions in a loop through the store's group commit (the
    /// store's own commit latency, which a chain's step can at best approach).
    Commit,
}

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchStore {
    /// In-memory SQLite.
    Memory,
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on a Postgres server.
    Postgres,
}

/// One benchmark's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Shape.
    pub shape: Shape,
    /// Tasks in the plan.
    pub tasks: usize,
    /// Store.
    pub store: BenchStore,
    /// Submit to outcome, in seconds.
    pub seconds: f64,
    /// Tasks per second.
    pub tasks_per_s: f64,
    /// Median task latency (ready → committed), ms.
    pub p50_ms: f64,
    /// 99th percentile task latency, ms.
    pub p99_ms: f64,
    /// Peak resident memory of the process, MB.
    pub peak_rss_mb: f64,
}

impl Report {
    /// The figures of `n` tasks in `seconds`, with their latencies (ms) in any order.
    fn of(shape: Shape, n: usize, store: BenchStore, seconds: f64, mut lat: Vec<f32>) -> Self {
        lat.sort_by(|a, b| a.total_cmp(b));
        Self {
            shape,
            tasks: n,
            store,
            seconds,
            tasks_per_s: n as f64 / seconds,
            p50_ms: percentile(&lat, 0.50),
            p99_ms: percentile(&lat, 0.99),
            peak_rss_mb: peak_rss_mb(),
        }
    }
}

/// A benchmark failure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad parameters.
    #[error("{0}")]
    Input(String),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The run did not succeed.
    #[error("benchmark run ended {status}: {reason}")]
    RunFailed {
        /// Status.
        status: RunStatus,
        /// Reason.
        reason: String,
    },
    /// Postgres setup failed.
    #[error("postgres setup: {0}")]
    Postgres(String),
}

fn echo(id: String, deps: Vec<String>) -> TaskSpec {
    TaskSpec {
        depends_on: deps,
        ..TaskSpec::new(id, "test:echo")
    }
}

/// The plan for a shape and size.
///
/// # Errors
/// Sizes the shape cannot take.
pub fn plan(shape: Shape, n: usize) -> Result<Plan, BenchError> {
    let tasks = match shape {
        Shape::Chain => {
            if n < 1 {
                return Err(BenchError::Input("--tasks must be at least 1".into()));
            }
            (0..n)
                .map(|i| {
                    echo(
                        format!("t{i}"),
                        if i == 0 {
                            vec![]
                        } else {
                            vec![format!("t{}", i - 1)]
                        },
                    )
                })
                .collect()
        }
        Shape::Fanout => {
            if n < 3 {
                return Err(BenchError::Input(
                    "fanout needs --tasks of at least 3 (root, fan, sink)".into(),
                ));
            }
            let mid = n - 2;
            let mut t = vec![echo("root".into(), vec![])];
            t.extend((0..mid).map(|i| echo(format!("f{i}"), vec!["root".into()])));
            t.push(echo(
                "sink".into(),
                (0..mid).map(|i| format!("f{i}")).collect(),
            ));
            t
        }
        Shape::Layered => {
            if n < 100 || n % 100 != 0 {
                return Err(BenchError::Input(
                    "layered needs --tasks as a multiple of 100".into(),
                ));
            }
            let layers = n / 100;
            let mut t = Vec::with_capacity(n);
            for l in 0..layers {
                let deps: Vec<String> = if l == 0 {
                    vec![]
                } else {
                    (0..100).map(|j| format!("l{}_{j}", l - 1)).collect()
                };
                for j in 0..100 {
                    t.push(echo(format!("l{l}_{j}"), deps.clone()));
                }
            }
            t
        }
        Shape::Foreach => {
            if n < 4 {
                return Err(BenchError::Input(
                    "foreach needs --tasks of at least 4 (root, fan, one item, sink)".into(),
                ));
            }
            let items: Vec<serde_json::Value> = (0..n - 3).map(serde_json::Value::from).collect();
            let mut root = echo("root".into(), vec![]);
            root.inputs
                .insert("items".into(), serde_json::Value::Array(items));
            let mut item = echo(String::new(), vec![]);
            item.inputs.insert("n".into(), "${item.n}".into());
            let mut fan = echo("fan".into(), vec![]);
            fan.tool = String::new();
            fan.decompose = Some(Box::new(crate::domain::plan::Decompose {
                subtasks: None,
                planner: None,
                goal: None,
                for_each: Some("${tasks.root.outputs.items}".into()),
                item: Some("n".into()),
                task: Some(Box::new(item)),
                merge: Some(crate::domain::plan::MergeSpec::Full {
                    kind: crate::domain::plan::Merge::List,
                    instructions: None,
                    output: Some("n".into()),
                }),
                on_subtask_failure: Default::default(),
                replan: None,
                max_subtasks: None,
            }));
            vec![root, fan, echo("sink".into(), vec!["fan".into()])]
        }
        Shape::Commit => {
            return Err(BenchError::Input(
                "the commit shape runs no plan (bench::run measures it)".into(),
            ))
        }
    };
    Ok(Plan {
        name: format!("bench-{shape:?}-{n}").to_lowercase(),
        inputs: Default::default(),
        tasks,
        timeout_s: None,
        project: None,
        checkpoints: None,
    })
}

fn percentile(sorted: &[f32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx.min(sorted.len() - 1)])
}

/// Peak resident set size of this process in MB (Linux `VmHWM`).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn pg_scratch(server_url: &str) -> Result<(String, String), BenchError> {
    use sqlx::Connection;
    let name = format!(
        "nofx_bench_{}_{}",
        std::process::id(),
        rand::random::<u32>()
    );
    let mut conn = sqlx::PgConnection::connect(server_url)
        .await
        .map_err(|e| BenchError::Postgres(e.to_string()))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(|e| BenchError::Postgres(e.to_string()))?;
    let base = match server_url.rfind('/') {
        Some(i)
            if server_url[..i].contains("://") && i > server_url.find("://").unwrap_or(0) + 2 =>
        {
            &server_url[..i]
        }
        _ => server_url,
    };
    Ok((format!("{base}/{name}"), name))
}

async fn pg_drop(server_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(server_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

/// A scratch directory for one benchmark (removed after it).
fn scratch_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "nofx-bench-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

/// The database URL of `store` (none: the in-memory store): a file in `tmp`, or a fresh
/// Postgres database made from `postgres_url`, whose server URL and name are returned to drop
/// it after.
async fn store_url(
    store: BenchStore,
    tmp: &std::path::Path,
    postgres_url: Option<&str>,
) -> Result<(Option<String>, Option<(String, String)>), BenchError> {
    Ok(match store {
        BenchStore::Memory => (None, None),
        BenchStore::Sqlite => (
            Some(format!("sqlite://{}", tmp.join("bench.db").display())),
            None,
        ),
        BenchStore::Postgres => {
            let server = postgres_url.ok_or_else(|| {
                BenchError::Input(
                    "--store postgres needs --database-url or NOFX_DATABASE_URL".into(),
                )
            })?;
            let (url, name) = pg_scratch(server).await?;
            (Some(url), Some((server.to_string(), name)))
        }
    })
}

/// `builder` on `store` (see [`store_url`]).
async fn with_store(
    builder: crate::RuntimeBuilder,
    store: BenchStore,
    tmp: &std::path::Path,
    postgres_url: Option<&str>,
) -> Result<(crate::RuntimeBuilder, Option<(String, String)>), BenchError> {
    let (url, scratch) = store_url(store, tmp, postgres_url).await?;
    let builder = match url {
        None => builder.memory_store(),
        Some(u) => builder.database_url(u),
    };
    Ok((builder, scratch))
}

/// Runs one benchmark. `postgres_url` names a server database to create a scratch database
/// from (needed for `BenchStore::Postgres`).
///
/// # Errors
/// Bad sizes, store setup, a failed run.
pub async fn run(
    shape: Shape,
    n: usize,
    store: BenchStore,
    postgres_url: Option<&str>,
) -> Result<Report, BenchError> {
    if shape == Shape::Commit {
        return commits(n, store, postgres_url).await;
    }
    let plan = plan(shape, n)?;
    let tmp = scratch_dir();
    let agents: Vec<AgentSpec> = (0..4)
        .map(|i| AgentSpec::new(format!("bench-{i}"), Role::Worker).with_limits(4096, None))
        .collect();
    // A for_each as wide as the run asks for is allowed.
    let limits = crate::domain::plan::Limits {
        max_for_each: (n as u32).max(1),
        max_tasks: (n as u32).max(crate::domain::plan::Limits::default().max_tasks),
        ..Default::default()
    };
    let builder = Runtime::builder()
        .data_dir(tmp.clone())
        .agents(agents)
        .limits(limits)
        .record_latencies(true);
    let (builder, scratch) = with_store(builder, store, &tmp, postgres_url).await?;
    let result = async {
        let rt = builder.build().await?;
        let src = PlanSource::from_plan(plan);
        let started = Instant::now();
        let handle = rt.submit(&src, Map::new()).await?;
        // The run's end, not its outcome: reading every task's row back is a query's cost,
        // not the runtime's.
        let (status, reason) = handle.wait_status().await?;
        let seconds = started.elapsed().as_secs_f64();
        let lat = rt.take_latencies(handle.id()).await.unwrap_or_default();
        rt.shutdown().await;
        if status != RunStatus::Succeeded {
            return Err(BenchError::RunFailed {
                status,
                reason: reason.unwrap_or_default(),
            });
        }
        Ok(Report::of(shape, n, store, seconds, lat))
    }
    .await;
    if let Some((server, name)) = scratch {
        pg_drop(&server, &name).await;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// `n` one-row transactions (an event each) in a loop through the store's group commit, each
/// checking the run's lease as a runtime's commits do: `tasks_per_s` is commits per second,
/// the latencies are a commit's.
async fn commits(
    n: usize,
    store: BenchStore,
    postgres_url: Option<&str>,
) -> Result<Report, BenchError> {
    use crate::domain::event::{payload, EventData};
    use crate::domain::{CorrelationId, RunId};
    use crate::store::{Batch, Fences, RunRecord, Store};
    if n < 1 {
        return Err(BenchError::Input("--tasks must be at least 1".into()));
    }
    let tmp = scratch_dir();
    std::fs::create_dir_all(&tmp)
        .map_err(|e| BenchError::Input(format!("cannot create {}: {e}", tmp.display())))?;
    let (url, scratch) = store_url(store, &tmp, postgres_url).await?;
    let opened = match url {
        None => Store::memory().await,
        Some(u) => Store::open(&u).await,
    };
    let result = async {
        let db = opened.map_err(RuntimeError::from)?;
        let run = RunId::new();
        let corr = CorrelationId::generate();
        let now = crate::domain::time::now_ms();
        let mut first = Batch::default();
        first.new_runs.push(RunRecord::started(
            run,
            "bench-commit",
            corr.clone(),
            tmp.display().to_string(),
            now,
        ));
        // Held as a runtime holds its runs: every commit checks the run's lease, as each of
        // a runtime's commits does.
        let holder = crate::store::LeaseHolder::this_process();
        first
            .new_leases
            .push((run, holder.clone(), now + 3_600_000));
        let mut stale = Default::default();
        db.write_fenced(&mut first, &Fences::default(), &mut stale)
            .await
            .map_err(RuntimeError::from)?;
        let fences = Fences {
            holder: holder.id,
            tokens: std::iter::once((run, 1)).collect(),
        };
        let data = EventData::TaskReady(payload::TaskReady {});
        let mut lat = Vec::with_capacity(n);
        let started = Instant::now();
        for seq in 1..=n as i64 {
            let mut batch = Batch::default();
            let at = crate::domain::time::now_ms();
            batch.events.push(crate::domain::PendingEvent::new(
                seq,
                at,
                run,
                None,
                corr.clone(),
                data.clone(),
            ));
            let t = Instant::now();
            db.write_fenced(&mut batch, &fences, &mut stale)
                .await
                .map_err(RuntimeError::from)?;
            lat.push(t.elapsed().as_secs_f32() * 1000.0);
        }
        let seconds = started.elapsed().as_secs_f64();
        db.close().await;
        Ok(Report::of(Shape::Commit, n, store, seconds, lat))
    }
    .await;
    if let Some((server, name)) = scratch {
        pg_drop(&server, &name).await;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// The figures of an agent loop's benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct LoopReport {
    /// Always `agent`.
    pub kind: &'static str,
    /// Model turns taken.
    pub turns: usize,
    /// Store.
    pub store: BenchStore,
    /// Submit to outcome, in seconds.
    pub seconds: f64,
    /// Median loop overhead per turn (one model request to the next), ms.
    pub turn_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub turn_p99_ms: f64,
    /// The slowest turn, ms.
    pub turn_max_ms: f64,
}

/// A zero-latency OpenAI-compatible model: until `turns - 1` turns were taken it asks for one
/// `test:echo` call, then it answers; it notes when each request arrives.
async fn instant_model(
    turns: usize,
) -> Result<(String, std::sync::Arc<std::sync::Mutex<Vec<Instant>>>), BenchError> {
    use axum::routing::post;
    use serde_json::{json, Value};
    let arrivals: std::sync::Arc<std::sync::Mutex<Vec<Instant>>> = Default::default();
    let seen = arrivals.clone();
    let answer = move |axum::Json(body): axum::Json<Value>| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Instant::now());
            let taken = body["messages"]
                .as_array()
                .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count());
            let message = if taken + 1 < turns {
                json!({"role": "assistant", "content": null, "tool_calls": [{"id": format!("call_{taken}"), "type": "function", "function": {"name": "test_echo", "arguments": format!("{{\"turn\": {taken}}}")}}]})
            } else {
                json!({"role": "assistant", "content": "done"})
            };
            axum::Json(json!({
                "model": "bench",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 10}
            }))
        }
    };
    let app = axum::Router::new().route("/v1/chat/completions", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| BenchError::Input(format!("cannot listen on 127.0.0.1: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| BenchError::Input(e.to_string()))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/v1"), arrivals))
}

/// Runs one agent loop of `turns` turns against a model that answers at once and reports
/// the loop's overhead per turn.
///
/// # Errors
/// Bad sizes, store setup, a failed run.
pub async fn agent_loop(
    turns: usize,
    store: BenchStore,
    postgres_url: Option<&str>,
) -> Result<LoopReport, BenchError> {
    if !(2..=1000).contains(&turns) {
        return Err(BenchError::Input(
            "--agent-turns must be from 2 to 1000".into(),
        ));
    }
    let (base, arrivals) = instant_model(turns).await?;
    let tmp = scratch_dir();
    let agent = AgentSpec::new("bench-agent", Role::Worker)
        .with_tools(["test:echo"])
        .with_max_turns(turns as u32);
    let models = crate::models::ModelsConfig::shipped()
        .api_key("openai", crate::models::ApiKey::new("bench"))
        .base_url("openai", base);
    let builder = Runtime::builder()
        .data_dir(tmp.clone())
        .agents(vec![agent])
        .models(models);
    let (builder, scratch) = with_store(builder, store, &tmp, postgres_url).await?;
    let result = async {
        let rt = builder.build().await?;
        let mut task = echo("loop".into(), Vec::new());
        task.tool = "agent".into();
        task.inputs
            .insert("prompt".into(), "Call test_echo until told to stop.".into());
        let plan = Plan {
            name: "bench-agent".into(),
            inputs: Default::default(),
            tasks: vec![task],
            timeout_s: None,
            project: None,
            checkpoints: None,
        };
        let started = Instant::now();
        let handle = rt.submit(&PlanSource::from_plan(plan), Map::new()).await?;
        let outcome = handle.wait().await?;
        let seconds = started.elapsed().as_secs_f64();
        rt.shutdown().await;
        if outcome.status != RunStatus::Succeeded {
            return Err(BenchError::RunFailed {
                status: outcome.status,
                reason: outcome.reason.unwrap_or_default(),
            });
        }
        let at = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut gaps: Vec<f32> = at
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f32() * 1000.0)
            .collect();
        gaps.sort_by(|a, b| a.total_cmp(b));
        Ok(LoopReport {
            kind: "agent",
            turns: at.len(),
            store,
            seconds,
            turn_p50_ms: percentile(&gaps, 0.50),
            turn_p99_ms: percentile(&gaps, 0.99),
            turn_max_ms: gaps.last().map_or(0.0, |g| f64::from(*g)),
        })
    }
    .await;
    if let Some((server, name)) = scratch {
        pg_drop(&server, &name).await;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    result
}
