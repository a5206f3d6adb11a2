//! Reads of runs and tasks.

use super::{q, with_pool, RunRecord, Store, StoreError, TaskRow};
use crate::domain::{CorrelationId, RunId, RunStatus, TaskKey, TaskStatus};
use sqlx::Row;

fn corrupt(what: &'static str) -> impl Fn(String) -> StoreError {
    move |why| StoreError::Corrupt { what, why }
}

macro_rules! run_from_row {
    ($r:expr) => {{
        let r = $r;
        let id: String = r.try_get("id").map_err(q("read run"))?;
        let status: String = r.try_get("status").map_err(q("read run"))?;
        let plan: String = r.try_get("plan").map_err(q("read run"))?;
        let inputs: String = r.try_get("inputs").map_err(q("read run"))?;
        RunRecord {
            id: id
                .parse()
                .map_err(|e: crate::domain::ids::BadRunId| corrupt("run id")(e.to_string()))?,
            name: r.try_get("name").map_err(q("read run"))?,
            status: RunStatus::parse(&status).map_err(corrupt("run status"))?,
            reason: r.try_get("reason").map_err(q("read run"))?,
            correlation_id: CorrelationId::from_trusted(
                r.try_get("correlation_id").map_err(q("read run"))?,
            ),
            plan: std::sync::Arc::new(
                serde_json::from_str(&plan).map_err(|e| corrupt("plan")(e.to_string()))?,
            ),
            inputs: serde_json::from_str(&inputs).map_err(|e| corrupt("inputs")(e.to_string()))?,
            workspace: r.try_get("workspace").map_err(q("read run"))?,
            created_at: r.try_get("created_at").map_err(q("read run"))?,
            started_at: r.try_get("started_at").map_err(q("read run"))?,
            finished_at: r.try_get("finished_at").map_err(q("read run"))?,
            deadline_at: r.try_get("deadline_at").map_err(q("read run"))?,
            project: r.try_get("project").map_err(q("read run"))?,
            lineage: {
                let parent: Option<String> = r.try_get("parent_run_id").map_err(q("read run"))?;
                match parent {
                    None => None,
                    Some(p) => Some(super::Lineage {
                        parent_run_id: p.parse().map_err(|e: crate::domain::ids::BadRunId| {
                            corrupt("parent run id")(e.to_string())
                        })?,
                        checkpoint_id: r
                            .try_get::<Option<String>, _>("checkpoint_id")
                            .map_err(q("read run"))?
                            .map(Into::into),
                        forked_at: r.try_get("forked_at").map_err(q("read run"))?,
                    }),
                }
            },
        }
    }};
}

macro_rules! task_from_row {
    ($r:expr, $run:expr) => {{
        let r = $r;
        let status: String = r.try_get("status").map_err(q("read task"))?;
        let outputs: Option<String> = r.try_get("outputs").map_err(q("read task"))?;
        TaskRow {
            run_id: $run,
            task_id: TaskKey::from_trusted(r.try_get("task_id").map_err(q("read task"))?),
            idx: r.try_get("idx").map_err(q("read task"))?,
            tool: r.try_get("tool").map_err(q("read task"))?,
            status: TaskStatus::parse(&status).map_err(corrupt("task status"))?,
            attempt: r.try_get("attempt").map_err(q("read task"))?,
            agent: r.try_get("agent").map_err(q("read task"))?,
            outputs: match outputs {
                Some(s) => {
                    Some(serde_json::from_str(&s).map_err(|e| corrupt("outputs")(e.to_string()))?)
                }
                None => None,
            },
            error: r.try_get("error").map_err(q("read task"))?,
            started_at: r.try_get("started_at").map_err(q("read task"))?,
            finished_at: r.try_get("finished_at").map_err(q("read task"))?,
            restored_from: r.try_get("restored_from").map_err(q("read task"))?,
        }
    }};
}

const RUN_COLUMNS: &str = "id, name, status, reason, correlation_id, plan, inputs, workspace, \
                           created_at, started_at, finished_at, deadline_at, project, \
                           parent_run_id, checkpoint_id, forked_at";

/// Runs with their plans (kept in a table of their own: see migration 0018).
const RUNS_WITH_PLANS: &str = "runs JOIN run_plans ON run_plans.run_id = runs.id";

impl Store {
    /// One run.
    ///
    /// # Errors
    /// `NoSuchRun` when absent; query failures.
    pub async fn run(&self, id: RunId) -> Result<RunRecord, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM {RUNS_WITH_PLANS} WHERE id = $1");
        with_pool!(self, |p, _b| {
            let row = sqlx::query(&sql)
                .bind(id.to_string())
                .fetch_optional(p)
                .await
                .map_err(q("read run"))?
                .ok_or_else(|| StoreError::NoSuchRun(id.to_string()))?;
            Ok(run_from_row!(row))
        })
    }

    /// A run's status and reason only (nothing of its plan is read: a run's plan can be
    /// large).
    ///
    /// # Errors
    /// `NoSuchRun` when absent; query failures.
    pub async fn run_status(&self, id: RunId) -> Result<(RunStatus, Option<String>), StoreError> {
        with_pool!(self, |p, _b| {
            let row = sqlx::query("SELECT status, reason FROM runs WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(p)
                .await
                .map_err(q("read run"))?
                .ok_or_else(|| StoreError::NoSuchRun(id.to_string()))?;
            let status: String = row.try_get("status").map_err(q("read run"))?;
            Ok((
                RunStatus::parse(&status).map_err(corrupt("run status"))?,
                row.try_get("reason").map_err(q("read run"))?,
            ))
        })
    }

    /// Runs, newest first, optionally only those with one of `statuses`.
    ///
    /// # Errors
    /// Query failures.
    pub async fn runs(
        &self,
        statuses: &[RunStatus],
        limit: i64,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let filter = if statuses.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = statuses
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            format!("WHERE status IN ({})", list.join(", "))
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM {RUNS_WITH_PLANS} {filter} ORDER BY created_at DESC, id DESC LIMIT $1"
        );
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(&sql)
                .bind(limit)
                .fetch_all(p)
                .await
                .map_err(q("list runs"))?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(run_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Runs of `project`, newest first, optionally of one status, after `cursor` (the
    /// `(created_at, id)` of the last run of the previous page).
    ///
    /// # Errors
    /// Query failures.
    pub async fn project_runs(
        &self,
        project: &str,
        status: Option<RunStatus>,
        cursor: Option<(i64, RunId)>,
        limit: i64,
    ) -> Result<Vec<RunRecord>, StoreError> {
        // One statement for every case: no status filters nothing, no cursor starts at the top.
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM {RUNS_WITH_PLANS} WHERE project = $1 AND ($3 = '' OR status = $3) \
             AND (created_at < $4 OR (created_at = $4 AND id < $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let (at, id) = cursor.map_or((i64::MAX, String::new()), |(t, id)| (t, id.to_string()));
        let status = status.map_or("", |s| s.as_str());
        with_pool!(self, |p, _b| {
            let query = sqlx::query(&sql)
                .bind(project)
                .bind(limit)
                .bind(status)
                .bind(at)
                .bind(id.clone());
            let rows = query.fetch_all(p).await.map_err(q("list runs"))?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(run_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Finds a run by a unique prefix of its id (as users type it).
    ///
    /// # Errors
    /// `NoSuchRun` when none or several match.
    pub async fn find_run(&self, prefix: &str) -> Result<RunId, StoreError> {
        let shown = super::shown(prefix);
        if let Ok(id) = prefix.parse::<RunId>() {
            let known: Option<String> = with_pool!(self, |p, _b| {
                sqlx::query_scalar("SELECT id FROM runs WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(p)
                    .await
                    .map_err(q("find run"))?
            });
            return known.map(|_| id).ok_or(StoreError::NoSuchRun(shown));
        }
        let clean: String = prefix
            .chars()
            .filter(|c| c.is_ascii_hexdigit() || *c == '-')
            .collect();
        if clean.len() != prefix.len() {
            return Err(StoreError::NoSuchRun(shown));
        }
        if clean.len() < 4 {
            return Err(StoreError::BadInput(format!(
                "run id prefix `{shown}` is too short: give at least 4 characters of the id"
            )));
        }
        let ids: Vec<String> = with_pool!(self, |p, _b| {
            sqlx::query_scalar("SELECT id FROM runs WHERE id LIKE $1 LIMIT 2")
                .bind(format!("{clean}%"))
                .fetch_all(p)
                .await
                .map_err(q("find run"))?
        });
        match ids.as_slice() {
            [one] => one.parse().map_err(|_| StoreError::NoSuchRun(shown)),
            [] => Err(StoreError::NoSuchRun(shown)),
            _ => Err(StoreError::AmbiguousRun(shown)),
        }
    }

    /// One task's row, when it has one (a task that has not moved has none).
    ///
    /// # Errors
    /// Query failures.
    pub async fn task(&self, run: RunId, task: &str) -> Result<Option<TaskRow>, StoreError> {
        let sql = "SELECT task_id, idx, tool, status, attempt, agent, outputs, error, started_at, \
                   finished_at, restored_from FROM tasks WHERE run_id = $1 AND task_id = $2";
        with_pool!(self, |p, _b| {
            let row = sqlx::query(sql)
                .bind(run.to_string())
                .bind(task)
                .fetch_optional(p)
                .await
                .map_err(q("read task"))?;
            Ok(match row {
                Some(r) => Some(task_from_row!(r, run)),
                None => None,
            })
        })
    }

    /// Whether run `record` has task `task`: one of its plan's, or a subtask that has a row.
    ///
    /// # Errors
    /// Query failures.
    pub async fn has_task(&self, record: &RunRecord, task: &str) -> Result<bool, StoreError> {
        if record.plan.tasks.iter().any(|t| t.id == task) {
            return Ok(true);
        }
        Ok(task.contains('.') && self.task(record.id, task).await?.is_some())
    }

    /// The rows of a run's tasks, in plan order. A task gets its row when it first moves
    /// (ready); tasks of the plan without one are pending.
    ///
    /// # Errors
    /// Query failures.
    pub async fn tasks(&self, run: RunId) -> Result<Vec<TaskRow>, StoreError> {
        let sql = "SELECT task_id, idx, tool, status, attempt, agent, outputs, error, started_at, \
                   finished_at, restored_from FROM tasks WHERE run_id = $1 ORDER BY idx";
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(sql)
                .bind(run.to_string())
                .fetch_all(p)
                .await
                .map_err(q("read tasks"))?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(task_from_row!(row, run));
            }
            Ok(out)
        })
    }
}
