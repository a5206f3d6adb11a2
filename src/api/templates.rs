//! Templates over HTTP: list (most used first), read, create (plan validated), instantiate.

use super::auth::{Caller, RequestCorrelation};
use super::error::ApiError;
use super::extract::{Body, Params};
use super::runs::{submit, Submission};
use super::ApiState;
use crate::domain::template::TemplateSpec;
use crate::store::CreateTemplateError;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Query of `GET /templates`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    category: Option<String>,
}

/// `GET /templates?category=`.
pub async fn list(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Params(q): Params<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let ts = st
        .rt
        .store()
        .templates(&caller.project, q.category.as_deref())
        .await?;
    Ok(Json(json!({ "templates": ts })))
}

/// `GET /templates/{id}`.
pub async fn get(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = st
        .rt
        .store()
        .template(&caller.project, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no template `{id}`")))?;
    Ok(Json(serde_json::to_value(t).map_err(ApiError::internal)?))
}

/// `POST /templates` with `{id, name, description, category, plan, metadata}`.
pub async fn create(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let spec: TemplateSpec = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a template: {e}")))?;
    if let Err(problems) = st.rt.validate_template(&spec, "template") {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_template",
            format!("the template has {} problem(s)", problems.len()),
        )
        .with(
            "problems",
            Value::Array(
                problems
                    .into_iter()
                    .map(|m| json!({"message": m}))
                    .collect(),
            ),
        ));
    }
    match st.rt.store().create_template(&caller.project, &spec).await {
        Ok(()) => {}
        Err(CreateTemplateError::Exists(id)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "template_exists",
                format!("a template `{id}` already exists"),
            ))
        }
        Err(CreateTemplateError::Store(e)) => return Err(e.into()),
    }
    let t = st
        .rt
        .store()
        .template(&caller.project, &spec.id)
        .await?
        .ok_or_else(|| ApiError::internal("a template vanished after it was stored"))?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

/// Body of `POST /templates/{id}/instantiate`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct InstantiateBody {
    #[serde(default)]
    inputs: Map<String, Value>,
}

/// `POST /templates/{id}/instantiate` with `{inputs}` → 201 `{"id": run, "fromTemplate": id, …}`.
pub async fn instantiate(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(corr): Extension<RequestCorrelation>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let b: InstantiateBody = if body.iter().all(u8::is_ascii_whitespace) {
        InstantiateBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body: {e}")))?
    };
    let mut keyed = id.clone().into_bytes();
    keyed.push(b'\n');
    keyed.extend_from_slice(&body);
    submit(
        &st,
        &caller,
        corr,
        &headers,
        &keyed,
        Submission::Template(id, b.inputs),
    )
    .await
}
