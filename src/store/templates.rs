//! Templates: per project, plus shipped ones (project `''`) that every project sees.

use super::{q, with_pool, Store, StoreError};
use crate::domain::template::{Template, TemplateSpec};
use sqlx::Row;

/// The project marker of shipped templates.
pub const SHIPPED: &str = "";

/// Why a template could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateTemplateError {
    /// The id is taken (in the project, or by a shipped template).
    #[error("a template `{0}` already exists")]
    Exists(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

const COLUMNS: &str =
    "project, id, name, description, category, plan, metadata, usage_count, created_at, updated_at";

macro_rules! template_from_row {
    ($r:expr) => {{
        let r = $r;
        let plan: String = r.try_get("plan").map_err(q("read template"))?;
        let metadata: String = r.try_get("metadata").map_err(q("read template"))?;
        let project: String = r.try_get("project").map_err(q("read template"))?;
        let corrupt = |what: &'static str| {
            move |e: serde_json::Error| StoreError::Corrupt {
                what,
                why: e.to_string(),
            }
        };
        Template {
            spec: TemplateSpec {
                id: r.try_get("id").map_err(q("read template"))?,
                name: r.try_get("name").map_err(q("read template"))?,
                description: r.try_get("description").map_err(q("read template"))?,
                category: r.try_get("category").map_err(q("read template"))?,
                plan: serde_json::from_str(&plan).map_err(corrupt("template plan"))?,
                metadata: serde_json::from_str(&metadata).map_err(corrupt("template metadata"))?,
            },
            usage_count: r.try_get("usage_count").map_err(q("read template"))?,
            shipped: project == SHIPPED,
            created_at: r.try_get("created_at").map_err(q("read template"))?,
            updated_at: r.try_get("updated_at").map_err(q("read template"))?,
        }
    }};
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Store {
    /// Templates `project` sees (its own and the shipped ones), most used first.
    ///
    /// # Errors
    /// Query failures.
    pub async fn templates(
        &self,
        project: &str,
        category: Option<&str>,
    ) -> Result<Vec<Template>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM templates WHERE (project = $1 OR project = '') \
             AND ($2 = '' OR category = $2) ORDER BY usage_count DESC, id, project DESC"
        );
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(&sql)
                .bind(project)
                .bind(category.unwrap_or(""))
                .fetch_all(p)
                .await
                .map_err(q("list templates"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(template_from_row!(r));
            }
            Ok(out)
        })
    }

    /// The template `id` as `project` sees it (its own, else a shipped one).
    ///
    /// # Errors
    /// Query failures.
    pub async fn template(&self, project: &str, id: &str) -> Result<Option<Template>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM templates WHERE (project = $1 OR project = '') AND id = $2 \
             ORDER BY project DESC LIMIT 1"
        );
        with_pool!(self, |p, _b| {
            let row = sqlx::query(&sql)
                .bind(project)
                .bind(id)
                .fetch_optional(p)
                .await
                .map_err(q("read template"))?;
            Ok(match row {
                Some(r) => Some(template_from_row!(r)),
                None => None,
            })
        })
    }

    /// Stores a new template of `project` (`SHIPPED` for shipped ones).
    ///
    /// # Errors
    /// `Exists` when `project` already sees a template with that id.
    pub async fn create_template(
        &self,
        project: &str,
        t: &TemplateSpec,
    ) -> Result<(), CreateTemplateError> {
        if self.template(project, &t.id).await?.is_some() {
            return Err(CreateTemplateError::Exists(t.id.clone()));
        }
        let now = crate::domain::time::now_ms();
        let sql = format!(
            "INSERT INTO templates ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8) \
             ON CONFLICT (project, id) DO NOTHING"
        );
        let n = with_pool!(self, |p, _b| {
            sqlx::query(&sql)
                .bind(project)
                .bind(&t.id)
                .bind(&t.name)
                .bind(&t.description)
                .bind(&t.category)
                .bind(json(&t.plan))
                .bind(json(&t.metadata))
                .bind(now)
                .execute(p)
                .await
                .map_err(q("create template"))?
                .rows_affected()
        });
        if n == 0 {
            return Err(CreateTemplateError::Exists(t.id.clone()));
        }
        Ok(())
    }

    /// Removes the shipped templates whose files are gone (ids not in `keep`); returns how
    /// many. Runs made from them keep their plans.
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn remove_shipped_templates_except(
        &self,
        keep: &[String],
    ) -> Result<u64, StoreError> {
        let mut sql = String::from("DELETE FROM templates WHERE project = $1");
        if !keep.is_empty() {
            let marks: Vec<String> = (0..keep.len()).map(|i| format!("${}", i + 2)).collect();
            sql.push_str(&format!(" AND id NOT IN ({})", marks.join(", ")));
        }
        let n = with_pool!(self, |p, _b| {
            let mut query = sqlx::query(&sql).bind(SHIPPED);
            for k in keep {
                query = query.bind(k);
            }
            query
                .execute(p)
                .await
                .map_err(q("remove shipped templates"))?
                .rows_affected()
        });
        Ok(n)
    }

    /// Stores a shipped template, or updates the stored one when it changed; `true` when
    /// something changed.
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn upsert_shipped_template(
        &self,
        t: &TemplateSpec,
    ) -> Result<bool, StoreError> {
        match self.template(SHIPPED, &t.id).await? {
            Some(old) if old.shipped && old.spec == *t => Ok(false),
            Some(old) if old.shipped => {
                let sql = "UPDATE templates SET name = $3, description = $4, category = $5, \
                           plan = $6, metadata = $7, updated_at = $8 WHERE project = $1 AND id = $2";
                let now = crate::domain::time::now_ms();
                with_pool!(self, |p, _b| {
                    sqlx::query(sql)
                        .bind(SHIPPED)
                        .bind(&t.id)
                        .bind(&t.name)
                        .bind(&t.description)
                        .bind(&t.category)
                        .bind(json(&t.plan))
                        .bind(json(&t.metadata))
                        .bind(now)
                        .execute(p)
                        .await
                        .map_err(q("update template"))?;
                });
                Ok(true)
            }
            _ => match self.create_template(SHIPPED, t).await {
                Ok(()) => Ok(true),
                Err(CreateTemplateError::Exists(_)) => Ok(false),
                Err(CreateTemplateError::Store(e)) => Err(e),
            },
        }
    }
}
