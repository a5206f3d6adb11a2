//! What retention deletes: the events, metrics and checkpoints of finished runs past their
//! project's retention, checkpoints over a run's limit, and the hashes rows still refer to.
//! Deletes go in bounded chunks, each its own short transaction, so running work (whose
//! writes share the store) is never held up for long.

use super::{q, with_pool, Store, StoreError};
use crate::domain::{CheckpointId, RunId};
use sqlx::Row;
use std::collections::HashSet;

/// A finished run past its retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredRun {
    /// The run.
    pub id: RunId,
    /// Its project.
    pub project: String,
    /// Its workspace.
    pub workspace: String,
}

/// Rows of one run that retention deletes (or would delete).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunRows {
    /// Events.
    pub events: u64,
    /// Metrics rows.
    pub metrics: u64,
    /// Checkpoints.
    pub checkpoints: u64,
    /// Agent loops (their turns and tool calls go with them).
    pub agent_loops: u64,
}

fn parse_run(s: &str) -> Result<RunId, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt {
        what: "run id",
        why: s.to_string(),
    })
}

impl Store {
    /// Finished, not yet pruned runs that ended before `cutoff` (ms): those of `project`, or
    /// with `None` those of every project not in `except`; oldest first, at most `limit`.
    ///
    /// # Errors
    /// Query failures.
    pub async fn expired_runs(
        &self,
        project: Option<&str>,
        except: &[String],
        cutoff: i64,
        limit: i64,
    ) -> Result<Vec<ExpiredRun>, StoreError> {
        let mut sql = String::from(
            "SELECT id, project, workspace FROM runs WHERE pruned_at IS NULL \
             AND finished_at IS NOT NULL AND finished_at < $1",
        );
        let mut n = 2;
        if project.is_some() {
            sql.push_str(" AND project = $2");
            n = 3;
        } else if !except.is_empty() {
            let marks: Vec<String> = (0..except.len()).map(|i| format!("${}", i + 2)).collect();
            sql.push_str(&format!(" AND project NOT IN ({})", marks.join(", ")));
            n = 2 + except.len();
        }
        sql.push_str(&format!(" ORDER BY finished_at, id LIMIT ${n}"));
        with_pool!(self, |p, _b| {
            let mut query = sqlx::query(&sql).bind(cutoff);
            match project {
                Some(pr) => query = query.bind(pr.to_string()),
                None => {
                    for e in except {
                        query = query.bind(e.clone());
                    }
                }
            }
            let rows = query
                .bind(limit)
                .fetch_all(p)
                .await
                .map_err(q("list expired runs"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let id: String = r.try_get("id").map_err(q("list expired runs"))?;
                out.push(ExpiredRun {
                    id: parse_run(&id)?,
                    project: r.try_get("project").map_err(q("list expired runs"))?,
                    workspace: r.try_get("workspace").map_err(q("list expired runs"))?,
                });
            }
            Ok(out)
        })
    }

    /// How many events, metrics rows and checkpoints a run has.
    ///
    /// # Errors
    /// Query failures.
    pub async fn run_rows(&self, run: RunId) -> Result<RunRows, StoreError> {
        let sql = "SELECT (SELECT COUNT(*) FROM events WHERE run_id = $1) AS events, \
                   (SELECT COUNT(*) FROM metrics WHERE run_id = $1) AS metrics, \
                   (SELECT COUNT(*) FROM checkpoints WHERE run_id = $1) AS checkpoints, \
                   (SELECT COUNT(*) FROM agent_loops WHERE run_id = $1) AS agent_loops";
        with_pool!(self, |p, _b| {
            let r = sqlx::query(sql)
                .bind(run.to_string())
                .fetch_one(p)
                .await
                .map_err(q("count run rows"))?;
            let n = |c: &str| -> Result<u64, StoreError> {
                Ok(r.try_get::<i64, _>(c).map_err(q("count run rows"))?.max(0) as u64)
            };
            Ok(RunRows {
                events: n("events")?,
                metrics: n("metrics")?,
                checkpoints: n("checkpoints")?,
                agent_loops: n("agent_loops")?,
            })
        })
    }

    /// Which of `runs` are marked pruned (their workspaces may go).
    ///
    /// # Errors
    /// Query failures.
    pub async fn pruned_among(&self, runs: &[RunId]) -> Result<HashSet<RunId>, StoreError> {
        let mut out = HashSet::new();
        for chunk in runs.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id FROM runs WHERE pruned_at IS NOT NULL AND id IN ({})",
                marks.join(", ")
            );
            let ids: Vec<String> = with_pool!(self, |p, _b| {
                let mut query = sqlx::query_scalar::<_, String>(&sql);
                for r in chunk {
                    query = query.bind(r.to_string());
                }
                query.fetch_all(p).await.map_err(q("read pruned runs"))
            })?;
            for id in ids {
                out.insert(parse_run(&id)?);
            }
        }
        Ok(out)
    }

    /// Deletes a run's events, metrics, checkpoints and agent journals, `chunk` rows a
    /// transaction, then
    /// marks it pruned. Returns what was deleted.
    ///
    /// # Errors
    /// Query failures (what was deleted before stays deleted; the run is pruned again later).
    pub(crate) async fn prune_run(
        &self,
        run: RunId,
        chunk: i64,
        now: i64,
    ) -> Result<RunRows, StoreError> {
        let id = run.to_string();
        let statements = [
            "DELETE FROM events WHERE run_id = $1 AND seq IN \
             (SELECT seq FROM events WHERE run_id = $1 ORDER BY seq LIMIT $2)",
            "DELETE FROM metrics WHERE id IN \
             (SELECT id FROM metrics WHERE run_id = $1 ORDER BY id LIMIT $2)",
            "DELETE FROM checkpoints WHERE id IN \
             (SELECT id FROM checkpoints WHERE run_id = $1 ORDER BY id LIMIT $2)",
            // A loop's turns and tool calls go with it.
            "DELETE FROM agent_loops WHERE id IN \
             (SELECT id FROM agent_loops WHERE run_id = $1 ORDER BY id LIMIT $2)",
            // Snapshots only matter while a run may still roll back.
            "DELETE FROM workspace_snapshots WHERE run_id = $1 AND task_id IN \
             (SELECT task_id FROM workspace_snapshots WHERE run_id = $1 ORDER BY task_id LIMIT $2)",
        ];
        let mut counts = [0u64; 5];
        for (k, sql) in statements.iter().enumerate() {
            loop {
                let n = with_pool!(self, |p, _b| {
                    sqlx::query(sql)
                        .bind(&id)
                        .bind(chunk)
                        .execute(p)
                        .await
                        .map(|d| d.rows_affected())
                        .map_err(q("prune run"))
                })?;
                counts[k] += n;
                if n < chunk as u64 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        with_pool!(self, |p, _b| {
            sqlx::query("UPDATE runs SET pruned_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&id)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(q("prune run"))
        })?;
        Ok(RunRows {
            events: counts[0],
            metrics: counts[1],
            checkpoints: counts[2],
            agent_loops: counts[3],
        })
    }

    /// Runs with more than `more_than` checkpoints: (run, project, count).
    ///
    /// # Errors
    /// Query failures.
    pub async fn checkpoint_counts(
        &self,
        more_than: i64,
    ) -> Result<Vec<(RunId, String, i64)>, StoreError> {
        let sql = "SELECT c.run_id, r.project, COUNT(*) AS n FROM checkpoints c \
                   JOIN runs r ON r.id = c.run_id GROUP BY c.run_id, r.project \
                   HAVING COUNT(*) > $1";
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(sql)
                .bind(more_than)
                .fetch_all(p)
                .await
                .map_err(q("count checkpoints"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let id: String = r.try_get("run_id").map_err(q("count checkpoints"))?;
                out.push((
                    parse_run(&id)?,
                    r.try_get("project").map_err(q("count checkpoints"))?,
                    r.try_get("n").map_err(q("count checkpoints"))?,
                ));
            }
            Ok(out)
        })
    }

    /// Deletes a run's checkpoints but the newest `keep`; returns how many went.
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn trim_checkpoints(&self, run: RunId, keep: i64) -> Result<u64, StoreError> {
        let sql = "DELETE FROM checkpoints WHERE run_id = $1 AND id NOT IN \
                   (SELECT id FROM checkpoints WHERE run_id = $1 \
                    ORDER BY created_at DESC, id DESC LIMIT $2)";
        with_pool!(self, |p, _b| {
            sqlx::query(sql)
                .bind(run.to_string())
                .bind(keep)
                .execute(p)
                .await
                .map(|d| d.rows_affected())
                .map_err(q("trim checkpoints"))
        })
    }

    /// Every content hash a row refers to: artifacts, the files of checkpoint manifests (but
    /// those of the checkpoints in `skip` and of the runs in `skip_runs`, about to go) and of
    /// workspace snapshots.
    ///
    /// # Errors
    /// Query failures; a manifest that is not JSON.
    pub async fn referenced_hashes(
        &self,
        skip_runs: &HashSet<RunId>,
        skip: &HashSet<CheckpointId>,
    ) -> Result<HashSet<String>, StoreError> {
        with_pool!(self, |p, _b| {
            let mut out = HashSet::new();
            let rows = sqlx::query("SELECT DISTINCT hash FROM artifacts")
                .fetch_all(p)
                .await
                .map_err(q("read artifact hashes"))?;
            for r in rows {
                out.insert(
                    r.try_get::<String, _>("hash")
                        .map_err(q("read artifact hashes"))?,
                );
            }
            let rows = sqlx::query("SELECT id, run_id, manifest FROM checkpoints")
                .fetch_all(p)
                .await
                .map_err(q("read checkpoint manifests"))?;
            for r in rows {
                let id: String = r.try_get("id").map_err(q("read checkpoint manifests"))?;
                let run: String = r
                    .try_get("run_id")
                    .map_err(q("read checkpoint manifests"))?;
                if skip.contains(id.as_str()) || skip_runs.contains(&parse_run(&run)?) {
                    continue;
                }
                let text: String = r
                    .try_get("manifest")
                    .map_err(q("read checkpoint manifests"))?;
                let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt {
                        what: "checkpoint manifest",
                        why: e.to_string(),
                    })?;
                out.extend(
                    m.into_values()
                        .filter_map(|v| v.as_str().map(str::to_string)),
                );
            }
            let rows = sqlx::query("SELECT run_id, manifest FROM workspace_snapshots")
                .fetch_all(p)
                .await
                .map_err(q("read snapshot manifests"))?;
            for r in rows {
                let run: String = r.try_get("run_id").map_err(q("read snapshot manifests"))?;
                if skip_runs.contains(&parse_run(&run)?) {
                    continue;
                }
                let text: String = r
                    .try_get("manifest")
                    .map_err(q("read snapshot manifests"))?;
                let m: crate::snapshot::Manifest =
                    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                        what: "snapshot manifest",
                        why: e.to_string(),
                    })?;
                out.extend(super::SnapshotRow::hashes(&m).map(str::to_string));
            }
            Ok(out)
        })
    }
}
