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
