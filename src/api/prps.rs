//! PRPs over HTTP: store one (checked: 422 with every problem at its key path), read it,
//! execute it as a run, and the report of a PRP's run.

use super::auth::{server_dir, Caller, RequestCorrelation};
use super::error::ApiError;
use super::extract::Body;
use super::runs::{submit, visible_run, Submission};
use super::ApiState;
use crate::domain::plan::Format;
use crate::domain::prp::{PrpSource, RollbackPolicy};
use crate::runtime::PrpReport;
use crate::store::PrpRow;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

/// Reads a PRP from a body: JSON, or YAML (by `Content-Type`).
fn read(headers: &HeaderMap, body: &[u8]) -> Result<PrpSource, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty: send a PRP (JSON or YAML)",
        ));
    }
    let yaml = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("yaml"));
    let format = if yaml { Format::Yaml } else { Format::Json };
    PrpSource::parse(text, format, None).map_err(|e| crate::RuntimeError::BadPrp(e).into())
}

/// `POST /prps`: checks the PRP against this runtime (the files its context names are
/// checked when it runs) and stores it; 201 with the stored PRP.
pub async fn create(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let src = read(&headers, &body)?;
    st.rt
        .check_prp(&src, None, RollbackPolicy::Step)
        .map_err(crate::RuntimeError::BadPrp)?;
    let row = st.rt.store_prp(&src.prp, &caller.project, None).await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

async fn stored(st: &ApiState, caller: &Caller, id: &str) -> Result<PrpRow, ApiError> {
    st.rt
        .store()
        .prp(&caller.project, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no PRP `{id}`")))
}

/// `GET /prps/{id}`.
pub async fn get(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<PrpRow>, ApiError> {
    Ok(Json(stored(&st, &caller, &id).await?))
}

/// Body of `POST /prps/{id}/execute`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Execute {
    /// A directory of the server the PRP works on (copied, unless `inPlace`).
    path: Option<String>,
    /// Work on `path` itself (its git tree must be clean).
    #[serde(default)]
    in_place: bool,
    /// `step` (default), `all` or `none`.
    rollback: Option<String>,
}

/// `POST /prps/{id}/execute`: a run of the stored PRP; 201 with the run, as `POST /runs`.
pub async fn execute(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(corr): Extension<RequestCorrelation>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let how: Execute = if body.iter().all(u8::is_ascii_whitespace) {
        Execute::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be {{\"path\": DIR, \"inPlace\": false, \"rollback\": \"step|all|none\"}}: {e}"
            ))
        })?
    };
    let rollback = match how.rollback.as_deref() {
        None => RollbackPolicy::Step,
        Some(r) => RollbackPolicy::parse(r).map_err(ApiError::bad_request)?,
    };
    let path = match &how.path {
        Some(p) => Some(server_dir(
            &caller,
            p,
            "a PRP run on a directory of the server",
        )?),
        None if how.in_place => {
            return Err(ApiError::bad_request("`inPlace` needs `path`"));
        }
        None => None,
    };
    let row = stored(&st, &caller, &id).await?;
    let src = PrpSource::parse(&row.prp.to_string(), Format::Json, Some(&row.id))
        .map_err(crate::RuntimeError::BadPrp)?;
    let submission = Submission::Prp(Box::new(src), path, how.in_place, rollback);
    submit(&st, &caller, corr, &headers, &body, submission).await
}

/// `GET /runs/{id}/report`: a PRP run, step by step (404 for a run that is not a PRP's).
pub async fn report(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<PrpReport>, ApiError> {
    let run = visible_run(&st, &caller, &id).await?;
    match st.rt.prp_report(run.id).await {
        Ok(r) => Ok(Json(r)),
        Err(crate::RuntimeError::BadPrp(e)) => Err(ApiError::not_found(
            e.problems
                .first()
                .map(|p| p.message.clone())
                .unwrap_or_default(),
        )),
        Err(e) => Err(e.into()),
    }
}
