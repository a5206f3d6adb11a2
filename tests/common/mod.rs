//! Test helpers: a fresh store per test (a SQLite file, or a new Postgres database), and the
//! `both_stores!` macro that runs one test body against each.
#![allow(dead_code)]

pub mod llm;
#[cfg(feature = "server")]
pub mod server;

use nofx::plan::{Format, PlanSource};
use nofx::{Event, Runtime, RuntimeBuilder};
use std::time::Duration;
use tempfile::TempDir;

/// The Postgres server tests create their databases on.
pub fn postgres_server() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh store for one test, with its own data directory.
pub struct TestStore {
    pub url: String,
    pub dir: TempDir,
    pg: Option<String>,
}

impl TestStore {
    pub async fn sqlite() -> Self {
        let dir = TempDir::new().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("nofx.db").display());
        Self { url, dir, pg: None }
    }

    /// A new database on the Postgres server. Postgres tests never skip: set DATABASE_URL to
    /// a reachable server.
    pub async fn postgres() -> Self {
        use sqlx::Connection;
        let server = postgres_server();
        let name = format!("nofx_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&server).await.unwrap_or_else(|e| {
            panic!("Postgres tests need a server: cannot connect to {server} ({e}); set DATABASE_URL")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = &server[..server.rfind('/').expect("a database URL has a path")];
        Self {
            url: format!("{base}/{name}"),
            dir: TempDir::new().expect("temp dir"),
            pg: Some(name),
        }
    }

    pub fn builder(&self) -> RuntimeBuilder {
        Runtime::builder()
            .database_url(self.url.clone())
            .data_dir(self.dir.path().join("data"))
    }

    pub async fn runtime(&self) -> Runtime {
        self.builder().build().await.expect("runtime starts")
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// Runs one SQL statement on the store, from outside the runtime (another process, an
    /// operator, history from before the test).
    pub async fn sql(&self, text: &str) {
        sql_at(&self.url, text).await;
    }
}

/// A connection pool to the store at `url` (SQLite or Postgres), from outside the runtime.
async fn outside(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap()
}

/// Runs one SQL statement on the store at `url`.
pub async fn sql_at(url: &str, text: &str) {
    let pool = outside(url).await;
    sqlx::query(text).execute(&pool).await.unwrap();
    pool.close().await;
}

/// Stores model calls made before the test (by other processes, in earlier months), as rows
/// of the store's `model_calls` table.
pub async fn record_model_calls(url: &str, rows: &[nofx::store::ModelCallRow]) {
    let pool = outside(url).await;
    for r in rows {
        sqlx::query(
            "INSERT INTO model_calls (run_id, task_id, tool, agent, model, provider, \
             input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
             estimated_cost_micro_usd, cost_micro_usd, duration_ms, success, error_type, \
             correlation_id, at, project) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(r.run_id.clone())
        .bind(r.task_id.clone())
        .bind(r.tool.clone())
        .bind(r.agent.clone())
        .bind(r.model.clone())
        .bind(r.provider.clone())
        .bind(r.input_tokens)
        .bind(r.output_tokens)
        .bind(r.cache_read_tokens)
        .bind(r.cache_write_tokens)
        .bind(r.estimated_cost_micro_usd)
        .bind(r.cost_micro_usd)
        .bind(r.duration_ms)
        .bind(r.success)
        .bind(r.error_type.clone())
        .bind(r.correlation_id.clone())
        .bind(r.at)
        .bind(r.project.clone())
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(name) = self.pg.take() {
            let server = postgres_server();
            // Drop the database from a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&server).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut c)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Runs the body once on a SQLite file and once on a fresh Postgres database, as tests
/// `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! both_stores {
    ($(#[$m:meta])* async fn $name:ident($store:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn body($store: $crate::common::TestStore) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { body($crate::common::TestStore::sqlite().await).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { body($crate::common::TestStore::postgres().await).await }
        }
    };
}

pub fn plan(yaml: &str) -> PlanSource {
    PlanSource::parse(yaml, Format::Yaml, None).expect("test plan parses")
}

/// Every event of a run, read from the store.
pub async fn events(rt: &Runtime, run: nofx::RunId) -> Vec<Event> {
    rt.store().events(run, 0, 100_000).await.expect("events")
}

/// Waits (on the store, not a timer) until `cond` holds, polling every 20 ms, at most `limit`.
pub async fn until<F, Fut>(limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = std::time::Instant::now() + limit;
    while !cond().await {
        assert!(
            std::time::Instant::now() < end,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a condition on files a child process writes (not a timer).
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < end,
            "condition not reached within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether process `pid` still runs (a zombie waiting to be reaped does not).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

/// The first file called `name` under `dir`, depth first.
pub fn find(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// An example program of this crate (`cargo test` builds them beside the test binaries).
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let debug = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the test binary is in target/<profile>/deps");
    let path = debug.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is not built: cargo test builds the examples",
        path.display()
    );
    path
}

#[cfg(feature = "cli")]
/// The `nofx` binary in `dir`, with no store URL or provider settings from this environment.
pub fn nofx_cmd(dir: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_nofx"));
    c.current_dir(dir).env_remove("NOFX_DATABASE_URL");
    for var in [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
    ] {
        c.env_remove(var);
    }
    c
}

#[cfg(feature = "cli")]
/// Runs `nofx ARGS` in `dir` to the end.
pub fn nofx_out(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    nofx_cmd(dir).args(args).output().expect("nofx starts")
}

#[cfg(feature = "cli")]
/// Starts `nofx serve` as `cmd` gives it (its args include `serve`); the child and the base
/// URL it says it listens on. The rest of its stderr is drained.
pub fn serve_with(cmd: &mut std::process::Command) -> (std::process::Child, String) {
    let (child, base, _) = serve_logged(cmd);
    (child, base)
}

#[cfg(feature = "cli")]
/// [`serve_with`], keeping everything the server writes on stderr (its log) as it comes.
pub fn serve_logged(
    cmd: &mut std::process::Command,
) -> (
    std::process::Child,
    String,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("nofx serve starts");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("serve says where it listens").unwrap();
        log.lock().unwrap().push_str(&line);
        log.lock().unwrap().push('\n');
        if let Some(rest) = line.strip_prefix("nofx serving on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut l = kept.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    (child, base, log)
}
