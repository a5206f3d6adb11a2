//! Reads of artifact rows.

use super::{q, with_pool, ArtifactRow, Store, StoreError};
use crate::domain::{RunId, TaskKey};
use sqlx::Row;

impl Store {
    /// The artifacts of a run, by task then name.
    ///
    /// # Errors
    /// Query failures.
    pub async fn artifacts(&self, run: RunId) -> Result<Vec<ArtifactRow>, StoreError> {
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(
                "SELECT task_id, name, hash, size, created_at FROM artifacts WHERE run_id = $1 ORDER BY task_id, name",
            )
            .bind(run.to_string())
            .fetch_all(p)
            .await
            .map_err(q("read artifacts"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(ArtifactRow {
                    run_id: run,
                    task_id: TaskKey::from_trusted(
                        r.try_get("task_id").map_err(q("read artifacts"))?,
                    ),
                    name: r.try_get("name").map_err(q("read artifacts"))?,
                    hash: r.try_get("hash").map_err(q("read artifacts"))?,
                    size: r.try_get("size").map_err(q("read artifacts"))?,
                    created_at: r.try_get("created_at").map_err(q("read artifacts"))?,
                });
            }
            Ok(out)
        })
    }
}

/// Why an artifact name does not pick one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactLookup {
    /// No artifact has that name.
    Missing,
    /// Several tasks have one of that name: these `TASK/NAME`s tell them apart.
    Ambiguous(Vec<String>),
}

/// The artifact `name` (or `TASK/NAME`) names among `list`.
///
/// # Errors
/// None or several match.
pub fn find_artifact<'a>(
    list: &'a [super::ArtifactRow],
    name: &str,
) -> Result<&'a super::ArtifactRow, ArtifactLookup> {
    let matches: Vec<&super::ArtifactRow> = list
        .iter()
        .filter(|a| a.name == name || format!("{}/{}", a.task_id, a.name) == name)
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(ArtifactLookup::Missing),
        many => Err(ArtifactLookup::Ambiguous(
            many.iter()
                .map(|a| format!("{}/{}", a.task_id, a.name))
                .collect(),
        )),
    }
}
