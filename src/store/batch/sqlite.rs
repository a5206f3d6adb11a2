//! SQLite's group commit: a connection of its own that keeps one prepared statement per table
//! between commits, on a thread of its own. A commit is one message to that thread and one
//! answer back; the statements are shaped and bound there, not on the thread that asked. An
//! in-memory store's small commits run where they are asked for instead: there is no disk to
//! wait for, and no hop is cheaper than one. Such a commit never waits there for a lock: the
//! connection holding it may need the very thread that asked to finish its transaction (the
//! lease renewals' run on the actor thread), so a locked commit goes to the writer thread,
//! which waits.

use super::tables::{self, Cell, Step};
use super::Batch;
use crate::domain::RunId;
use crate::store::{DbError, StoreError};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{OpenFlags, OptionalExtension, TransactionBehavior};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Rows of an in-memory store's commit above which it goes to the writer thread (so a large
/// commit does not hold up the thread that asked).
const INLINE_ROWS: usize = 256;
/// Prepared statements kept (every table's insert and every single-row statement).
const STATEMENTS: usize = 64;
/// How long the writer thread waits for another connection of an in-memory store to end its
/// transaction (a file's connections wait as long through the busy timeout).
const LOCK_WAIT: Duration = Duration::from_secs(30);

impl rusqlite::ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Text(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Cell::Int(Some(v)) => ToSqlOutput::Owned(Value::Integer(*v)),
            Cell::Bool(Some(b)) => ToSqlOutput::Owned(Value::Integer(i64::from(*b))),
            Cell::Text(None) | Cell::Int(None) | Cell::Bool(None) => {
                ToSqlOutput::Owned(Value::Null)
            }
        })
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        Self(Box::new(e))
    }
}

fn failed(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::Query {
        what,
        source: e.into(),
    }
}

/// Why a commit did not happen.
enum Failure {
    /// Another connection of the in-memory database holds a lock it needs: nothing was
    /// written; try again once it is released.
    Locked,
    /// Anything else.
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// `failed(what)`, except that a shared-cache lock is [`Failure::Locked`].
fn or_locked(what: &'static str) -> impl FnOnce(rusqlite::Error) -> Failure {
    move |e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseLocked) => Failure::Locked,
        _ => Failure::Store(failed(what)(e)),
    }
}

/// The database the writer opens.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A file (already created and migrated).
    File(PathBuf),
    /// A shared-cache in-memory database, by the name its other connections opened it with.
    Memory(PathBuf),
}

/// The writer's connection with the text of each table's one-row insert.
struct Conn {
    db: rusqlite::Connection,
    inserts: HashMap<&'static str, String>,
    /// Whether SQLite checks each row's parent (`PRAGMA foreign_keys`).
    checks_parents: bool,
}

/// A commit for the writer thread, and where its answer goes.
struct Job {
    batch: Batch,
    fenced: Vec<(RunId, i64)>,
    proven: bool,
    holder: String,
    now: i64,
    reply: tokio::sync::oneshot::Sender<(Batch, HashSet<RunId>, Result<(), StoreError>)>,
}

#[derive(Default)]
struct State {
    conn: Option<Conn>,
    closed: bool,
}

/// The group-commit writer of a SQLite store (opened on first use).
pub(crate) struct SqliteWriter {
    target: Target,
    state: Arc<Mutex<State>>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SqliteWriter {
    pub(crate) fn new(target: Target) -> Self {
        Self {
            target,
            state: Arc::default(),
            jobs: Mutex::new(None),
        }
    }

    /// Writes `batch` in one transaction (see [`crate::store::Store::write_fenced`]).
    pub(crate) async fn write(
        &self,
        batch: &mut Batch,
        fenced: Vec<(RunId, i64)>,
        proven: bool,
        holder: &str,
        now: i64,
        stale: &mut HashSet<RunId>,
    ) -> Result<(), StoreError> {
        if matches!(self.target, Target::Memory(_)) && batch.len() <= INLINE_ROWS {
            let mut state = lock(&self.state);
            let conn = open(&mut state, &self.target)?;
            match commit(conn, batch, &fenced, proven, holder, now, stale) {
                Ok(()) => return Ok(()),
                Err(Failure::Store(e)) => return Err(e),
                // Held by another connection: the writer thread waits for it.
                Err(Failure::Locked) => {}
            }
        }
        let sender = self.sender()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            batch: std::mem::take(batch),
            fenced,
            proven,
            holder: holder.to_string(),
            now,
            reply,
        };
        if let Err(mpsc::SendError(job)) = sender.send(job) {
            *batch = job.batch;
            return Err(StoreError::Closed);
        }
        let (back, found, result) = answer.await.map_err(|_| StoreError::Closed)?;
        *batch = back;
        stale.extend(found);
        result.map_err(|e| self.named(e))
    }

    /// A full disk or a failing device, said with the file it stopped (the writes wait for
    /// the store to take them again).
    pub(crate) fn named(&self, e: StoreError) -> StoreError {
        match (e, &self.target) {
            (StoreError::Query { what, source }, Target::File(path)) if source.is_unavailable() => {
                StoreError::Query {
                    what,
                    source: DbError(Box::new(crate::store::Unavailable(format!(
                        "the SQLite store {} cannot take writes: {source}",
                        path.display()
                    )))),
                }
            }
            (e, _) => e,
        }
    }

    /// The writer thread's queue, started on first use.
    fn sender(&self) -> Result<mpsc::Sender<Job>, StoreError> {
        let mut jobs = lock(&self.jobs);
        if let Some(s) = jobs.as_ref() {
            return Ok(s.clone());
        }
        if lock(&self.state).closed {
            return Err(StoreError::Closed);
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let state = self.state.clone();
        let target = self.target.clone();
        std::thread::Builder::new()
            .name("nofx-sqlite-writer".into())
            .spawn(move || {
                // Ends when the store is closed or dropped (its sender goes).
                while let Ok(mut job) = rx.recv() {
                    let mut stale = HashSet::new();
                    let until = std::time::Instant::now() + LOCK_WAIT;
                    let result = loop {
                        let attempt = {
                            let mut state = lock(&state);
                            match open(&mut state, &target) {
                                Ok(conn) => commit(
                                    conn,
                                    &mut job.batch,
                                    &job.fenced,
                                    job.proven,
                                    &job.holder,
                                    job.now,
                                    &mut stale,
                                ),
                                Err(e) => Err(Failure::Store(e)),
                            }
                        };
                        match attempt {
                            Ok(()) => break Ok(()),
                            Err(Failure::Store(e)) => break Err(e),
                            Err(Failure::Locked) if std::time::Instant::now() < until => {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            Err(Failure::Locked) => {
                                break Err(StoreError::Query {
                                    what: "write batch",
                                    source: DbError(
                                        format!(
                                        "the database stayed locked by another connection for {}s",
                                        LOCK_WAIT.as_secs()
                                    )
                                        .into(),
                                    ),
                                })
                            }
                        }
                    };
                    let _ = job.reply.send((job.batch, stale, result));
                }
            })
            .map_err(|e| StoreError::Query {
                what: "start the writer thread",
                source: DbError(Box::new(e)),
            })?;
        *jobs = Some(tx.clone());
        Ok(tx)
    }

    /// Closes the connection; later writes fail with [`StoreError::Closed`].
    pub(crate) fn close(&self) {
        lock(&self.jobs).take();
        let mut state = lock(&self.state);
        state.closed = true;
        state.conn.take();
    }
}

/// The writer's connection, opened when there is none.
fn open<'a>(state: &'a mut State, target: &Target) -> Result<&'a mut Conn, StoreError> {
    if state.closed {
        return Err(StoreError::Closed);
    }
    if state.conn.is_none() {
        let open = failed("open the writer's connection");
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let db = match target {
            Target::File(path) => {
                let db = rusqlite::Connection::open_with_flags(path, flags).map_err(open)?;
                // As the store's other connections (the file is in WAL mode already): a sync
                // at each commit, waiting for another process's write rather than failing.
                db.pragma_update(None, "synchronous", "FULL")
                    .and_then(|()| db.busy_timeout(Duration::from_secs(30)))
                    .map_err(failed("set up the writer's connection"))?;
                db
            }
            Target::Memory(name) => rusqlite::Connection::open_with_flags(
                name,
                flags | OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE,
            )
            .map_err(open)?,
        };
        // A page cache of 16 MiB (SQLite's default is 2): a large run's tasks and events
        // stay in it between commits.
        db.pragma_update(None, "foreign_keys", "ON")
            .and_then(|()| db.pragma_update(None, "cache_size", -16384))
            .map_err(failed("set up the writer's connection"))?;
        db.set_prepared_statement_cache_capacity(STATEMENTS);
        state.conn = Some(Conn {
            db,
            inserts: HashMap::new(),
            checks_parents: true,
        });
    }
    Ok(state.conn.as_mut().expect("opened above"))
}

/// Writes `batch` in one transaction on `conn`. The rows of fenced runs whose lease no longer
/// names `holder` with its token are dropped first (for good) and their runs added to
/// `stale`; the check and the writes happen under one write lock. An in-memory store's
/// lock held by another connection is not waited for: [`Failure::Locked`], nothing written.
///
/// When `proven` (every row of the batch is a row of a fenced run), SQLite does not look up
/// each row's parent: the lease this transaction reads exists only while its run does (it is
/// deleted with the run, and this writer deletes no run), and a run's loops only go with it.
/// Any other batch is checked row by row.
fn commit(
    conn: &mut Conn,
    batch: &mut Batch,
    fenced: &[(RunId, i64)],
    proven: bool,
    holder: &str,
    now: i64,
    stale: &mut HashSet<RunId>,
) -> Result<(), Failure> {
    let Conn {
        db,
        inserts,
        checks_parents,
    } = conn;
    // Outside a transaction: SQLite ignores the pragma inside one.
    if *checks_parents == proven {
        db.pragma_update(None, "foreign_keys", if proven { "OFF" } else { "ON" })
            .map_err(or_locked("set foreign-key checks"))?;
        *checks_parents = !proven;
    }
    let tx = db
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(or_locked("begin write"))?;
    if !fenced.is_empty() {
        let mut read = tx
            .prepare_cached("SELECT holder, token FROM leases WHERE run_id = $1")
            .map_err(or_locked("check leases"))?;
        batch.fence(fenced, holder, stale, |run| {
            read.query_row([run.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(or_locked("check leases"))
        })?;
    }
    for step in tables::steps(batch, now) {
        match step {
            Step::Insert {
                head,
                tail,
                width,
                cells,
            } => {
                let sql = inserts
                    .entry(head)
                    .or_insert_with(|| tables::one_row(head, tail, width));
                let mut st = tx.prepare_cached(sql).map_err(or_locked("write batch"))?;
                for row in cells.chunks(width) {
                    st.execute(rusqlite::params_from_iter(row))
                        .map_err(or_locked("write batch"))?;
                }
            }
            Step::Single { sql, cells } => {
                tx.prepare_cached(sql)
                    .and_then(|mut st| st.execute(rusqlite::params_from_iter(&cells)))
                    .map_err(or_locked("write batch"))?;
            }
        }
    }
    tx.commit().map_err(or_locked("commit"))
}
