//! Commands from other processes (e.g. `nofx runs cancel`), picked up by a run's owner.

use super::{q, with_pool, Store, StoreError};
use crate::domain::RunId;
use sqlx::Row;

/// What a command asks of the run's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// Cancel the run (`nofx runs cancel`, `POST /runs/{id}/cancel`).
    Cancel,
    /// Read the run's waits again: someone decided on an approval.
    Wake,
}

impl CommandKind {
    /// `cancel` or `wake`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Wake => "wake",
        }
    }

    /// Parses the stored text; `None` for a kind this version does not know.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cancel" => Some(Self::Cancel),
            "wake" => Some(Self::Wake),
            _ => None,
        }
    }
}

/// A command row not yet handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Row id.
    pub id: i64,
    /// The run.
    pub run_id: RunId,
    /// What it asks (`None`: a kind this version does not know, handled by ignoring it).
    pub kind: Option<CommandKind>,
    /// Free text from the sender.
    pub reason: Option<String>,
}

impl Store {
    /// Unhandled commands for the runs whose lease `holder` has.
    ///
    /// # Errors
    /// Query failures.
    pub async fn open_commands(&self, holder: &str) -> Result<Vec<Command>, StoreError> {
        with_pool!(self, |p, _b| {
            let rows = sqlx::query(
                "SELECT c.id, c.run_id, c.kind, c.reason FROM run_commands c \
                 JOIN leases l ON l.run_id = c.run_id \
                 WHERE l.holder = $1 AND c.handled_at IS NULL ORDER BY c.id",
            )
            .bind(holder)
            .fetch_all(p)
            .await
            .map_err(q("read commands"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let run: String = r.try_get("run_id").map_err(q("read commands"))?;
                out.push(Command {
                    id: r.try_get("id").map_err(q("read commands"))?,
                    run_id: run.parse().map_err(|_| StoreError::Corrupt {
                        what: "command run id",
                        why: run.clone(),
                    })?,
                    kind: CommandKind::parse(
                        &r.try_get::<String, _>("kind").map_err(q("read commands"))?,
                    ),
                    reason: r.try_get("reason").map_err(q("read commands"))?,
                });
            }
            Ok(out)
        })
    }
}
