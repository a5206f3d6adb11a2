//! Leases: which process executes a run. A lease is renewed by heartbeat; it can be claimed
//! once it has expired, or at once when its holder's process is gone from this host.

use super::{q, with_pool, Store, StoreError};
use crate::domain::RunId;
use crate::store::Db;
use sqlx::Row;

/// Who holds (or wants) a lease: a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// Unique per runtime instance.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
}

impl LeaseHolder {
    /// This process, with a fresh holder id.
    pub fn this_process() -> Self {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_string());
        Self {
            id: format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            host,
            pid: i64::from(std::process::id()),
        }
    }
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// Holder id.
    pub holder: String,
    /// Holder's host.
    pub host: String,
    /// Holder's process id.
    pub pid: i64,
    /// Expiry (ms).
    pub expires_at: i64,
    /// Fencing token: grows by one on each change of holder.
    pub token: i64,
}

impl LeaseInfo {
    /// Whether the holder may still be executing the run at `now`.
    pub fn is_live(&self, now: i64, local_host: &str) -> bool {
        if self.expires_at <= now {
            return false;
        }
        self.host != local_host || process_alive(self.pid)
    }
}

/// Whether a process with this id runs on this host (a zombie — killed, not yet reaped by
/// its parent — does not).
pub fn process_alive(pid: i64) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    let exists = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(_) => true,
    };
    exists && !is_zombie(raw)
}

/// `/proc/PID/stat` says `Z` (Linux; elsewhere nothing is known to be a zombie).
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The state follows the command name, which is in parentheses and may hold any
            // character: read after the last `)`.
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|st| st == "Z")
        })
        .unwrap_or(false)
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The lease is ours, with this fencing token.
    Granted {
        /// Fencing token.
        token: i64,
    },
    /// A live process holds it.
    Held(LeaseInfo),
}

impl Store {
    /// Claims the lease of a run for `me`, valid for `ttl_ms`.
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn claim_lease(
        &self,
        run: RunId,
        me: &LeaseHolder,
        ttl_ms: i64,
    ) -> Result<Claim, StoreError> {
        let now = super::now_ms();
        let lock = match &self.0 {
            Db::Postgres(_) => " FOR UPDATE",
            Db::Sqlite(_) => "",
        };
        let select = format!(
            "SELECT holder, host, pid, expires_at, token FROM leases WHERE run_id = $1{lock}"
        );
        with_pool!(self, |p, begin| {
            let mut tx = p.begin_with(begin).await.map_err(q("begin claim"))?;
            let inserted = sqlx::query(
                "INSERT INTO leases (run_id, holder, host, pid, expires_at, token) VALUES ($1, $2, $3, $4, $5, 1) \
                 ON CONFLICT (run_id) DO NOTHING",
            )
            .bind(run.to_string())
            .bind(&me.id)
            .bind(&me.host)
            .bind(me.pid)
            .bind(now + ttl_ms)
            .execute(&mut *tx)
            .await
            .map_err(q("claim lease"))?
            .rows_affected();
            if inserted == 1 {
                tx.commit().await.map_err(q("commit claim"))?;
                return Ok(Claim::Granted { token: 1 });
            }
            let row = sqlx::query(&select)
                .bind(run.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(q("read lease"))?;
            let info = LeaseInfo {
                holder: row.try_get("holder").map_err(q("read lease"))?,
                host: row.try_get("host").map_err(q("read lease"))?,
                pid: row.try_get("pid").map_err(q("read lease"))?,
                expires_at: row.try_get("expires_at").map_err(q("read lease"))?,
                token: row.try_get("token").map_err(q("read lease"))?,
            };
            if info.holder != me.id && info.is_live(now, &me.host) {
                return Ok(Claim::Held(info));
            }
            let token = if info.holder == me.id {
                info.token
            } else {
                info.token + 1
            };
            sqlx::query("UPDATE leases SET holder = $2, host = $3, pid = $4, expires_at = $5, token = $6 WHERE run_id = $1")
                .bind(run.to_string())
                .bind(&me.id)
                .bind(&me.host)
                .bind(me.pid)
                .bind(now + ttl_ms)
                .bind(token)
                .execute(&mut *tx)
                .await
                .map_err(q("take lease"))?;
            tx.commit().await.map_err(q("commit claim"))?;
            Ok(Claim::Granted { token })
        })
    }

    /// Extends every lease `me` holds, but for those of runs that ended (expired when they
    /// ended: they stay expired); returns the runs it still holds.
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn renew_leases(
        &self,
        me: &LeaseHolder,
        ttl_ms: i64,
    ) -> Result<Vec<RunId>, StoreError> {
        let now = super::now_ms();
        // Rows are locked in run id order, as a fenced write takes them (no deadlock).
        let sql = match &self.0 {
            Db::Postgres(_) => {
                "UPDATE leases SET expires_at = CASE WHEN expires_at = 0 THEN 0 ELSE $2 END \
                 WHERE run_id IN (SELECT run_id FROM leases \
                 WHERE holder = $1 ORDER BY run_id FOR UPDATE) RETURNING run_id"
            }
            Db::Sqlite(_) => {
                "UPDATE leases SET expires_at = CASE WHEN expires_at = 0 THEN 0 ELSE $2 END \
                 WHERE holder = $1 RETURNING run_id"
            }
        };
        let renewed: Result<Vec<RunId>, StoreError> = async {
            with_pool!(self, |p, begin| {
                let mut tx = p.begin_with(begin).await.map_err(q("begin renew"))?;
                let ids: Vec<String> = sqlx::query_scalar(sql)
                    .bind(&me.id)
                    .bind(now + ttl_ms)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(q("renew leases"))?;
                tx.commit().await.map_err(q("commit renew"))?;
                Ok(ids.iter().filter_map(|s| s.parse().ok()).collect())
            })
        }
        .await;
        // A full disk says which file.
        renewed.map_err(|e| self.named(e))
    }

    /// Gives a lease up. The row stays, expired and without a holder, so the fencing token
    /// keeps growing across owners.
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn release_lease(
        &self,
        run: RunId,
        me: &LeaseHolder,
    ) -> Result<(), StoreError> {
        with_pool!(self, |p, _b| {
            sqlx::query(
                "UPDATE leases SET holder = '', host = '', pid = 0, expires_at = 0 \
                 WHERE run_id = $1 AND holder = $2",
            )
            .bind(run.to_string())
            .bind(&me.id)
            .execute(p)
            .await
            .map_err(q("release lease"))?;
        });
        Ok(())
    }

    /// The live process executing `run`, if any (an expired lease, or one of a process of
    /// this host that is gone, is no owner).
    ///
    /// # Errors
    /// Query failures.
    pub async fn live_owner(&self, run: RunId) -> Result<Option<LeaseInfo>, StoreError> {
        let here = LeaseHolder::this_process().host;
        let now = crate::domain::time::now_ms();
        Ok(self.lease(run).await?.filter(|l| l.is_live(now, &here)))
    }

    /// The lease of a run, if any.
    ///
    /// # Errors
    /// Query failures.
    pub async fn lease(&self, run: RunId) -> Result<Option<LeaseInfo>, StoreError> {
        with_pool!(self, |p, _b| {
            let row = sqlx::query(
                "SELECT holder, host, pid, expires_at, token FROM leases WHERE run_id = $1",
            )
            .bind(run.to_string())
            .fetch_optional(p)
            .await
            .map_err(q("read lease"))?;
            match row {
                None => Ok(None),
                Some(row) => Ok(Some(LeaseInfo {
                    holder: row.try_get("holder").map_err(q("read lease"))?,
                    host: row.try_get("host").map_err(q("read lease"))?,
                    pid: row.try_get("pid").map_err(q("read lease"))?,
                    expires_at: row.try_get("expires_at").map_err(q("read lease"))?,
                    token: row.try_get("token").map_err(q("read lease"))?,
                })),
            }
        })
    }
}
