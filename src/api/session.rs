//! Browser sessions of the dashboard. `POST /session {key}` checks an API key and sets an
//! HttpOnly, SameSite=Strict cookie holding a session token (Secure behind TLS); the API then
//! accepts the cookie as it accepts `Authorization: Bearer`, so `EventSource` and artifact
//! links work without the key ever reaching a script, storage or a URL. A change made with
//! the cookie (any method but GET and HEAD) must carry the session's CSRF token in
//! `X-Nofx-Csrf` (403 without): another site can make a browser send the cookie, but it cannot
//! read the token. `DELETE /session` ends the session and clears the cookie.

use super::auth::{bad_key, Caller};
use super::error::ApiError;
use super::extract::Body;
use super::ApiState;
use crate::domain::time::{now_ms, rfc3339};
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The session cookie.
pub const COOKIE: &str = "nofx_session";
/// The header a cookie-authenticated change carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-nofx-csrf";
/// How long a session lasts.
const LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;

/// How a request was authenticated by cookie: the session's CSRF token and expiry.
#[derive(Debug, Clone)]
pub struct CookieSession {
    token: String,
    csrf: String,
    expires_at: i64,
}

impl CookieSession {
    pub(crate) fn new(token: &str, expires_at: i64) -> Self {
        Self {
            token: token.to_string(),
            csrf: csrf_of(token),
            expires_at,
        }
    }

    /// Whether `headers` carry this session's CSRF token.
    pub(crate) fn csrf_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| constant_eq(v.as_bytes(), self.csrf.as_bytes()))
    }
}

/// The CSRF token of a session: derived from its token, so nothing more is stored.
fn csrf_of(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"nofx csrf\0");
    h.update(token.as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session token of the request's cookie, if any.
pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// `Set-Cookie` for `value` lasting `max_age` seconds (0 clears it); Secure when the request
/// came over TLS (as a proxy in front says).
fn set_cookie(headers: &HeaderMap, value: &str, max_age: i64) -> Option<HeaderValue> {
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    key: String,
}

fn view(caller: &Caller, csrf: Option<&str>, expires_at: Option<i64>) -> serde_json::Value {
    json!({
        "project": caller.project,
        "keyId": caller.key_id,
        "scopes": caller.scopes,
        "csrf": csrf,
        "expiresAt": expires_at.map(rfc3339),
    })
}

/// `POST /session {key}`: a session for a live key, in a cookie.
///
/// # Errors
/// 422 for a body that is not `{key}`; 401 for an unknown or revoked key (429 when one
/// address tries too many).
pub async fn create(
    State(st): State<ApiState>,
    headers: HeaderMap,
    connect: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let login: Login = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_request",
            format!("send {{\"key\": \"nofx_…\"}}: {e}"),
        )
    })?;
    let secret = login.key.trim();
    let key = if secret.is_empty() || secret.len() > 256 {
        None
    } else {
        st.rt.store().key_by_secret(secret).await?
    };
    let Some(key) = key else {
        return Ok(bad_key(&st, connect.map(|Extension(c)| c.0)));
    };
    let expires_at = now_ms() + LIFETIME_MS;
    let token = st.rt.store().create_session(&key.id, expires_at).await?;
    let caller = Caller {
        key_id: key.id,
        project: key.project,
        scopes: key.scopes,
    };
    let mut resp = (
        StatusCode::CREATED,
        Json(view(&caller, Some(&csrf_of(&token)), Some(expires_at))),
    )
        .into_response();
    if let Some(v) = set_cookie(&headers, &token, LIFETIME_MS / 1000) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `GET /session`: who the caller is; with the cookie, the CSRF token its changes carry.
pub async fn get(
    Extension(caller): Extension<Caller>,
    session: Option<Extension<CookieSession>>,
) -> Response {
    let s = session.map(|Extension(s)| s);
    let mut resp = Json(view(
        &caller,
        s.as_ref().map(|s| s.csrf.as_str()),
        s.as_ref().map(|s| s.expires_at),
    ))
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `DELETE /session`: ends the cookie's session and clears the cookie.
///
/// # Errors
/// Store failures.
pub async fn delete(
    State(st): State<ApiState>,
    headers: HeaderMap,
    session: Option<Extension<CookieSession>>,
) -> Result<Response, ApiError> {
    let ended = match session {
        Some(Extension(s)) => st.rt.store().end_session(&s.token).await?,
        None => false,
    };
    let mut resp = Json(json!({ "ended": ended })).into_response();
    if let Some(v) = set_cookie(&headers, "", 0) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_bounded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; nofx_session=tok; b=2"),
        );
        assert_eq!(cookie_token(&h), Some("tok"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("nofx_sessionx=1"));
        assert_eq!(cookie_token(&h), None);
        let long = format!("nofx_session={}", "x".repeat(200));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&long).unwrap());
        assert_eq!(cookie_token(&h), None);
    }

    #[test]
    fn the_csrf_token_is_the_sessions_own() {
        let s = CookieSession::new("nofxs_a", 0);
        let mut h = HeaderMap::new();
        assert!(!s.csrf_ok(&h));
        h.insert(
            CSRF_HEADER,
            HeaderValue::from_str(&csrf_of("nofxs_b")).unwrap(),
        );
        assert!(!s.csrf_ok(&h));
        h.insert(
            CSRF_HEADER,
            HeaderValue::from_str(&csrf_of("nofxs_a")).unwrap(),
        );
        assert!(s.csrf_ok(&h));
    }
}
