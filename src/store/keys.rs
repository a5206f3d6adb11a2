//! API keys of `nofx serve`: a key belongs to one project; only its SHA-256 hash is stored.
//! Keys are administrative rows (no run state), written here directly by `nofx keys`.

use super::{q, with_pool, Store, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// What a key may do besides reading its project's runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Create, cancel, fork and decide on runs; create templates.
    Submit,
    /// Runs whose plans have `shell` tasks or `command` gates: commands on the host.
    Shell,
    /// The operator's views across every project (`GET /metrics`).
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [Scope::Submit, Scope::Shell, Scope::Admin];

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Shell => "shell",
            Self::Admin => "admin",
        }
    }

    /// A comma-separated list (`submit,shell`), or which name is not a scope.
    ///
    /// # Errors
    /// The first word that is not a scope, with the scopes there are.
    pub fn parse_list(text: &str) -> Result<Vec<Scope>, String> {
        let mut out = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let s = Self::ALL
                .into_iter()
                .find(|s| s.as_str() == word)
                .ok_or_else(|| format!("`{word}` is not a scope (scopes: submit, shell, admin)"))?;
            if !out.contains(&s) {
                out.push(s);
            }
        }
        if out.is_empty() {
            return Err("give at least one scope (submit, shell, admin)".into());
        }
        out.sort();
        Ok(out)
    }
}

/// A stored key (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// Public id, e.g. `key_3f9a1c20`.
    pub id: String,
    /// The project it grants access to.
    pub project: String,
    /// A label.
    pub name: Option<String>,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Creation time (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub created_at: i64,
    /// Revocation time (ms; RFC 3339 in documents), when revoked.
    #[serde(serialize_with = "crate::domain::time::opt_ms")]
    pub revoked_at: Option<i64>,
}

impl KeyRecord {
    /// Whether the key has `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

fn scopes_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The hash stored for a secret.
pub fn key_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn valid_project(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Store {
    /// Creates a key for `project` with `scopes` (none given: `submit`); returns its record
    /// and the secret (shown once).
    ///
    /// # Errors
    /// A malformed project name; write failures.
    pub async fn create_key(
        &self,
        project: &str,
        name: Option<&str>,
        scopes: &[Scope],
    ) -> Result<(KeyRecord, String), StoreError> {
        if !valid_project(project) {
            return Err(StoreError::BadInput(format!(
                "project `{project}` must be 1 to 64 ASCII letters, digits, `-`, `_` or `.`"
            )));
        }
        let mut scopes = if scopes.is_empty() {
            vec![Scope::Submit]
        } else {
            scopes.to_vec()
        };
        scopes.sort();
        scopes.dedup();
        let secret = format!(
            "nofx_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let rec = KeyRecord {
            id: format!("key_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            project: project.to_string(),
            name: name.map(str::to_string),
            scopes,
            created_at: crate::domain::time::now_ms(),
            revoked_at: None,
        };
        let sql = "INSERT INTO api_keys (id, project, name, hash, created_at, scopes) \
                   VALUES ($1, $2, $3, $4, $5, $6)";
        with_pool!(self, |p, _b| {
            sqlx::query(sql)
                .bind(&rec.id)
                .bind(&rec.project)
                .bind(&rec.name)
                .bind(key_hash(&secret))
                .bind(rec.created_at)
                .bind(scopes_text(&rec.scopes))
                .execute(p)
                .await
                .map_err(q("create key"))?;
        });
        Ok((rec, secret))
    }

    /// The live (not revoked) key whose secret is `secret`.
    ///
    /// # Errors
    /// Query failures.
    pub async fn key_by_secret(&self, secret: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = "SELECT id, project, name, scopes, created_at, revoked_at FROM api_keys \
                   WHERE hash = $1 AND revoked_at IS NULL";
        let hash = key_hash(secret);
        with_pool!(self, |p, _b| {
            let row = sqlx::query(sql)
                .bind(&hash)
                .fetch_optional(p)
                .await
                .map_err(q("read key"))?;
            row.map(|r| key_from_row(&r)).transpose()
        })
    }

    /// Every key, newest first.
    ///
    /// # Errors
    /// Query failures.
    pub async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = "SELECT id, project, name, scopes, created_at, revoked_at FROM api_keys \
                   ORDER BY created_at DESC, id";
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(sql)
                .fetch_all(p)
                .await
                .map_err(q("list keys"))?;
            rows.iter().map(key_from_row).collect()
        })
    }

    /// Revokes a key; `false` when no live key has that id.
    ///
    /// # Errors
    /// Write failures.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let sql = "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
        let now = crate::domain::time::now_ms();
        let n = with_pool!(self, |p, _b| {
            sqlx::query(sql)
                .bind(now)
                .bind(id)
                .execute(p)
                .await
                .map_err(q("revoke key"))?
                .rows_affected()
        });
        Ok(n == 1)
    }
}

pub(super) fn key_from_row<R: Row>(r: &R) -> Result<KeyRecord, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(KeyRecord {
        id: r.try_get("id").map_err(q("read key"))?,
        project: r.try_get("project").map_err(q("read key"))?,
        name: r.try_get("name").map_err(q("read key"))?,
        scopes: {
            let text: String = r.try_get("scopes").map_err(q("read key"))?;
            Scope::parse_list(&text).map_err(|why| StoreError::Corrupt {
                what: "key scopes",
                why,
            })?
        },
        created_at: r.try_get("created_at").map_err(q("read key"))?,
        revoked_at: r.try_get("revoked_at").map_err(q("read key"))?,
    })
}
