//! Group commit: many state changes from many runs written in one transaction. What each
//! table's statement is, and how a row binds to it, is said once for both backends in
//! `tables.rs`; `sqlite.rs` is SQLite's writer (a connection and thread of its own, one
//! prepared statement per table); Postgres writes one statement per table (its rows as
//! arrays, one a column) on a connection kept for the purpose.

mod sqlite;
mod tables;

pub(crate) use sqlite::{SqliteWriter, Target};
use tables::{Cell, Step};

use super::{q, ArtifactRow, MetricRow, RunRecord, RunUpdate, Store, StoreError, TaskRow};
use crate::domain::{PendingEvent, RunId};
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// The leases a writer holds: its holder id and, by run, the fencing token it was granted.
/// A write for one of these runs is kept only while the lease row still names this holder
/// with this token; otherwise another process owns the run now and the write is late.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fences {
    /// The writer's lease holder id.
    pub holder: String,
    /// Tokens by run.
    pub tokens: HashMap<RunId, i64>,
}

/// A group of writes committed together.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// New runs.
    pub new_runs: Vec<RunRecord>,
    /// Run status changes.
    pub run_updates: Vec<RunUpdate>,
    /// Task rows to insert or replace.
    pub tasks: Vec<TaskRow>,
    /// Events to append.
    pub events: Vec<PendingEvent>,
    /// Metrics rows.
    pub metrics: Vec<MetricRow>,
    /// Artifact rows.
    pub artifacts: Vec<ArtifactRow>,
    /// Model-call rows.
    pub model_calls: Vec<super::ModelCallRow>,
    /// Commands to record: (run, kind, reason).
    pub new_commands: Vec<(crate::domain::RunId, super::CommandKind, Option<String>)>,
    /// Command ids to mark handled.
    pub handled_commands: Vec<i64>,
    /// Templates a new run was made from: (owner project, template id); usage_count + 1.
    pub template_uses: Vec<(String, String)>,
    /// New checkpoints.
    pub checkpoints: Vec<super::CheckpointRow>,
    /// New waits (manual approvals, tool calls and questions waiting for a person).
    pub waits: Vec<super::WaitRow>,
    /// Answered questions (run, wait) whose event this batch carries.
    pub noted_waits: Vec<(RunId, crate::domain::WaitId)>,
    /// Leases of new runs, taken in the transaction that stores them: (run, holder, expiry).
    pub new_leases: Vec<(RunId, super::LeaseHolder, i64)>,
    /// Agent loops to insert or update.
    pub agent_loops: Vec<super::LoopRecord>,
    /// Agent turns to insert.
    pub agent_turns: Vec<super::TurnRecord>,
    /// Tool calls to insert or update.
    pub tool_calls: Vec<super::CallRecord>,
    /// Decompositions (and replans) of tasks.
    pub decompositions: Vec<super::DecompositionRow>,
    /// Workspace snapshots to insert, or to mark rolled back (the manifest of the first
    /// insert stands).
    pub snapshots: Vec<super::SnapshotRow>,
    /// Postgres: the transaction id of this batch's last COMMIT whose answer was lost with
    /// its connection. Before the batch is written again, the server says whether that
    /// transaction committed (then it is not written twice) or not.
    pub(crate) unsure_commit: Option<i64>,
}

impl Batch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.new_runs.is_empty()
            && self.run_updates.is_empty()
            && self.tasks.is_empty()
            && self.events.is_empty()
            && self.metrics.is_empty()
            && self.artifacts.is_empty()
            && self.model_calls.is_empty()
            && self.new_commands.is_empty()
            && self.handled_commands.is_empty()
            && self.template_uses.is_empty()
            && self.checkpoints.is_empty()
            && self.waits.is_empty()
            && self.noted_waits.is_empty()
            && self.new_leases.is_empty()
            && self.agent_loops.is_empty()
            && self.agent_turns.is_empty()
            && self.tool_calls.is_empty()
            && self.decompositions.is_empty()
            && self.snapshots.is_empty()
    }

    /// Number of rows it writes.
    pub fn len(&self) -> usize {
        self.new_runs.len()
            + self.run_updates.len()
            + self.tasks.len()
            + self.events.len()
            + self.metrics.len()
            + self.artifacts.len()
            + self.model_calls.len()
            + self.new_commands.len()
            + self.handled_commands.len()
            + self.template_uses.len()
            + self.checkpoints.len()
            + self.waits.len()
            + self.noted_waits.len()
            + self.new_leases.len()
            + self.agent_loops.len()
            + self.agent_turns.len()
            + self.tool_calls.len()
            + self.decompositions.len()
            + self.snapshots.len()
    }

    /// Moves every write of `other` into this batch.
    pub fn append(&mut self, mut other: Batch) {
        self.new_runs.append(&mut other.new_runs);
        self.run_updates.append(&mut other.run_updates);
        self.tasks.append(&mut other.tasks);
        self.events.append(&mut other.events);
        self.metrics.append(&mut other.metrics);
        self.artifacts.append(&mut other.artifacts);
        self.model_calls.append(&mut other.model_calls);
        self.new_commands.append(&mut other.new_commands);
        self.handled_commands.append(&mut other.handled_commands);
        self.template_uses.append(&mut other.template_uses);
        self.checkpoints.append(&mut other.checkpoints);
        self.waits.append(&mut other.waits);
        self.noted_waits.append(&mut other.noted_waits);
        self.new_leases.append(&mut other.new_leases);
        self.agent_loops.append(&mut other.agent_loops);
        self.agent_turns.append(&mut other.agent_turns);
        self.tool_calls.append(&mut other.tool_calls);
        self.decompositions.append(&mut other.decompositions);
        self.snapshots.append(&mut other.snapshots);
    }

    /// The runs whose existing rows this batch changes (not the runs it creates).
    pub(crate) fn runs_touched(&self) -> HashSet<RunId> {
        let new: HashSet<RunId> = self.new_runs.iter().map(|r| r.id).collect();
        let mut out = HashSet::new();
        out.extend(self.run_updates.iter().map(|u| u.id));
        out.extend(self.tasks.iter().map(|t| t.run_id));
        out.extend(self.events.iter().map(|e| e.run_id));
        out.extend(self.metrics.iter().map(|m| m.run_id));
        out.extend(self.artifacts.iter().map(|a| a.run_id));
        out.extend(self.waits.iter().map(|w| w.run_id));
        out.extend(self.noted_waits.iter().map(|(r, _)| *r));
        out.extend(self.agent_loops.iter().map(|l| l.run_id));
        out.extend(self.agent_turns.iter().map(|t| t.run_id));
        out.extend(self.tool_calls.iter().map(|c| c.run_id));
        out.extend(self.decompositions.iter().map(|d| d.run_id));
        out.extend(self.snapshots.iter().map(|s| s.run_id));
        out.retain(|r| !new.contains(r));
        out
    }

    /// Whether every row of the batch is a row of one of [`Batch::runs_touched`]: no new
    /// runs, leases, commands or checkpoints (rows whose run the writer does not fence).
    pub(crate) fn only_rows_of_runs_touched(&self) -> bool {
        self.new_runs.is_empty()
            && self.new_leases.is_empty()
            && self.new_commands.is_empty()
            && self.checkpoints.is_empty()
    }

    /// Drops every row of `runs` that states what a run did (its status, tasks, events,
    /// metrics, artifacts, waits); usage rows stay (money spent is a fact).
    fn drop_runs(&mut self, runs: &HashSet<RunId>) {
        self.run_updates.retain(|u| !runs.contains(&u.id));
        self.tasks.retain(|t| !runs.contains(&t.run_id));
        self.events.retain(|e| !runs.contains(&e.run_id));
        self.metrics.retain(|m| !runs.contains(&m.run_id));
        self.artifacts.retain(|a| !runs.contains(&a.run_id));
        self.waits.retain(|w| !runs.contains(&w.run_id));
        self.noted_waits.retain(|(r, _)| !runs.contains(r));
        self.checkpoints.retain(|c| !runs.contains(&c.run_id));
        self.agent_loops.retain(|l| !runs.contains(&l.run_id));
        self.agent_turns.retain(|t| !runs.contains(&t.run_id));
        self.tool_calls.retain(|c| !runs.contains(&c.run_id));
        self.decompositions.retain(|d| !runs.contains(&d.run_id));
        self.snapshots.retain(|s| !runs.contains(&s.run_id));
    }

    /// Drops the rows of every run in `fenced` whose lease (as `lease` reads it: holder and
    /// token, or none) no longer names `holder` with the token it was granted, and adds those
    /// runs to `stale`.
    fn fence<E>(
        &mut self,
        fenced: &[(RunId, i64)],
        holder: &str,
        stale: &mut HashSet<RunId>,
        mut lease: impl FnMut(RunId) -> Result<Option<(String, i64)>, E>,
    ) -> Result<(), E> {
        let mut found = HashSet::new();
        for &(run, token) in fenced {
            let current = lease(run)?;
            if current.as_ref().map(|(h, t)| (h.as_str(), *t)) != Some((holder, token)) {
                found.insert(run);
            }
        }
        self.drop_runs(&found);
        stale.extend(found);
        Ok(())
    }

    /// Keeps only the last row for each loop and each call (one statement may not touch a
    /// row twice).
    fn dedup_journal(&mut self) {
        fn last_only<T, K: std::hash::Hash + Eq>(rows: &mut Vec<T>, key: impl Fn(&T) -> K) {
            if rows.len() < 2 {
                return;
            }
            let mut seen = HashSet::with_capacity(rows.len());
            let mut kept: Vec<T> = Vec::with_capacity(rows.len());
            for row in std::mem::take(rows).into_iter().rev() {
                if seen.insert(key(&row)) {
                    kept.push(row);
                }
            }
            kept.reverse();
            *rows = kept;
        }
        last_only(&mut self.agent_loops, |l| l.id.clone());
        last_only(&mut self.tool_calls, |c| (c.loop_id.clone(), c.turn, c.seq));
        last_only(&mut self.snapshots, |s| (s.run_id, s.task_id.clone()));
    }

    /// Keeps only the last row for each task (one statement may not touch a row twice), in
    /// key order: the rows then go into the table's B-tree one after another rather than
    /// all over it.
    fn order_tasks(&mut self) {
        if self.tasks.len() < 2 {
            return;
        }
        // Stable: the rows of one task stay in the order they were written.
        self.tasks
            .sort_by(|a, b| (a.run_id, a.task_id.as_str()).cmp(&(b.run_id, b.task_id.as_str())));
        let rows = std::mem::take(&mut self.tasks);
        let mut kept: Vec<TaskRow> = Vec::with_capacity(rows.len());
        for row in rows {
            match kept.last_mut() {
                Some(prev) if prev.run_id == row.run_id && prev.task_id == row.task_id => {
                    *prev = row;
                }
                _ => kept.push(row),
            }
        }
        self.tasks = kept;
    }
}

/// The writer of a store's group commits.
pub(crate) enum Writer {
    /// SQLite's writer thread.
    Sqlite(SqliteWriter),
    /// A Postgres connection kept open between commits (one taken from the pool for each
    /// commit would cost another round trip when it goes back: the pool tests each returned
    /// connection). Opened with the pool's settings on first use, and again after a commit
    /// that failed.
    Postgres {
        pool: sqlx::PgPool,
        conn: tokio::sync::Mutex<Option<sqlx::PgConnection>>,
    },
}

impl Writer {
    /// Closes the writer's connection (the store is closing).
    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite(w) => w.close(),
            Self::Postgres { conn, .. } => {
                if let Some(c) = conn.lock().await.take() {
                    let _ = sqlx::Connection::close(c).await;
                }
            }
        }
    }
}

impl Store {
    /// `e`, when it says a SQLite file cannot take writes (a full disk, a failing device),
    /// with the file named.
    pub(crate) fn named(&self, e: StoreError) -> StoreError {
        match &*self.1 {
            Writer::Sqlite(w) => w.named(e),
            Writer::Postgres { .. } => e,
        }
    }

    /// Writes a batch in one transaction; when this returns `Ok`, every row is committed.
    /// On SQLite the writer thread does it (one message there and back), or for a small
    /// batch of an in-memory store the calling thread; on Postgres it takes three round trips
    /// for a task's step (BEGIN with the lease check, the rows, COMMIT). For a writer holding
    /// leases, in the same transaction, the rows of every run in `fences` whose lease moved to
    /// another holder (or token) are dropped from the batch (for good, even if the
    /// transaction then fails) and added to `stale`; the rest is written.
    ///
    /// # Errors
    /// Any failed statement; then nothing of the batch is written.
    ///
    /// # Cancel safety
    /// On Postgres, dropping the future rolls the transaction back. On SQLite a batch handed
    /// to the writer thread is committed (or not) whether or not anyone waits for it: as
    /// after a crash, what was committed without being acknowledged is found on resume.
    pub(crate) async fn write_fenced(
        &self,
        batch: &mut Batch,
        fences: &Fences,
        stale: &mut HashSet<RunId>,
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        batch.order_tasks();
        batch.dedup_journal();
        let now = super::now_ms();
        let (fenced, proven): (Vec<(RunId, i64)>, bool) = if fences.tokens.is_empty() {
            (Vec::new(), false)
        } else {
            let touched = batch.runs_touched();
            let fenced: Vec<(RunId, i64)> = touched
                .iter()
                .filter_map(|r| fences.tokens.get(r).map(|t| (*r, *t)))
                .collect();
            let proven = fenced.len() == touched.len() && batch.only_rows_of_runs_touched();
            (fenced, proven)
        };
        match &*self.1 {
            Writer::Sqlite(w) => {
                w.write(batch, fenced, proven, &fences.holder, now, stale)
                    .await
            }
            Writer::Postgres { pool, conn } => {
                let mut slot = conn.lock().await;
                // Out of its slot while in use: if this future is dropped midway, the
                // connection goes with it and the server rolls the transaction back; a
                // failed commit's connection is not used again either.
                let mut conn = match slot.take() {
                    Some(c) => c,
                    None => {
                        let opts = pool.connect_options();
                        sqlx::ConnectOptions::connect(&*opts)
                            .await
                            .map_err(q("open the writer's connection"))?
                    }
                };
                if let Some(xid) = batch.unsure_commit {
                    // Kept on the batch until the server has said.
                    let committed = committed_before(&mut conn, xid).await?;
                    batch.unsure_commit = None;
                    if committed {
                        *slot = Some(conn);
                        return Ok(());
                    }
                }
                postgres_batch(&mut conn, batch, &fenced, fences, stale, now).await?;
                *slot = Some(conn);
                Ok(())
            }
        }
    }
}

/// Writes `batch` on Postgres in one transaction on `conn` (see [`Store::write_fenced`]).
async fn postgres_batch(
    conn: &mut sqlx::PgConnection,
    batch: &mut Batch,
    fenced: &[(RunId, i64)],
    fences: &Fences,
    stale: &mut HashSet<RunId>,
    now: i64,
) -> Result<(), StoreError> {
    // BEGIN and the lease check go in one round trip (the run ids are uuids nofx made,
    // written as literals); FOR SHARE: a claim (FOR UPDATE) of these leases waits for this
    // commit. A failure anywhere leaves the transaction open: the caller drops the
    // connection, which rolls it back (the server does when it goes).
    // The transaction's id comes first: should the answer to COMMIT be lost with the
    // connection, the next attempt asks the server what became of it.
    let mut begin = String::from("BEGIN; SELECT txid_current() AS nofx_xid");
    if !fenced.is_empty() {
        let ids: Vec<String> = fenced.iter().map(|(r, _)| format!("'{r}'")).collect();
        // Locks are taken in run id order, as a renewal takes them: no deadlock between the two.
        begin.push_str(&format!(
            "; SELECT run_id, holder, token FROM leases WHERE run_id IN ({}) ORDER BY run_id FOR SHARE",
            ids.join(", ")
        ));
    }
    let rows = sqlx::raw_sql(&begin)
        .fetch_all(&mut *conn)
        .await
        .map_err(q("begin write"))?;
    let xid: i64 = rows
        .first()
        .ok_or_else(|| StoreError::Corrupt {
            what: "transaction id",
            why: "the server returned no row".into(),
        })?
        .try_get("nofx_xid")
        .map_err(q("begin write"))?;
    if !fenced.is_empty() {
        let mut leases = HashMap::with_capacity(rows.len());
        for r in &rows[1..] {
            let run: String = r.try_get("run_id").map_err(q("check leases"))?;
            let holder: String = r.try_get("holder").map_err(q("check leases"))?;
            let token: i64 = r.try_get("token").map_err(q("check leases"))?;
            leases.insert(run, (holder, token));
        }
        batch.fence(fenced, &fences.holder, stale, |run| {
            Ok::<_, StoreError>(leases.remove(&run.to_string()))
        })?;
    }
    let mut steps = tables::steps(batch, now).into_iter().peekable();
    while let Some(step) = steps.next() {
        match step {
            Step::Insert {
                head,
                tail,
                width,
                cells,
            } => {
                // Inserts into tables whose rows point at nothing else in the batch go in one
                // statement (a data-modifying WITH each): one round trip for the rows a task's
                // step writes.
                let mut group = vec![(head, tail, width, cells)];
                while let Some(Step::Insert {
                    head,
                    tail,
                    width,
                    cells,
                }) = steps.next_if(|next| {
                    matches!(next, Step::Insert { head: next, .. }
                        if tables::independent(head) && tables::independent(next))
                }) {
                    group.push((head, tail, width, cells));
                }
                let mut parts = Vec::with_capacity(group.len());
                let mut columns = Vec::new();
                for (head, tail, width, cells) in &group {
                    parts.push(unnest_insert(head, tail, *width, cells, &mut columns));
                }
                let last = parts.pop().unwrap_or_default();
                let with: Vec<String> = parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| format!("w{i} AS ({p})"))
                    .collect();
                let sql = if with.is_empty() {
                    last
                } else {
                    format!("WITH {} {last}", with.join(", "))
                };
                let mut query = sqlx::query(&sql);
                for column in columns {
                    query = match column {
                        Column::Text(v) => query.bind(v),
                        Column::Int(v) => query.bind(v),
                        Column::Bool(v) => query.bind(v),
                    };
                }
                query.execute(&mut *conn).await.map_err(q("write batch"))?;
            }
            Step::Single { sql, cells } => {
                let mut query = sqlx::query(sql);
                for c in cells {
                    query = match c {
                        Cell::Text(v) => query.bind(v),
                        Cell::Int(v) => query.bind(v),
                        Cell::Bool(v) => query.bind(v),
                    };
                }
                query.execute(&mut *conn).await.map_err(q("write batch"))?;
            }
        }
    }
    if let Err(e) = sqlx::raw_sql("COMMIT").execute(&mut *conn).await {
        let e = q("commit")(e);
        // Sent but not answered: the transaction may have committed.
        if e.is_unavailable() {
            batch.unsure_commit = Some(xid);
        }
        return Err(e);
    }
    Ok(())
}

/// Whether transaction `xid`, whose COMMIT went unanswered, committed. An answer the server
/// cannot give yet (the old connection's backend has not noticed it is gone) is an
/// unavailable store: the caller tries again.
async fn committed_before(conn: &mut sqlx::PgConnection, xid: i64) -> Result<bool, StoreError> {
    let status: Option<String> = sqlx::query_scalar("SELECT txid_status($1)")
        .bind(xid)
        .fetch_one(&mut *conn)
        .await
        .map_err(q("check an unanswered commit"))?;
    match status.as_deref() {
        Some("committed") => Ok(true),
        Some("aborted") => Ok(false),
        Some(_) => Err(StoreError::Query {
            what: "check an unanswered commit",
            source: super::DbError(Box::new(super::Unavailable(format!(
                "transaction {xid}, whose commit went unanswered, is still in progress on the server"
            )))),
        }),
        None => Err(StoreError::Corrupt {
            what: "transaction status",
            why: format!("the server no longer knows transaction {xid}, whose commit went unanswered"),
        }),
    }
}

/// A column's values bound as one Postgres array.
enum Column<'a> {
    Text(Vec<Option<&'a str>>),
    Int(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
}

/// The insert of `cells` (`width` a row) as one statement whatever the number of rows: a
/// typed array a column, zipped back into rows by UNNEST; its columns are added to `columns`
/// (numbered after those already there). Its text depends only on the table and where its
/// parameters start, so it is prepared once per connection.
fn unnest_insert<'a>(
    head: &str,
    tail: &str,
    width: usize,
    cells: &'a [Cell<'a>],
    columns: &mut Vec<Column<'a>>,
) -> String {
    let mut marks = Vec::with_capacity(width);
    for (col, kind) in cells[..width].iter().enumerate() {
        let values = cells.iter().skip(col).step_by(width);
        let (column, ty) = match kind {
            Cell::Text(_) => (
                Column::Text(
                    values
                        .map(|c| match c {
                            Cell::Text(t) => t.as_deref(),
                            _ => None,
                        })
                        .collect(),
                ),
                "text",
            ),
            Cell::Int(_) => (
                Column::Int(
                    values
                        .map(|c| match c {
                            Cell::Int(v) => *v,
                            _ => None,
                        })
                        .collect(),
                ),
                "int8",
            ),
            Cell::Bool(_) => (
                Column::Bool(
                    values
                        .map(|c| match c {
                            Cell::Bool(v) => *v,
                            _ => None,
                        })
                        .collect(),
                ),
                "bool",
            ),
        };
        columns.push(column);
        marks.push(format!("${}::{ty}[]", columns.len()));
    }
    format!("{head}SELECT * FROM UNNEST({}){tail}", marks.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{TaskKey, TaskStatus};

    fn row(run: RunId, id: &str, attempt: i64) -> TaskRow {
        TaskRow {
            run_id: run,
            task_id: TaskKey::from_trusted(id.to_string()),
            idx: 0,
            tool: "test:echo".into(),
            status: TaskStatus::Ready,
            attempt,
            agent: None,
            outputs: None,
            error: None,
            started_at: None,
            finished_at: None,
            restored_from: None,
        }
    }

    #[test]
    fn a_batch_keeps_each_tasks_last_row_in_key_order() {
        let (r1, r2) = {
            let (a, b) = (RunId::new(), RunId::new());
            (a.min(b), a.max(b))
        };
        let mut batch = Batch {
            tasks: vec![
                row(r2, "a", 1),
                row(r1, "f10", 1),
                row(r1, "f2", 1),
                row(r1, "f10", 2),
                row(r2, "a", 2),
                row(r1, "f10", 3),
            ],
            ..Batch::default()
        };
        batch.order_tasks();
        let got: Vec<(RunId, &str, i64)> = batch
            .tasks
            .iter()
            .map(|t| (t.run_id, t.task_id.as_str(), t.attempt))
            .collect();
        assert_eq!(got, vec![(r1, "f10", 3), (r1, "f2", 1), (r2, "a", 2)]);
    }

    /// A SQLite file store under `dir` holding `runs`, each leased to this process; and the
    /// fences of those leases.
    async fn leased_runs(
        dir: &std::path::Path,
        runs: &[RunId],
    ) -> (crate::store::Store, crate::store::LeaseHolder, Fences) {
        use crate::domain::CorrelationId;
        use crate::store::{LeaseHolder, RunRecord, Store};
        let store = Store::sqlite_file(&dir.join("nofx.db")).await.unwrap();
        let now = crate::domain::time::now_ms();
        let holder = LeaseHolder::this_process();
        let mut first = Batch::default();
        for &id in runs {
            first.new_runs.push(RunRecord::started(
                id,
                "leases",
                CorrelationId::generate(),
                dir.display().to_string(),
                now,
            ));
            first.new_leases.push((id, holder.clone(), now + 60_000));
        }
        store
            .write_fenced(&mut first, &Fences::default(), &mut HashSet::new())
            .await
            .unwrap();
        let fences = Fences {
            holder: holder.id.clone(),
            tokens: runs.iter().map(|r| (*r, 1)).collect(),
        };
        (store, holder, fences)
    }

    /// Rows of runs whose lease the commit reads are written without a parent check; any
    /// other batch is still checked row by row, after such a commit too.
    #[tokio::test]
    async fn only_rows_of_fenced_runs_skip_the_parent_check() {
        let run = RunId::new();
        let dir = tempfile::tempdir().unwrap();
        let (store, _, fences) = leased_runs(dir.path(), &[run]).await;
        let mut stale = HashSet::new();
        let mut rows = Batch {
            tasks: vec![row(run, "a", 1)],
            ..Batch::default()
        };
        assert!(rows.only_rows_of_runs_touched());
        store
            .write_fenced(&mut rows, &fences, &mut stale)
            .await
            .unwrap();
        assert!(stale.is_empty());
        assert_eq!(store.tasks(run).await.unwrap().len(), 1);
        // A command for a run that is not in the store: refused, nothing written.
        let missing = RunId::new();
        let mut bad = Batch {
            tasks: vec![row(run, "b", 1)],
            new_commands: vec![(missing, crate::store::CommandKind::Cancel, None)],
            ..Batch::default()
        };
        assert!(!bad.only_rows_of_runs_touched());
        let err = store
            .write_fenced(&mut bad, &fences, &mut stale)
            .await
            .expect_err("a command for a run not in the store");
        assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
        assert_eq!(store.tasks(run).await.unwrap().len(), 1);
        store.close().await;
    }

    /// A run's lease expires in the transaction that ends the run, and renewals leave it
    /// expired: a process stopped between the run's end and its release of the lease leaves
    /// no lease held behind it.
    #[tokio::test]
    async fn the_commit_that_ends_a_run_expires_its_lease_and_renewals_keep_it_expired() {
        use crate::domain::RunStatus;
        use crate::store::RunUpdate;
        let (run, other) = (RunId::new(), RunId::new());
        let now = crate::domain::time::now_ms();
        let dir = tempfile::tempdir().unwrap();
        let (store, holder, fences) = leased_runs(dir.path(), &[run, other]).await;
        let mut stale = HashSet::new();
        let mut end = Batch {
            run_updates: vec![RunUpdate {
                id: run,
                status: RunStatus::Succeeded,
                reason: None,
                started_at: None,
                finished_at: Some(now),
                deadline_at: None,
            }],
            ..Batch::default()
        };
        store
            .write_fenced(&mut end, &fences, &mut stale)
            .await
            .unwrap();
        assert!(stale.is_empty());
        let lease = store.lease(run).await.unwrap().unwrap();
        assert_eq!(lease.expires_at, 0, "{lease:?}");
        // A renewal after the run ended: the ended run's lease stays expired (still counted
        // as this process's, so its coordinator is not told it lost it); the other is extended.
        let held = store.renew_leases(&holder, 60_000).await.unwrap();
        assert!(held.contains(&run) && held.contains(&other));
        assert_eq!(store.lease(run).await.unwrap().unwrap().expires_at, 0);
        assert!(store.lease(other).await.unwrap().unwrap().expires_at > now);
        store.close().await;
    }
}
