//! Checkpoints over HTTP: create one for a run, list a run's checkpoints, start a new run
//! from one (restore) or fork a run at a task.

use super::auth::{Caller, RequestCorrelation};
use super::error::ApiError;
use super::extract::Body;
use super::runs::{submit, visible_run, Submission};
use super::ApiState;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    description: Option<String>,
}

/// `POST /runs/{id}/checkpoints` with an optional `{"description": …}` → 201, the checkpoint.
pub async fn create(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let b: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body: {e}")))?
    };
    let r = visible_run(&st, &caller, &id).await?;
    let cp = st.rt.checkpoint(r.id, b.description).await?;
    Ok((StatusCode::CREATED, Json(cp)).into_response())
}

/// `GET /runs/{id}/checkpoints`.
pub async fn list(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = visible_run(&st, &caller, &id).await?;
    let cps = st.rt.store().checkpoints(r.id).await?;
    Ok(Json(json!({ "checkpoints": cps })))
}

/// `POST /checkpoints/{id}/restore` (empty body) → 201, the new run; with an
/// `Idempotency-Key`, a retry gets the first request's run.
pub async fn restore(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(corr): Extension<RequestCorrelation>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    if !body.iter().all(u8::is_ascii_whitespace) && body.as_ref() != b"{}" {
        return Err(ApiError::bad_request(
            "the body must be empty: a restore takes nothing but the checkpoint id",
        ));
    }
    let cp = match st.rt.store().checkpoint(&id).await {
        Ok(cp) => cp,
        Err(crate::store::StoreError::NoSuchCheckpoint(_)) => {
            return Err(ApiError::not_found(format!("no checkpoint `{id}`")))
        }
        Err(e) => return Err(e.into()),
    };
    // Another project's checkpoint is "not found" as its run is.
    visible_run(&st, &caller, &cp.run_id.to_string())
        .await
        .map_err(|_| ApiError::not_found(format!("no checkpoint `{id}`")))?;
    let key = format!("POST /checkpoints/{id}/restore");
    submit(
        &st,
        &caller,
        corr,
        &headers,
        key.as_bytes(),
        Submission::Restore(id),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForkBody {
    at: String,
    patch: Option<Value>,
    #[serde(default)]
    inputs: serde_json::Map<String, Value>,
}

/// `POST /runs/{id}/fork` with `{"at": TASK, "patch": {…}, "inputs": {…}}` → 201, the new
/// run.
pub async fn fork(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(corr): Extension<RequestCorrelation>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let b: ForkBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be {{\"at\": TASK, \"patch\": {{…}}, \"inputs\": {{…}}}}: {e}"
        ))
    })?;
    let r = visible_run(&st, &caller, &id).await?;
    let mut key = format!("POST /runs/{}/fork\n", r.id).into_bytes();
    key.extend_from_slice(&body);
    let fork = crate::runtime::Fork {
        at: b.at,
        patch: b.patch,
        inputs: b.inputs,
    };
    submit(
        &st,
        &caller,
        corr,
        &headers,
        &key,
        Submission::Fork(r.id, fork),
    )
    .await
}
