//! Who calls: the `Authorization: Bearer` key decides the project (never the request body);
//! the `X-Correlation-Id` header is accepted when well formed, else a new id is made, and it
//! is echoed on every response.

use super::error::ApiError;
use super::session;
use super::ApiState;
use crate::domain::CorrelationId;
use crate::store::Scope;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's id.
    pub key_id: String,
    /// The key's project.
    pub project: String,
    /// What the key may do.
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// Whether the key has `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// 403 naming the scope the key lacks.
pub fn missing_scope(scope: Scope, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "missing_scope",
        format!(
            "{what} needs an API key with the `{}` scope; this key lacks it",
            scope.as_str()
        ),
    )
    .with("scope", serde_json::json!(scope.as_str()))
}

/// The request's correlation id.
#[derive(Debug, Clone)]
pub struct RequestCorrelation(pub CorrelationId);

/// Header carrying the correlation id.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// Sets the request's correlation id and echoes it on the response.
pub async fn correlation(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| CorrelationId::from_caller(s).ok())
        .unwrap_or_else(CorrelationId::generate);
    req.extensions_mut().insert(RequestCorrelation(id.clone()));
    let span = tracing::info_span!(
        "http_request",
        corr = %id,
        method = %req.method(),
        path = %req.uri().path(),
        status = tracing::field::Empty,
    );
    let mut resp = {
        use tracing::Instrument;
        next.run(req).instrument(span.clone()).await
    };
    span.record("status", resp.status().as_u16());
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        resp.headers_mut().insert(CORRELATION_HEADER, v);
    }
    resp
}

/// Requires a live API key: `Authorization: Bearer KEY`, or the dashboard's session cookie
/// (whose changes must carry its CSRF token).
pub async fn require_key(State(st): State<ApiState>, mut req: Request, next: Next) -> Response {
    let secret = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| {
            let (scheme, rest) = v.trim_start().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest)
        })
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let found = match (secret, session::cookie_token(req.headers())) {
        (Some(secret), _) => st
            .rt
            .store()
            .key_by_secret(&secret)
            .await
            .map(|k| k.map(|k| (k, None))),
        (None, Some(token)) => {
            let token = token.to_string();
            st.rt.store().session_key(&token).await.map(|k| {
                k.map(|(k, expires)| (k, Some(session::CookieSession::new(&token, expires))))
            })
        }
        (None, None) => {
            return unauthorized("send an API key as `Authorization: Bearer KEY` (create one with `nofx keys create --project P`)");
        }
    };
    match found {
        Ok(Some((k, cookie))) => {
            if let Err(not_until) = st.limiter.check_key(&k.id) {
                return too_many(not_until, "this key is over its request rate");
            }
            if let Some(c) = cookie {
                let reads = matches!(
                    *req.method(),
                    axum::http::Method::GET | axum::http::Method::HEAD
                );
                if !reads && !c.csrf_ok(req.headers()) {
                    return ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf",
                        format!(
                            "a change made with the session cookie needs the session's CSRF token in `{}` (GET /session gives it)",
                            session::CSRF_HEADER
                        ),
                    )
                    .into_response();
                }
                req.extensions_mut().insert(c);
            }
            // Every change (a POST) needs `submit`; reads need only a live key.
            if req.method() == axum::http::Method::POST && !k.has(Scope::Submit) {
                return missing_scope(Scope::Submit, "this request").into_response();
            }
            req.extensions_mut().insert(Caller {
                key_id: k.id,
                project: k.project,
                scopes: k.scopes,
            });
            next.run(req).await
        }
        Ok(None) => bad_key(&st, client),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// 401 for an unknown or revoked key or an ended session; guessing is slowed down per client
/// address (429 past 5 a second).
pub(crate) fn bad_key(st: &ApiState, client: Option<std::net::SocketAddr>) -> Response {
    let client = client.map_or_else(|| "unknown".to_string(), |c| c.ip().to_string());
    if let Err(not_until) = st.bad_keys.check_key(&client) {
        return too_many(
            not_until,
            "too many requests with unknown or revoked keys from this address",
        );
    }
    unauthorized("the API key is unknown or revoked, or the session has ended")
}

/// 429 with `Retry-After`.
fn too_many(not_until: governor::NotUntil<governor::clock::QuantaInstant>, why: &str) -> Response {
    use governor::clock::{Clock, DefaultClock};
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{why}; retry in {secs}s"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, v);
    }
    resp
}

fn unauthorized(message: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    resp.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer"),
    );
    resp
}

/// A directory of the server a request names: absolute and existing; only for keys with
/// the `shell` scope.
pub(crate) fn server_dir(
    caller: &Caller,
    path: &str,
    what: &str,
) -> Result<std::path::PathBuf, ApiError> {
    if !caller.has(Scope::Shell) {
        return Err(missing_scope(Scope::Shell, what));
    }
    let dir = std::path::PathBuf::from(path);
    if !dir.is_absolute() || !dir.is_dir() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_path",
            format!("`path` must be an existing directory of the server, given absolute: {path}"),
        ));
    }
    Ok(dir)
}
