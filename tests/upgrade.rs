//! A store made by an earlier release opens with its data intact: the migrations since apply
//! to the rows it holds.

mod common;

use common::TestStore;
use nofx::RunId;

/// The store's migrations up to and including `last`, as an earlier release shipped them.
fn migrations_up_to(store: &TestStore, last: u32) -> tempfile::TempDir {
    let backend = if store.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let to = tempfile::TempDir::new().expect("temp dir");
    for entry in std::fs::read_dir(&from).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let version: u32 = name[..4].parse().expect("a numbered migration");
        if version <= last {
            std::fs::copy(&path, to.path().join(name)).expect("copy");
        }
    }
    to
}

/// Applies the migrations in `dir` to the store at `store.url`.
async fn migrate_with(store: &TestStore, dir: &std::path::Path) {
    let migrator = sqlx::migrate::Migrator::new(dir).await.expect("migrations");
    if store.is_postgres() {
        let pool = sqlx::PgPool::connect(&store.url).await.expect("connect");
        migrator.run(&pool).await.expect("old migrations");
        pool.close().await;
    } else {
        let url = format!("{}?mode=rwc", store.url);
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        migrator.run(&pool).await.expect("old migrations");
        pool.close().await;
    }
}

both_stores! {
    /// Runs stored with their plan in `runs` (before migration 0018) keep it after the
    /// upgrade, which moves it to `run_plans`.
    async fn plans_stored_before_run_plans_survive_the_upgrade(store) {
        let old = migrations_up_to(&store, 17);
        migrate_with(&store, old.path()).await;
        let id = RunId::new();
        let plan = r#"{"name":"old","tasks":[{"id":"a","tool":"test:echo"},{"id":"b","tool":"test:echo","depends_on":["a"]}]}"#;
        store
            .sql(&format!(
                "INSERT INTO runs (id, name, status, correlation_id, plan, inputs, workspace, \
                 created_at, finished_at, project) VALUES ('{id}', 'old', 'succeeded', \
                 'corr_1', '{plan}', '{{}}', '/nowhere', 1000, 2000, 'default')"
            ))
            .await;

        let s = nofx::store::Store::open(&store.url).await.expect("the upgrade applies");
        let run = s.run(id).await.expect("the run reads back");
        assert_eq!(run.name, "old");
        let tasks: Vec<&str> = run.plan.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(tasks, ["a", "b"]);
        let listed = s.runs(&[], 10).await.expect("runs");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].plan.tasks.len(), 2);
        s.close().await;
    }
}

both_stores! {
    /// A store the first release left (only its first migration), holding a run its process
    /// stopped midway, is migrated when a runtime opens it, and the run resumes from where it
    /// was: the finished task is not executed again, the next one reads its outputs, and the
    /// events go on from the last one stored.
    async fn an_unfinished_run_in_a_first_release_store_resumes_after_the_upgrade(store) {
        let old = migrations_up_to(&store, 1);
        migrate_with(&store, old.path()).await;
        let id = RunId::new();
        let ws = store.dir.path().join("old-workspace");
        std::fs::create_dir_all(&ws).unwrap();
        let plan = r#"{"name":"old","tasks":[{"id":"a","tool":"test:echo","inputs":{"x":41}},{"id":"b","tool":"test:echo","depends_on":["a"],"inputs":{"y":"${tasks.a.outputs.x}"}}]}"#;
        let rows = [
            format!(
                "INSERT INTO runs (id, name, status, correlation_id, plan, inputs, workspace, created_at, started_at) \
                 VALUES ('{id}', 'old', 'running', 'corr_old', '{plan}', '{{}}', '{}', 1000, 1001)",
                ws.display()
            ),
            format!(
                "INSERT INTO tasks (run_id, task_id, idx, tool, status, attempt, agent, outputs, started_at, finished_at) \
                 VALUES ('{id}', 'a', 0, 'test:echo', 'succeeded', 1, 'worker', '{{\"x\":41}}', 1002, 1003)"
            ),
            format!(
                "INSERT INTO tasks (run_id, task_id, idx, tool, status, attempt) \
                 VALUES ('{id}', 'b', 1, 'test:echo', 'ready', 0)"
            ),
            format!(
                "INSERT INTO events (run_id, seq, type, at, task_id, correlation_id, data) VALUES \
                 ('{id}', 1, 'run.created', 1000, NULL, 'corr_old', '{{\"name\":\"old\",\"tasks\":2,\"inputs\":{{}}}}'), \
                 ('{id}', 2, 'run.started', 1001, NULL, 'corr_old', '{{\"resumed\":false,\"tasks\":2}}'), \
                 ('{id}', 3, 'task.ready', 1001, 'a', 'corr_old', '{{}}'), \
                 ('{id}', 4, 'task.started', 1002, 'a', 'corr_old', '{{\"agent\":\"worker\",\"attempt\":1}}'), \
                 ('{id}', 5, 'task.succeeded', 1003, 'a', 'corr_old', '{{\"attempt\":1,\"agent\":\"worker\"}}'), \
                 ('{id}', 6, 'task.ready', 1003, 'b', 'corr_old', '{{}}')"
            ),
            // Its process is long gone (the lease expired decades ago).
            format!(
                "INSERT INTO leases (run_id, holder, host, pid, expires_at, token) \
                 VALUES ('{id}', 'gone', 'elsewhere', 1, 2000, 1)"
            ),
        ];
        for r in &rows {
            store.sql(r).await;
        }

        let rt = store.runtime().await;
        let (_, handle) = rt.resume(id).await.expect("the upgraded store's run resumes");
        let outcome = handle.wait().await.expect("it ends");
        assert_eq!(outcome.status, nofx::RunStatus::Succeeded, "{:?}", outcome.reason);
        let a = outcome.tasks.iter().find(|t| t.id.as_str() == "a").unwrap();
        let b = outcome.tasks.iter().find(|t| t.id.as_str() == "b").unwrap();
        assert_eq!(a.attempts, 1, "a is not executed again");
        assert_eq!(b.outputs.as_ref().unwrap()["y"], 41, "{:?}", b.outputs);
        let events = common::events(&rt, id).await;
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.seq as usize, i + 1, "no gap after the old events");
        }
        assert!(events.len() > 6);
        assert_eq!(events.last().unwrap().kind, nofx::EventType::RunSucceeded);
        rt.shutdown().await;
    }
}
