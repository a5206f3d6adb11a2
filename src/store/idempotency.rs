//! Idempotency keys of the API: the first request with a key claims it for the run it is
//! about to create; a retry finds that run. Rows are written here directly (they hold no run
//! state) before the run is submitted, so two requests racing with one key cannot both win.

use super::{q, with_pool, Store, StoreError};
use crate::domain::RunId;
use sqlx::Row;

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The key is now this request's.
    New,
    /// An earlier request holds it for `run`; `same_body` says whether its body matched.
    Existing {
        /// The run the earlier request created (or is creating).
        run: RunId,
        /// Whether the bodies' hashes are equal.
        same_body: bool,
    },
}

impl Store {
    /// Claims `key` of `project` for `run`, unless an earlier request holds it.
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn claim_idempotency(
        &self,
        project: &str,
        key: &str,
        body_hash: &str,
        run: RunId,
    ) -> Result<Claimed, StoreError> {
        let insert = "INSERT INTO idempotency_keys (project, key, body_hash, run_id, created_at) \
                      VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project, key) DO NOTHING";
        let read = "SELECT body_hash, run_id FROM idempotency_keys WHERE project = $1 AND key = $2";
        let now = crate::domain::time::now_ms();
        with_pool!(self, |p, _b| {
            let n = sqlx::query(insert)
                .bind(project)
                .bind(key)
                .bind(body_hash)
                .bind(run.to_string())
                .bind(now)
                .execute(p)
                .await
                .map_err(q("claim idempotency key"))?
                .rows_affected();
            if n == 1 {
                return Ok(Claimed::New);
            }
            let row = sqlx::query(read)
                .bind(project)
                .bind(key)
                .fetch_one(p)
                .await
                .map_err(q("read idempotency key"))?;
            let hash: String = row
                .try_get("body_hash")
                .map_err(q("read idempotency key"))?;
            let id: String = row.try_get("run_id").map_err(q("read idempotency key"))?;
            Ok(Claimed::Existing {
                run: id.parse().map_err(|_| StoreError::Corrupt {
                    what: "idempotency run id",
                    why: id.clone(),
                })?,
                same_body: hash == body_hash,
            })
        })
    }

    /// Gives a claimed key up (the request failed before its run was stored).
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn release_idempotency(
        &self,
        project: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, |p, _b| {
            sqlx::query("DELETE FROM idempotency_keys WHERE project = $1 AND key = $2")
                .bind(project)
                .bind(key)
                .execute(p)
                .await
                .map_err(q("release idempotency key"))?;
        });
        Ok(())
    }
}
