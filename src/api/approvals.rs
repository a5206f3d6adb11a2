//! Decisions on manual approvals over HTTP.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::Body;
use super::runs::visible_run;
use super::ApiState;
use crate::domain::ApprovalDecision;
use crate::runtime::{Approval, Decision};
use axum::extract::{Extension, Path, State};
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: String,
    by: String,
    reason: Option<String>,
}

/// `POST /runs/{id}/tasks/{task}/approval` with `{"decision": "approve"|"reject", "by":
/// NAME, "reason": TEXT}` → 200, the decided wait; 409 when the task is not waiting (or was
/// already decided); 403 when NAME may not decide.
pub async fn decide(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((id, task)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Approval>, ApiError> {
    let b: DecisionBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be {{\"decision\": \"approve\"|\"reject\", \"by\": NAME, \"reason\": TEXT}}: {e}"
        ))
    })?;
    let approve = ApprovalDecision::parse(&b.decision).map_err(|_| {
        ApiError::bad_request(format!(
            "`decision` must be \"approve\" or \"reject\", not {:?}",
            b.decision
        ))
    })? == ApprovalDecision::Approve;
    let r = visible_run(&st, &caller, &id).await?;
    let decision = Decision {
        approve,
        by: b.by,
        reason: b.reason,
    };
    Ok(Json(st.rt.decide(r.id, &task, decision).await?))
}

/// Approvals listed at most.
const MAX_LISTED: i64 = 500;

/// `GET /approvals`: `{approvals}`, the undecided manual approvals of every run of the key's
/// project, oldest first (each a wait: run, task, attempt, approvers, deadline).
///
/// # Errors
/// Store failures.
pub async fn open(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = st
        .rt
        .store()
        .open_approvals(&caller.project, MAX_LISTED)
        .await?;
    Ok(Json(serde_json::json!({ "approvals": list })))
}
