//! Stored PRPs: a checked PRP document, its project, the confidence its author judged and
//! the run that generated it.

use super::{q, with_pool, Store, StoreError};
use crate::domain::RunId;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

/// A stored PRP.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrpRow {
    /// Id, `prp-…`.
    pub id: String,
    /// The project it belongs to.
    pub project: String,
    /// Its name.
    pub name: String,
    /// The document.
    pub prp: Value,
    /// The confidence score it carries (1–10).
    pub confidence: Option<i64>,
    /// The run that generated it.
    pub from_run: Option<RunId>,
    /// When it was stored (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub created_at: i64,
}

impl Store {
    /// Stores a PRP.
    ///
    /// # Errors
    /// Query failures (a duplicate id among them).
    pub async fn insert_prp(&self, row: &PrpRow) -> Result<(), StoreError> {
        let sql =
            "INSERT INTO prps (id, project, name, document, confidence, from_run, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        with_pool!(self, |p, _b| {
            sqlx::query(sql)
                .bind(&row.id)
                .bind(&row.project)
                .bind(&row.name)
                .bind(row.prp.to_string())
                .bind(row.confidence)
                .bind(row.from_run.map(|r| r.to_string()))
                .bind(row.created_at)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(q("store PRP"))
        })
    }

    /// The PRP `id` of `project`, if there is one.
    ///
    /// # Errors
    /// Query failures and undecodable rows.
    pub async fn prp(&self, project: &str, id: &str) -> Result<Option<PrpRow>, StoreError> {
        let sql = "SELECT id, project, name, document, confidence, from_run, created_at FROM prps \
                   WHERE id = $1 AND project = $2";
        with_pool!(self, |p, _b| {
            let row = sqlx::query(sql)
                .bind(id)
                .bind(project)
                .fetch_optional(p)
                .await
                .map_err(q("read PRP"))?;
            let Some(r) = row else { return Ok(None) };
            let corrupt = |why: String| StoreError::Corrupt { what: "PRP", why };
            let doc: String = r.try_get("document").map_err(q("read PRP"))?;
            let from: Option<String> = r.try_get("from_run").map_err(q("read PRP"))?;
            Ok(Some(PrpRow {
                id: r.try_get("id").map_err(q("read PRP"))?,
                project: r.try_get("project").map_err(q("read PRP"))?,
                name: r.try_get("name").map_err(q("read PRP"))?,
                prp: serde_json::from_str(&doc).map_err(|e| corrupt(e.to_string()))?,
                confidence: r.try_get("confidence").map_err(q("read PRP"))?,
                from_run: from
                    .map(|f| f.parse().map_err(|_| corrupt(f)))
                    .transpose()?,
                created_at: r.try_get("created_at").map_err(q("read PRP"))?,
            }))
        })
    }
}
