//! Online backup of a SQLite store: a consistent copy taken while runs execute (one read
//! transaction, so the copy is the store as of one commit), written beside its destination
//! and renamed into place only once whole and checked.

use super::{q, Db, DbError, Store, StoreError};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What a backup wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupReport {
    /// The copy.
    pub file: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Runs in the copy.
    pub runs: i64,
    /// When the copy was taken (RFC 3339 UTC): it holds every commit made before.
    pub at: String,
}

impl Store {
    /// Copies a SQLite store to `dest` while it is in use: the copy holds exactly what was
    /// committed when it started. `dest` must not exist; nothing is left at `dest` unless
    /// the copy is whole and passes SQLite's integrity check.
    ///
    /// # Errors
    /// [`StoreError::BadInput`] for a Postgres store (its own tools back it up), a `dest` that
    /// exists or whose directory does not; a query error when the copy fails.
    pub async fn backup_to(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        let Db::Sqlite(pool) = &self.0 else {
            return Err(StoreError::BadInput(
                "`nofx backup` copies a SQLite store; back a Postgres store up with its own tools (pg_dump, or pg_basebackup with WAL archiving)".into(),
            ));
        };
        let exists = || {
            StoreError::BadInput(format!(
                "{} exists; a backup never overwrites a file (name a new one)",
                dest.display()
            ))
        };
        if dest.exists() {
            return Err(exists());
        }
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(StoreError::BadInput(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let name = dest
            .file_name()
            .ok_or_else(|| StoreError::BadInput(format!("{} names no file", dest.display())))?;
        let mut partial = name.to_os_string();
        partial.push(format!(".partial-{}", std::process::id()));
        let partial = dir.join(partial);
        let _ = std::fs::remove_file(&partial);
        let at = crate::domain::time::rfc3339(crate::domain::time::now_ms());
        let io = |what: &'static str| {
            move |e: std::io::Error| StoreError::Query {
                what,
                source: DbError(Box::new(e)),
            }
        };
        let copied = async {
            // One read transaction: the copy is the store as of one commit, while the writer
            // goes on (WAL).
            sqlx::query("VACUUM INTO ?")
                .bind(partial.to_string_lossy().as_ref())
                .execute(pool)
                .await
                .map_err(q("copy the store"))?;
            let runs = check_copy(&partial).await?;
            std::fs::File::open(&partial)
                .and_then(|f| f.sync_all())
                .map_err(io("sync the copy"))?;
            // Never over a file made meanwhile: the name is taken only if still free.
            std::fs::hard_link(&partial, dest).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    exists()
                } else {
                    io("name the copy")(e)
                }
            })?;
            Ok(runs)
        }
        .await;
        // Whole and named, or failed: the partial file goes either way.
        let _ = std::fs::remove_file(&partial);
        let runs = copied?;
        let bytes = std::fs::metadata(dest).map_err(io("read the copy"))?.len();
        Ok(BackupReport {
            file: dest.to_path_buf(),
            bytes,
            runs,
            at,
        })
    }
}

/// Opens the copy on its own: SQLite's integrity check must pass; its runs are counted.
async fn check_copy(path: &Path) -> Result<i64, StoreError> {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(q("open the copy"))?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .map_err(q("check the copy"))?;
    if verdict != "ok" {
        return Err(StoreError::Corrupt {
            what: "backup copy",
            why: verdict,
        });
    }
    let runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs")
        .fetch_one(&mut conn)
        .await
        .map_err(q("count the copy's runs"))?;
    let _ = conn.close().await;
    Ok(runs)
}
