//! Store faults while runs execute. Postgres going away — every connection cut and new ones
//! refused, as while the server restarts (a TCP relay in front of it does that, so only this
//! test's connections are touched), or a node's connections terminated by the server — holds
//! the writes until the store answers again: the run ends succeeded, each task executed once,
//! events without a gap; meanwhile the API answers 503 with `Retry-After` and `/ready` says
//! not ready.
#![cfg(feature = "server")]

mod common;

use common::TestStore;
use nofx::{EventType, RunStatus, Runtime};
use serde_json::Map;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// A TCP relay to a server that can be cut (every relayed connection closed, new ones
/// refused) and mended; and that can lose the answer to one COMMIT (the server commits, the
/// client never hears so: its connection is closed first). It sees what clients send only
/// on connections without TLS.
struct Relay {
    addr: std::net::SocketAddr,
    down: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    lose_commit_answer: Arc<AtomicBool>,
    asked_status: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

/// A simple-protocol query message `COMMIT`.
const COMMIT_MESSAGE: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

impl Relay {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let relay = Self {
            addr,
            down: Arc::default(),
            refused: Arc::default(),
            lose_commit_answer: Arc::default(),
            asked_status: Arc::default(),
            cut,
        };
        let (down, refused) = (relay.down.clone(), relay.refused.clone());
        let (lose, asked) = (relay.lose_commit_answer.clone(), relay.asked_status.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if down.load(Ordering::SeqCst) {
                    refused.fetch_add(1, Ordering::SeqCst);
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let mut cuts = cuts.clone();
                cuts.borrow_and_update();
                let (lose, asked) = (lose.clone(), asked.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = pump(client, server, lose, asked) => {}
                        _ = cuts.changed() => {}
                    }
                    // Both ends close here.
                });
            }
        });
        relay
    }

    /// Closes every relayed connection and refuses new ones.
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn mend(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

/// Relays bytes both ways until either end closes. With `lose` set, the first COMMIT a
/// client sends is relayed and the server's answer to it is not: the connection is closed.
async fn pump(
    mut client: TcpStream,
    mut server: TcpStream,
    lose: Arc<AtomicBool>,
    asked: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut from_client, mut from_server) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut commit_sent = false;
    loop {
        tokio::select! {
            n = client.read(&mut from_client) => {
                let Ok(n) = n else { return };
                if n == 0 { return; }
                let sent = &from_client[..n];
                if sent.windows(11).any(|w| w == b"txid_status") {
                    asked.store(true, Ordering::SeqCst);
                }
                if sent.windows(COMMIT_MESSAGE.len()).any(|w| w == COMMIT_MESSAGE)
                    && lose.swap(false, Ordering::SeqCst)
                {
                    commit_sent = true;
                }
                if server.write_all(sent).await.is_err() { return; }
            }
            n = server.read(&mut from_server) => {
                let Ok(n) = n else { return };
                if n == 0 || commit_sent { return; }
                if client.write_all(&from_server[..n]).await.is_err() { return; }
            }
        }
    }
}

/// The store's URL with its server's address replaced by `addr`.
fn through(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
    format!("{scheme}://{}{addr}/{path}", user.unwrap_or_default())
}

fn server_addr(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split_once('/').unwrap().0;
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, a)| a)
        .to_string()
}

/// a → gate (waits for the file `go` in the workspace) → b → c.
const PLAN: &str = "name: outage\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: gate, tool: shell, depends_on: [a], inputs: { argv: [sh, -c, 'while [ ! -f go ]; do sleep 0.02; done; echo once >> ledger'] } }\n  - { id: b, tool: test:echo, depends_on: [gate] }\n  - { id: c, tool: test:echo, depends_on: [b] }\n";

/// A test database, a relay in front of its server, and a runtime reaching it through the
/// relay (`query` added to its URL) with leases of `ttl`.
async fn relayed(query: &str, ttl: Duration) -> (TestStore, Relay, Runtime) {
    let store = TestStore::postgres().await;
    let relay = Relay::start(server_addr(&store.url)).await;
    let rt = store
        .builder()
        .database_url(format!("{}{query}", through(&store.url, relay.addr)))
        .lease_ttl(ttl)
        .build()
        .await
        .unwrap();
    (store, relay, rt)
}

/// Submits [`PLAN`] to `rt` and waits until its `gate` task has started (read through
/// `direct`, which reaches the store without the relay): the run and its workspace.
async fn gate_started(rt: &Runtime, direct: &Runtime) -> (nofx::RunHandle, std::path::PathBuf) {
    let run = rt.submit(&common::plan(PLAN), Map::new()).await.unwrap();
    common::until(Duration::from_secs(30), || async {
        common::events(direct, run.id()).await.iter().any(|e| {
            e.kind == EventType::TaskStarted
                && e.task_id.as_ref().map(|t| t.as_str()) == Some("gate")
        })
    })
    .await;
    let workspace = direct.store().run(run.id()).await.unwrap().workspace;
    (run, workspace.into())
}

/// The run succeeded with every task executed once, and its events have no gap.
async fn assert_whole(direct: &Runtime, run: nofx::RunId, workspace: &std::path::Path) {
    let record = direct.store().run(run).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.reason);
    for t in direct.store().tasks(run).await.unwrap() {
        assert_eq!(t.attempt, 1, "task {} executed once: {t:?}", t.task_id);
    }
    let events = common::events(direct, run).await;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "events without a gap or a repeat");
    }
    let started = events
        .iter()
        .filter(|e| e.kind == EventType::TaskStarted)
        .count();
    assert_eq!(started, 4, "each task started once");
    assert_eq!(
        std::fs::read_to_string(workspace.join("ledger")).unwrap(),
        "once\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_holds_the_writes_and_the_run_goes_on_when_it_answers() {
    let (store, relay, rt) = relayed("", Duration::from_secs(15)).await;
    let direct = store.runtime().await;
    let (run, workspace) = gate_started(&rt, &direct).await;

    // The server goes away; the gate task ends meanwhile, and its result has nowhere to go.
    relay.cut();
    std::fs::write(workspace.join("go"), "").unwrap();
    // The writer knocks again and again (a restart takes seconds).
    common::until(Duration::from_secs(30), || async { relay.refused() >= 6 }).await;
    let mid = direct.store().tasks(run.id()).await.unwrap();
    let gate = mid.iter().find(|t| t.task_id.as_str() == "gate").unwrap();
    assert_ne!(
        gate.status,
        nofx::TaskStatus::Succeeded,
        "nothing reached the store"
    );
    relay.mend();

    let end = tokio::time::timeout(Duration::from_secs(60), run.wait())
        .await
        .expect("the run ends once the store answers")
        .unwrap();
    assert_eq!(end.status, RunStatus::Succeeded);
    assert_whole(&direct, run.id(), &workspace).await;
    rt.shutdown().await;
    direct.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_was_lost_is_not_written_twice() {
    // No TLS through the relay, so it sees the COMMIT; a long TTL, so the only COMMIT in
    // the window is the group commit of the gate task's result.
    let (store, relay, rt) = relayed("?sslmode=disable", Duration::from_secs(120)).await;
    let direct = store.runtime().await;
    let (run, workspace) = gate_started(&rt, &direct).await;
    relay.lose_commit_answer.store(true, Ordering::SeqCst);
    std::fs::write(workspace.join("go"), "").unwrap();
    let end = tokio::time::timeout(Duration::from_secs(60), run.wait())
        .await
        .expect("the run ends")
        .unwrap();
    assert!(
        !relay.lose_commit_answer.load(Ordering::SeqCst),
        "a COMMIT's answer was lost"
    );
    assert!(
        relay.asked_status.load(Ordering::SeqCst),
        "the writer asked what became of it"
    );
    assert_eq!(end.status, RunStatus::Succeeded);
    assert_whole(&direct, run.id(), &workspace).await;
    rt.shutdown().await;
    direct.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_terminates_are_opened_again_and_nothing_is_lost() {
    let store = TestStore::postgres().await;
    let rt = store.runtime().await;
    let (run, workspace) = gate_started(&rt, &rt).await;
    // Every connection to this test's database but the one asking.
    let db = store.url.rsplit('/').next().unwrap().to_string();
    let killed = terminate(&store.url, &db).await;
    assert!(killed >= 1, "the runtime's connections were there to end");
    std::fs::write(workspace.join("go"), "").unwrap();
    let end = tokio::time::timeout(Duration::from_secs(60), run.wait())
        .await
        .expect("the run ends")
        .unwrap();
    assert_eq!(end.status, RunStatus::Succeeded);
    // And again, between a task's end and its commit.
    assert_whole(&rt, run.id(), &workspace).await;
    rt.shutdown().await;
}

/// Terminates every other connection to database `db`; how many.
async fn terminate(url: &str, db: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
    )
    .bind(db)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_is_away_the_api_answers_503_with_retry_after_and_is_not_ready() {
    let (_store, relay, rt) = relayed("", Duration::from_secs(15)).await;
    let key = rt
        .store()
        .create_key("default", None, &nofx::store::Scope::ALL)
        .await
        .unwrap()
        .1;
    let run = rt
        .submit(
            &common::plan("name: one\ntasks:\n  - { id: a, tool: test:echo }\n"),
            Map::new(),
        )
        .await
        .unwrap();
    run.wait().await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(nofx::api::serve(
        rt.clone(),
        Default::default(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let key = key.clone();
        let url = format!("{base}{path}");
        async move { http.get(url).bearer_auth(key).send().await.unwrap() }
    };
    assert_eq!(get("/ready".into()).await.status(), 200);

    relay.cut();
    for path in ["/ready".to_string(), format!("/runs/{}", run.id())] {
        let r = get(path.clone()).await;
        assert_eq!(r.status(), 503, "{path}");
        assert_eq!(r.headers()["retry-after"], "2", "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        let text = body.to_string();
        assert!(
            !text.contains("127.0.0.1") && !text.contains("postgres"),
            "{text}"
        );
        if path != "/ready" {
            assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
        }
    }

    relay.mend();
    // Back: ready, and the run is read again (a connection the cut left broken in the pool
    // may fail one request with 503 first).
    common::until(Duration::from_secs(30), || async {
        get("/ready".into()).await.status() == 200
    })
    .await;
    common::until(Duration::from_secs(30), || async {
        get(format!("/runs/{}", run.id())).await.status() == 200
    })
    .await;
    let _ = stop.send(());
    rt.shutdown().await;
}

/// The workspace of the run whose gate task has said it started (a child process executes
/// it), once it has.
#[cfg(feature = "cli")]
fn started_workspace(data: &std::path::Path) -> std::path::PathBuf {
    common::wait_for(Duration::from_secs(30), || {
        common::find(data, "started").is_some()
    });
    let started = common::find(data, "started").unwrap();
    started.parent().unwrap().to_path_buf()
}

/// a → gate (says it started, waits for `go`, then runs `then`) → b.
#[cfg(feature = "cli")]
fn gate_plan(name: &str, then: &str) -> String {
    format!("name: {name}\ntasks:\n  - {{ id: a, tool: test:echo }}\n  - {{ id: gate, tool: shell, depends_on: [a], inputs: {{ argv: [sh, -c, 'touch started; while [ ! -f go ]; do sleep 0.02; done; echo once >> ledger{then}'] }} }}\n  - {{ id: b, tool: test:echo, depends_on: [gate] }}\n")
}

/// A small tmpfs mounted for one test (root only), unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// `None` where this process may not mount (then the test says so and skips, except
    /// under CI, whose machine can).
    fn mount(path: &std::path::Path, megabytes: u32) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(Self(path.to_path_buf()));
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (run the tests as root)"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        None
    }

    /// Writes `path` until the disk refuses more.
    fn fill(&self, path: &std::path::Path) {
        use std::io::Write;
        let mut f = std::fs::File::create(path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).and_then(|()| f.sync_data()).is_ok() {}
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[cfg(feature = "cli")]
#[test]
fn a_full_disk_interrupts_a_sqlite_run_with_a_clear_error_and_it_resumes_once_space_is_freed() {
    use std::io::Read;
    let tmp = tempfile::TempDir::new().unwrap();
    let Some(disk) = SmallDisk::mount(&tmp.path().join("disk"), 16) else {
        return;
    };
    let db = tmp.path().join("disk").join("nofx.db");
    let data = tmp.path().join("data");
    let plan_file = tmp.path().join("plan.yaml");
    // The gate task says it started, then waits for `go`; its 60 KB of output must reach
    // the store with its result.
    std::fs::write(
        &plan_file,
        gate_plan("full", "; head -c 61440 /dev/zero | tr \"\\\\0\" x"),
    )
    .unwrap();
    let nofx = |args: &[&str]| {
        let mut c = common::nofx_cmd(tmp.path());
        c.arg("--data-dir")
            .arg(&data)
            .arg("--database-url")
            .arg(format!("sqlite://{}", db.display()))
            .args(["--lease-ttl", "2"])
            .args(args);
        c
    };
    let mut child = nofx(&["run"])
        .arg(&plan_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let workspace = started_workspace(&data);
    disk.fill(&tmp.path().join("disk").join("filler"));
    std::fs::write(workspace.join("go"), "").unwrap();

    // The result cannot be written: the run stops, unfinished, saying which store and why.
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains(&db.display().to_string()),
        "names the store: {err}"
    );
    assert!(err.contains("full"), "says why: {err}");
    // Every line that says so (lease renewals too) says of which file.
    for line in err.lines().filter(|l| l.contains("disk is full")) {
        assert!(line.contains(&db.display().to_string()), "{line}");
    }
    assert!(err.contains("nofx resume"), "says how to go on: {err}");
    let run = err
        .split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .unwrap()
        .to_string();

    // Not corrupted: SQLite's own check passes on the full disk.
    let verdict: String = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::ConnectOptions;
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .read_only(true)
            .connect()
            .await
            .unwrap();
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut c)
            .await
            .unwrap()
    });
    assert_eq!(verdict, "ok");

    // Space freed: it resumes and ends; the gate ran at most once more.
    std::fs::remove_file(tmp.path().join("disk").join("filler")).unwrap();
    let out = nofx(&["resume", &run]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ledger = std::fs::read_to_string(workspace.join("ledger")).unwrap();
    assert!(matches!(ledger.lines().count(), 1 | 2), "{ledger}");
    let shown = nofx(&["runs", "show", &run, "--json"]).output().unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["status"], "succeeded", "{shown}");
}

#[cfg(feature = "cli")]
#[test]
fn a_backup_taken_while_a_run_executes_restores_and_the_run_resumes() {
    let tmp = tempfile::TempDir::new().unwrap();
    let data = tmp.path().join("data");
    let plan_file = tmp.path().join("plan.yaml");
    std::fs::write(&plan_file, gate_plan("kept", "")).unwrap();
    let nofx = |args: &[&str]| {
        let mut c = common::nofx_cmd(tmp.path());
        c.arg("--data-dir").arg(&data).args(args);
        c
    };
    let mut runner = nofx(&["run"])
        .arg(&plan_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let workspace = started_workspace(&data);

    // While the run executes.
    let copy = tmp.path().join("nofx-backup.db");
    let out = nofx(&["backup", "--json"]).arg(&copy).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["runs"], 1, "{report}");
    assert!(report["bytes"].as_u64().unwrap() > 0);
    assert!(report["at"].as_str().unwrap().ends_with('Z'), "{report}");
    assert_eq!(
        std::fs::metadata(&copy).unwrap().len(),
        report["bytes"].as_u64().unwrap()
    );

    // Never over a file; never into a directory that is not there; not for Postgres.
    let again = nofx(&["backup"]).arg(&copy).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    let nowhere = nofx(&["backup"])
        .arg(tmp.path().join("no").join("such.db"))
        .output()
        .unwrap();
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("not a directory"));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "nothing half-written: {leftovers:?}");

    // The store is lost with its process; the copy takes its place.
    runner.kill().unwrap();
    runner.wait().unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("nofx.db{suffix}")));
    }
    std::fs::copy(&copy, data.join("nofx.db")).unwrap();
    std::fs::write(workspace.join("go"), "").unwrap();
    let out = nofx(&["resume"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = nofx(&["runs", "ls", "--json"]).output().unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let runs = listed
        .as_array()
        .or_else(|| listed["runs"].as_array())
        .unwrap()
        .clone();
    assert_eq!(runs.len(), 1, "{listed}");
    assert_eq!(runs[0]["status"], "succeeded", "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_is_not_backed_up_by_nofx_and_says_what_does() {
    let store = TestStore::postgres().await;
    let rt = store.runtime().await;
    let err = rt
        .store()
        .backup_to(&store.dir.path().join("copy.db"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pg_dump"), "{err}");
    assert!(!store.dir.path().join("copy.db").exists());
    rt.shutdown().await;
}
