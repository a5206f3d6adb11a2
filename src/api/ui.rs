//! The dashboard: the built web app (`ui/dist`) inside the binary, served at `/ui/`. Hashed
//! assets (`/ui/assets/…`) are cached for good; `index.html` is revalidated each time (it
//! names the current assets); any other path under `/ui/` without a file extension is a page
//! of the app and gets `index.html`. Responses are compressed when the client accepts it.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

#[derive(rust_embed::RustEmbed)]
#[folder = "ui/dist/"]
struct Dist;

/// What every response carries: no inline script, no framing, no sniffing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard's routes (and `/` sending a browser to it).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route(
            "/ui/",
            get(|headers: HeaderMap| async move { file("index.html", &headers) }),
        )
        .route(
            "/ui/{*path}",
            get(
                |Path(path): Path<String>, headers: HeaderMap| async move { file(&path, &headers) },
            ),
        )
        .layer(tower_http::compression::CompressionLayer::new())
}

fn file(path: &str, headers: &HeaderMap) -> Response {
    let (name, found) = match Dist::get(path) {
        Some(f) => (path, f),
        // A page of the app (no extension): the app itself, which routes it.
        None if !last_segment(path).contains('.') => match Dist::get("index.html") {
            Some(f) => ("index.html", f),
            None => return missing(path),
        },
        None => return missing(path),
    };
    let etag = format!("\"{}\"", hex::encode(&found.metadata.sha256_hash()[..16]));
    let cache = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, found.metadata.mimetype().to_string())],
            found.data.into_owned(),
        )
            .into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn missing(path: &str) -> Response {
    super::ApiError::not_found(format!("no file `/ui/{path}`")).into_response()
}

/// Adds the security headers every response carries.
pub async fn headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}
