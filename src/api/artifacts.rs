//! A run's artifacts: the list, and each file with its content type and SHA-256.

use super::auth::Caller;
use super::error::ApiError;
use super::runs::visible_run;
use super::ApiState;
use crate::store::{find_artifact, ArtifactLookup, Blobs};
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// `GET /runs/{id}/artifacts`.
pub async fn list(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = visible_run(&st, &caller, &id).await?;
    let list = st.rt.store().artifacts(r.id).await?;
    Ok(Json(json!({ "artifacts": list })))
}

/// A content type from the file name.
fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "md" => "text/markdown; charset=utf-8",
        "txt" | "log" | "rs" | "py" | "sh" | "toml" | "yaml" | "yml" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        _ if name == "stdout" || name == "stderr" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET /runs/{id}/artifacts/{name}` (a name, or `TASK/NAME` when several tasks have it).
pub async fn get(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let r = visible_run(&st, &caller, &id).await?;
    let list = st.rt.store().artifacts(r.id).await?;
    let a = find_artifact(&list, &name).map_err(|e| match e {
        ArtifactLookup::Missing => {
            ApiError::not_found(format!("run {} has no artifact `{name}`", r.id))
        }
        ArtifactLookup::Ambiguous(names) => ApiError::new(
            StatusCode::CONFLICT,
            "ambiguous_artifact",
            format!("artifact `{name}` is ambiguous; ask for one of the candidates"),
        )
        .with("candidates", json!(names)),
    })?;
    let path = Blobs::new(st.rt.data_dir().join("artifacts")).path_of(&a.hash);
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::internal(format!("artifact {} at {}: {e}", a.hash, path.display()))
    })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&a.name)),
    );
    if let Ok(v) = HeaderValue::from_str(&a.size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", a.hash)) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&a.hash) {
        h.insert("x-content-sha256", v);
    }
    Ok(resp)
}
