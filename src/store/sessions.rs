//! Dashboard sessions: a browser logs in with an API key and gets a session token in an
//! HttpOnly cookie. Only the token's hash is stored; a session is as good as its key (a
//! revoked key ends its sessions at once) and ends at its expiry or at logout.

use super::keys::{key_from_row, key_hash, KeyRecord};
use super::{q, with_pool, Store, StoreError};

impl Store {
    /// Starts a session of key `key_id` until `expires_at` (ms); returns its token. Expired
    /// sessions are cleared on the way.
    ///
    /// # Errors
    /// Write failures.
    pub async fn create_session(
        &self,
        key_id: &str,
        expires_at: i64,
    ) -> Result<String, StoreError> {
        let token = format!(
            "nofxs_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = crate::domain::time::now_ms();
        with_pool!(self, |p, _b| {
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(p)
                .await
                .map_err(q("clear expired sessions"))?;
            sqlx::query(
                "INSERT INTO sessions (hash, key_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(key_hash(&token))
            .bind(key_id)
            .bind(now)
            .bind(expires_at)
            .execute(p)
            .await
            .map_err(q("create session"))?;
        });
        Ok(token)
    }

    /// The live key of the live session whose token is `token`, with the session's expiry.
    ///
    /// # Errors
    /// Query failures.
    pub async fn session_key(&self, token: &str) -> Result<Option<(KeyRecord, i64)>, StoreError> {
        let sql = "SELECT k.id, k.project, k.name, k.scopes, k.created_at, k.revoked_at, \
                   s.expires_at FROM sessions s JOIN api_keys k ON k.id = s.key_id \
                   WHERE s.hash = $1 AND s.expires_at > $2 AND k.revoked_at IS NULL";
        let now = crate::domain::time::now_ms();
        with_pool!(self, |p, _b| {
            let row = sqlx::query(sql)
                .bind(key_hash(token))
                .bind(now)
                .fetch_optional(p)
                .await
                .map_err(q("read session"))?;
            row.map(|r| {
                use sqlx::Row;
                let expires: i64 = r.try_get("expires_at").map_err(q("read session"))?;
                Ok((key_from_row(&r)?, expires))
            })
            .transpose()
        })
    }

    /// Ends the session whose token is `token`; `false` when there was none.
    ///
    /// # Errors
    /// Write failures.
    pub async fn end_session(&self, token: &str) -> Result<bool, StoreError> {
        let n = with_pool!(self, |p, _b| {
            sqlx::query("DELETE FROM sessions WHERE hash = $1")
                .bind(key_hash(token))
                .execute(p)
                .await
                .map_err(q("end session"))?
                .rows_affected()
        });
        Ok(n == 1)
    }
}
