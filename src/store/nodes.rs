//! Nodes of a fleet: serving processes that share one store. Each has a row renewed by its
//! heartbeat, with its load; runs no live process holds are claimed in bulk with
//! `FOR UPDATE SKIP LOCKED` (on Postgres; SQLite serializes writers anyway), so two nodes
//! never claim the same run.

use super::{q, with_pool, LeaseHolder, Store, StoreError};
use crate::domain::RunId;
use crate::store::Db;
use serde::Serialize;
use sqlx::Row;

/// A node as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    /// Its lease holder id.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
    /// Start (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub started_at: i64,
    /// Last heartbeat (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub heartbeat_at: i64,
    /// Runs it executed at its last heartbeat.
    pub load: i64,
}

/// A lease as `nofx nodes ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRow {
    /// The run.
    pub run_id: String,
    /// Holder id.
    pub holder: String,
    /// Expiry (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub expires_at: i64,
    /// Fencing token.
    pub token: i64,
}

impl Store {
    /// Records `me`'s heartbeat and load, forgets nodes silent for `forget_ms`, and returns
    /// the nodes heard from within `live_ms` (`me` included).
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn node_heartbeat(
        &self,
        me: &LeaseHolder,
        started_at: i64,
        load: i64,
        live_ms: i64,
        forget_ms: i64,
    ) -> Result<Vec<NodeRow>, StoreError> {
        let now = super::now_ms();
        with_pool!(self, |p, _b| {
            sqlx::query(
                "INSERT INTO nodes (id, host, pid, started_at, heartbeat_at, load) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
                 heartbeat_at = excluded.heartbeat_at, load = excluded.load",
            )
            .bind(&me.id)
            .bind(&me.host)
            .bind(me.pid)
            .bind(started_at)
            .bind(now)
            .bind(load)
            .execute(p)
            .await
            .map_err(q("node heartbeat"))?;
            sqlx::query("DELETE FROM nodes WHERE heartbeat_at < $1")
                .bind(now - forget_ms)
                .execute(p)
                .await
                .map_err(q("forget nodes"))?;
        });
        Ok(self
            .nodes()
            .await?
            .into_iter()
            .filter(|n| n.heartbeat_at > now - live_ms)
            .collect())
    }

    /// Every node row, by id.
    ///
    /// # Errors
    /// Query failures.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(
                "SELECT id, host, pid, started_at, heartbeat_at, load FROM nodes ORDER BY id",
            )
            .fetch_all(p)
            .await
            .map_err(q("list nodes"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(NodeRow {
                    id: r.try_get("id").map_err(q("list nodes"))?,
                    host: r.try_get("host").map_err(q("list nodes"))?,
                    pid: r.try_get("pid").map_err(q("list nodes"))?,
                    started_at: r.try_get("started_at").map_err(q("list nodes"))?,
                    heartbeat_at: r.try_get("heartbeat_at").map_err(q("list nodes"))?,
                    load: r.try_get("load").map_err(q("list nodes"))?,
                });
            }
            Ok(out)
        })
    }

    /// Removes `me`'s node row (a clean stop).
    ///
    /// # Errors
    /// Query failures.
    pub async fn remove_node(&self, me: &LeaseHolder) -> Result<(), StoreError> {
        with_pool!(self, |p, _b| {
            sqlx::query("DELETE FROM nodes WHERE id = $1")
                .bind(&me.id)
                .execute(p)
                .await
                .map_err(q("remove node"))?;
        });
        Ok(())
    }

    /// Leases held now (not expired), by holder then run.
    ///
    /// # Errors
    /// Query failures.
    pub async fn live_leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let now = super::now_ms();
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(
                "SELECT run_id, holder, expires_at, token FROM leases WHERE expires_at > $1 \
                 ORDER BY holder, run_id",
            )
            .bind(now)
            .fetch_all(p)
            .await
            .map_err(q("list leases"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(LeaseRow {
                    run_id: r.try_get("run_id").map_err(q("list leases"))?,
                    holder: r.try_get("holder").map_err(q("list leases"))?,
                    expires_at: r.try_get("expires_at").map_err(q("list leases"))?,
                    token: r.try_get("token").map_err(q("list leases"))?,
                });
            }
            Ok(out)
        })
    }

    /// Claims for `me` up to `limit` unfinished runs that no lease holds now (never claimed,
    /// released, or expired), oldest first; returns them with their fencing tokens. Rows
    /// another node is claiming at the same moment are skipped, not waited for.
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn claim_open_runs(
        &self,
        me: &LeaseHolder,
        limit: i64,
        ttl_ms: i64,
    ) -> Result<Vec<(RunId, i64)>, StoreError> {
        let now = super::now_ms();
        let lock = match &self.0 {
            Db::Postgres(_) => " FOR UPDATE OF r SKIP LOCKED",
            Db::Sqlite(_) => "",
        };
        let select = format!(
            "SELECT r.id FROM runs r WHERE r.status IN ('pending', 'running', 'waiting') \
             AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.run_id = r.id AND l.expires_at > $1) \
             ORDER BY r.created_at LIMIT $2{lock}"
        );
        with_pool!(self, |p, begin| {
            let mut tx = p.begin_with(begin).await.map_err(q("begin claim"))?;
            let ids: Vec<String> = sqlx::query_scalar(&select)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(q("find open runs"))?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let token: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO leases (run_id, holder, host, pid, expires_at, token) \
                     VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT (run_id) DO UPDATE SET \
                     holder = excluded.holder, host = excluded.host, pid = excluded.pid, \
                     expires_at = excluded.expires_at, token = leases.token + 1 \
                     WHERE leases.expires_at <= $6 RETURNING token",
                )
                .bind(&id)
                .bind(&me.id)
                .bind(&me.host)
                .bind(me.pid)
                .bind(now + ttl_ms)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(q("claim open run"))?;
                if let (Some(token), Ok(run)) = (token, id.parse::<RunId>()) {
                    out.push((run, token));
                }
            }
            tx.commit().await.map_err(q("commit claim"))?;
            Ok(out)
        })
    }
}
