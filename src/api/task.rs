//! `GET /runs/{id}/tasks/{task}`: one task as the dashboard's detail shows it: its row, its
//! spec as the plan (or its parent's decomposition) wrote it, its events in order (attempts,
//! the agents scored for it, gate results with their reasons, model routing and calls) and
//! its artifacts.

use super::auth::Caller;
use super::error::ApiError;
use super::runs::visible_run;
use super::ApiState;
use crate::domain::TaskKey;
use crate::runtime::TaskOutcome;
use axum::extract::{Extension, Path, State};
use axum::Json;
use serde_json::{json, Value};

/// `GET /runs/{id}/tasks/{task}`.
///
/// # Errors
/// 404 for a run the caller may not see or a task the run does not have; store failures.
pub async fn get(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((id, task)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let run = visible_run(&st, &caller, &id).await?;
    let store = st.rt.store();
    // The spec as written: the plan's task, or a subtask as its latest decomposition made
    // it (read from the stored rows; the plan is not validated again for one task).
    let spec = match run.plan.tasks.iter().find(|t| t.id == task) {
        Some(t) => Some(t.clone()),
        None => store
            .decompositions(run.id)
            .await?
            .into_iter()
            .rev()
            .find_map(|d| d.subtasks.into_iter().find(|s| s.id == task)),
    }
    .map(serde_json::to_value)
    .transpose()
    .map_err(ApiError::internal)?;
    let row = store.task(run.id, &task).await?;
    if row.is_none() && spec.is_none() {
        return Err(ApiError::not_found(format!(
            "run `{}` has no task `{task}`",
            run.id
        )));
    }
    let outcome = match row {
        Some(r) => TaskOutcome::of(r),
        None => TaskOutcome::pending(TaskKey::from_trusted(task.clone())),
    };
    let events = store.task_events(run.id, &task).await?;
    let artifacts: Vec<_> = store
        .artifacts(run.id)
        .await?
        .into_iter()
        .filter(|a| a.task_id.as_str() == task)
        .collect();
    Ok(Json(json!({
        "task": outcome,
        "spec": spec,
        "events": events,
        "artifacts": artifacts,
    })))
}
