//! The store: SQLite (embedded default, WAL) or Postgres, behind one type. All SQL lives in
//! this folder, one file per group of tables; the same queries serve both backends. Only the
//! persistence actor calls the write functions.

mod artifacts;
pub use artifacts::{find_artifact, ArtifactLookup};
mod backup;
pub use backup::BackupReport;
mod batch;
mod checkpoints;
mod commands;
mod decompositions;
mod events;
mod gc;
#[cfg(feature = "server")]
mod idempotency;
mod journal;
mod keys;
mod leases;
mod metrics;
mod nodes;
mod prps;
mod records;
mod runs;
mod sessions;
mod snapshots;
mod stats;
mod templates;
mod usage;
pub(crate) mod waits;

pub use crate::blobs::{BlobError, Blobs, StoredBlob};
pub(crate) use batch::{Batch, Fences};
pub use checkpoints::CheckpointRow;
pub(crate) use commands::CommandKind;
pub use decompositions::DecompositionRow;
pub use gc::{ExpiredRun, RunRows};
#[cfg(feature = "server")]
pub(crate) use idempotency::Claimed;
pub use journal::{
    CallRecord, CallStatus, LoopRecord, LoopStatus, Transcript, TranscriptLoop, TranscriptTurn,
    TurnRecord,
};
pub use keys::{key_hash, KeyRecord, Scope};
pub(crate) use leases::Claim;
pub use leases::{LeaseHolder, LeaseInfo};
pub use nodes::{LeaseRow, NodeRow};
pub use prps::PrpRow;
pub use records::{ArtifactRow, Lineage, MetricRow, RunRecord, RunUpdate, TaskRow};
pub use snapshots::SnapshotRow;
pub use stats::{Stats, DURATION_BUCKETS};
pub use templates::{CreateTemplateError, SHIPPED};
pub use usage::{
    parse_date, GroupBy, ModelCallRow, UsageBucket, UsageReport, UsageSummary, MAX_BUCKETS,
};
pub use waits::{QuestionWait, QuestionsOf, Settled, WaitRow};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is not one nofx understands.
    #[error("unsupported database URL `{0}` (expected sqlite://PATH or postgres://…)")]
    BadUrl(String),
    /// Could not open or reach the database.
    #[error("cannot open the {backend} store: {source}")]
    Open {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The cause.
        source: DbError,
    },
    /// Applying migrations failed.
    #[error("cannot apply {backend} migrations: {source}")]
    Migrate {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The cause.
        source: DbError,
    },
    /// A query failed.
    #[error("store query failed ({what}): {source}")]
    Query {
        /// Which operation.
        what: &'static str,
        /// The cause.
        source: DbError,
    },
    /// A stored value could not be read back.
    #[error("stored {what} is corrupt: {why}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it could not be decoded.
        why: String,
    },
    /// A write for a run whose lease another process has taken over (fencing).
    #[error(
        "run {0}: another process took its lease over; this process's late writes were dropped"
    )]
    Fenced(String),
    /// No run has this id.
    #[error("no run `{0}` in the store")]
    NoSuchRun(String),
    /// A time range that cannot be reported.
    #[error("{0}")]
    BadRange(String),
    /// No checkpoint has this id.
    #[error("no checkpoint `{0}` in the store")]
    NoSuchCheckpoint(String),
    /// A value given to the store is malformed.
    #[error("{0}")]
    BadInput(String),
    /// The runtime is shutting down and its store is closed.
    #[error("the store is closed: the runtime is shutting down")]
    Closed,
    /// Several runs start with this prefix.
    #[error("`{0}` matches several runs; give more of the id")]
    AmbiguousRun(String),
}

impl StoreError {
    /// Whether the store could not be reached or had no room, as opposed to refusing what
    /// was asked: the connection was refused, reset or timed out, the server is shutting
    /// down or restarting, its connections are used up, or the disk is full. Such a failure
    /// wrote nothing and passes by itself; trying the same thing again later is right
    /// (the API answers it with 503 and `Retry-After`).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Open { source, .. }
            | Self::Query { source, .. }
            | Self::Migrate { source, .. } => source.is_unavailable(),
            _ => false,
        }
    }
}

/// SQLSTATEs of a Postgres server that cannot serve now: connection exceptions (class 08),
/// shutdown and restart (57P01–57P03), too many connections, disk or memory full.
fn unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53000" | "53100" | "53200" | "53300"
        )
}

/// SQLite's result codes for a store without room or a failing device.
fn unavailable_sqlite(code: rusqlite::ErrorCode) -> bool {
    matches!(
        code,
        rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure
    )
}

impl DbError {
    fn is_unavailable(&self) -> bool {
        if let Some(e) = self.0.downcast_ref::<sqlx::Error>() {
            return match e {
                // A stream that ended mid-message (a server gone during the handshake
                // answers an SSLRequest with nothing) is a connection lost, as is an I/O error.
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(d) => {
                    let Some(code) = d.code() else {
                        return false;
                    };
                    if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                        code.parse::<i32>()
                            .is_ok_and(|n| unavailable_sqlite(rusqlite::ffi::Error::new(n).code))
                    } else {
                        unavailable_sqlstate(&code)
                    }
                }
                _ => false,
            };
        }
        if let Some(e) = self.0.downcast_ref::<rusqlite::Error>() {
            return e.sqlite_error_code().is_some_and(unavailable_sqlite);
        }
        self.0.downcast_ref::<Unavailable>().is_some()
    }
}

/// A store that cannot serve now, said in nofx's words (a commit whose outcome is not known
/// yet because its connection was lost; a SQLite file on a full disk, named).
#[derive(Debug)]
pub(crate) struct Unavailable(pub(crate) String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// Why a SQLite file cannot be opened for writing, when its directory or the file says so
/// (missing, read-only, no permission); `None` when both can be written.
fn unwritable(path: &Path) -> Option<Box<dyn std::error::Error + Send + Sync>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let why = |what: String, e: std::io::Error| Some(format!("{what} ({e})").into());
    if let Err(e) = std::fs::metadata(dir) {
        return why(
            format!(
                "{}: its directory {} cannot be reached",
                path.display(),
                dir.display()
            ),
            e,
        );
    }
    // SQLite writes its journal beside the file: the directory must take new files.
    let probe = dir.join(format!(".nofx-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => {
            return why(
                format!(
                    "{}: its directory {} cannot be written",
                    path.display(),
                    dir.display()
                ),
                e,
            )
        }
    }
    if path.exists() {
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(path) {
            return why(format!("{} cannot be written", path.display()), e);
        }
    }
    None
}

/// What the database driver said (its message; the driver's own types are not part of
/// nofx's API).
#[derive(Debug)]
pub struct DbError(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DbError {}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        Self(Box::new(e))
    }
}

impl From<sqlx::migrate::MigrateError> for DbError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self(Box::new(e))
    }
}

fn open_err(backend: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Open {
        backend,
        source: source.into(),
    }
}

pub(crate) fn q(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query {
        what,
        source: source.into(),
    }
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store(pub(crate) Db, pub(crate) std::sync::Arc<batch::Writer>);

/// The database behind a store.
#[derive(Clone)]
pub(crate) enum Db {
    /// SQLite (a file, or in memory).
    Sqlite(SqlitePool),
    /// Postgres.
    Postgres(PgPool),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pools' options hold the connection settings, password included: never shown.
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Runs `$body` with `$p` bound to the concrete pool, and `$begin` to the statement that opens
/// a write transaction (`BEGIN IMMEDIATE` on SQLite, so a second process waits for the lock
/// instead of failing half-way).
macro_rules! with_pool {
    ($store:expr, |$p:ident, $begin:ident| $body:expr) => {
        match &$store.0 {
            $crate::store::Db::Sqlite($p) => {
                #[allow(unused_variables)]
                let $begin: &'static str = "BEGIN IMMEDIATE";
                $body
            }
            $crate::store::Db::Postgres($p) => {
                #[allow(unused_variables)]
                let $begin: &'static str = "BEGIN";
                $body
            }
        }
    };
}
pub(crate) use with_pool;

/// Migrations recorded as applied in a SQLite store (0 before the first).
async fn sqlite_applied(pool: &SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// Opens the store a URL names (`sqlite://PATH`, `sqlite::memory:`, `postgres://…`) and
    /// applies migrations.
    ///
    /// # Errors
    /// An unsupported URL, an unreachable database or a failed migration.
    ///
    /// # Cancel safety
    /// Dropping the future may leave a migration half-applied only where the database itself
    /// allows it; sqlx applies each migration in its own transaction.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts =
                PgConnectOptions::from_str(url).map_err(|_| StoreError::BadUrl(url.into()))?;
            // One direct connection first: it fails fast and says why (refused, auth, no such
            // database), where the pool would only report a timeout.
            let probe = sqlx::ConnectOptions::connect(&opts)
                .await
                .map_err(open_err("postgres"))?;
            let _ = sqlx::Connection::close(probe).await;
            // A ping before each acquire: a connection the server ended (a restart, an
            // operator's pg_terminate_backend) is replaced, not handed to a read that would
            // fail with it. Reads are off the task path (the group commit has a connection
            // of its own), so the round trip costs a step nothing.
            let pool = PgPoolOptions::new()
                .test_before_acquire(true)
                .max_connections(8)
                // While the server is away the pool keeps trying to connect until this
                // passes: a request then gets its 503 (with Retry-After) within it.
                .acquire_timeout(Duration::from_secs(3))
                .connect_with(opts)
                .await
                .map_err(open_err("postgres"))?;
            let writer = batch::Writer::Postgres {
                pool: pool.clone(),
                conn: Default::default(),
            };
            Self(Db::Postgres(pool), std::sync::Arc::new(writer))
                .migrated()
                .await
        } else if url == "sqlite::memory:" || url == "memory" {
            Self::memory().await
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            Self::sqlite_file(Path::new(path)).await
        } else {
            Err(StoreError::BadUrl(url.into()))
        }
    }

    /// Opens (creating when missing) a SQLite file in WAL mode and applies migrations.
    ///
    /// # Errors
    /// When the file cannot be opened or migrated.
    pub async fn sqlite_file(path: &Path) -> Result<Self, StoreError> {
        Self::sqlite_file_at(path).await.map_err(|e| match e {
            StoreError::Open { backend, source } | StoreError::Migrate { backend, source } => {
                StoreError::Open {
                    backend,
                    source: DbError(
                        unwritable(path)
                            .unwrap_or_else(|| format!("{}: {source}", path.display()).into()),
                    ),
                }
            }
            other => other,
        })
    }

    async fn sqlite_file_at(path: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(open_err("sqlite"))?;
        let writer = batch::SqliteWriter::new(batch::Target::File(path.to_path_buf()));
        Self(
            Db::Sqlite(pool),
            std::sync::Arc::new(batch::Writer::Sqlite(writer)),
        )
        .migrated()
        .await
    }

    /// A private in-memory SQLite store, for tests and benchmarks.
    ///
    /// # Errors
    /// When SQLite cannot be initialised.
    pub async fn memory() -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(open_err("sqlite"))?
            .foreign_keys(true);
        // One connection that never closes (the database lives as long as one of its
        // connections), beside the group commit's own.
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await
            .map_err(open_err("sqlite"))?;
        let name = pool.connect_options().get_filename().to_path_buf();
        let writer = batch::SqliteWriter::new(batch::Target::Memory(name));
        Self(
            Db::Sqlite(pool),
            std::sync::Arc::new(batch::Writer::Sqlite(writer)),
        )
        .migrated()
        .await
    }

    async fn migrated(self) -> Result<Self, StoreError> {
        self.migrate().await?;
        Ok(self)
    }

    /// Applies pending migrations.
    ///
    /// # Errors
    /// When a migration fails.
    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        match &self.0 {
            Db::Sqlite(p) => {
                // Postgres migrations take an advisory lock; SQLite's take none, so processes
                // that open a new store file at the same moment apply the same migrations
                // and all but one collide ("table … already exists"). A collision while
                // another process made progress is tried again: its migrations are then
                // found applied and skipped.
                let mut attempt = 0;
                loop {
                    let before = sqlite_applied(p).await;
                    match SQLITE_MIGRATIONS.run(p).await {
                        Ok(()) => return Ok(()),
                        Err(_) if attempt < 50 && sqlite_applied(p).await > before => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(source) => {
                            return Err(StoreError::Migrate {
                                backend: "sqlite",
                                source: source.into(),
                            })
                        }
                    }
                }
            }
            Db::Postgres(p) => {
                POSTGRES_MIGRATIONS
                    .run(p)
                    .await
                    .map_err(|source| StoreError::Migrate {
                        backend: "postgres",
                        source: source.into(),
                    })
            }
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.0 {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// A round trip to the database, for health checks.
    ///
    /// # Errors
    /// When the database does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |p, _b| {
            sqlx::query("SELECT 1")
                .execute(p)
                .await
                .map_err(q("ping"))?;
        });
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.1.close().await;
        with_pool!(self, |p, _b| p.close().await)
    }
}

/// A value from outside as error messages show it: at most 40 characters.
pub(crate) fn shown(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

pub(crate) use crate::domain::time::now_ms;
