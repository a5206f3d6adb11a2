//! Checkpoints over HTTP: create one for a run, list a run's checkpoints.

use super::auth::Caller;
use super::error::ApiError;
use super::runs::visible_run;
use super::ApiState;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
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
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::rejected(r.status(), r.body_text()))?;
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
