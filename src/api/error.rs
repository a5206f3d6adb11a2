//! API errors: every failure answers with a JSON body `{"error": {"code", "message", …}}`
//! and the status its kind means. Internal causes are logged once and never shown.

use crate::runtime::RuntimeError;
use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// Seconds a 503 asks the client to wait before trying again.
pub const RETRY_AFTER_S: &str = "2";

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `invalid_plan`.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
    /// More fields of the error object (e.g. `problems`).
    pub extra: Map<String, Value>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// 400 naming what is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 for a run (or another resource) the key cannot see.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// A request the framework refused (body too large, malformed query, …).
    pub fn rejected(status: StatusCode, message: String) -> Self {
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                return Self::new(
                    status,
                    "body_too_large",
                    format!(
                        "the body is over the limit of {} bytes (2 MiB)",
                        super::MAX_BODY
                    ),
                )
                .with("limit", json!(super::MAX_BODY))
            }
            s if s.is_server_error() => return Self::internal(message),
            _ => "bad_request",
        };
        Self::new(status, code, message)
    }

    /// A whole-number query parameter, or a 400 naming it.
    pub fn whole(name: &str, value: &Option<String>) -> Result<Option<i64>, Self> {
        match value {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                let shown: String = v.chars().take(40).collect();
                Self::bad_request(format!("`{name}` must be a whole number, got `{shown}`"))
                    .with("parameter", json!(name))
            }),
        }
    }

    /// Adds a field to the error object.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// 503 for a store that cannot be reached now (restarting, connections lost, disk
    /// full), logging the cause once; the answer carries `Retry-After`.
    pub fn unavailable(cause: &impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "request failed: the store is unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store cannot be reached just now; try again shortly",
        )
    }

    /// 500, logging the cause once; the client learns nothing internal.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed inside the server; its cause is in the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        error.extend(self.extra);
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        // Every 503 passes (a store coming back, a server restarting): say when to try again.
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_S),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchRun(_) => Self::not_found("no such run"),
            StoreError::NoSuchCheckpoint(id) => Self::not_found(format!("no checkpoint `{id}`")),
            StoreError::BadRange(m) | StoreError::BadInput(m) => Self::bad_request(m),
            e if e.is_unavailable() => Self::unavailable(&e),
            other => Self::internal(other),
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Plan(p) => {
                let problems: Vec<Value> =
                    p.0.iter()
                        .map(|i| {
                            json!({
                                "task": i.error.task(),
                                "field": i.error.field(),
                                "line": i.line,
                                "message": i.error.to_string(),
                            })
                        })
                        .collect();
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_plan",
                    format!("the plan has {} problem(s)", problems.len()),
                )
                .with("problems", Value::Array(problems))
            }
            RuntimeError::BadPrp(e) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_prp",
                format!("the PRP has {} problem(s)", e.problems.len()),
            )
            .with("problems", json!(e.problems)),
            RuntimeError::BadGoal(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_goal", m),
            RuntimeError::BadFork(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_fork", m),
            RuntimeError::NotWaiting(m) => Self::new(StatusCode::CONFLICT, "not_waiting", m),
            RuntimeError::NotApprover(m) => Self::new(StatusCode::FORBIDDEN, "not_an_approver", m),
            RuntimeError::Forbidden { scope, message } => {
                Self::new(StatusCode::FORBIDDEN, "missing_scope", message)
                    .with("scope", json!(scope))
            }
            RuntimeError::NoSuchTask(m) | RuntimeError::NoSuchQuestion(m) => Self::not_found(m),
            RuntimeError::BadAnswer(r) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_answer",
                r.to_string(),
            )
            .with("question", json!(r.question))
            .with("rule", json!(r.rule)),
            RuntimeError::Answered(m) => Self::new(StatusCode::CONFLICT, "already_answered", m),
            RuntimeError::Planner(e) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "planner_failed",
                e.to_string(),
            ),
            RuntimeError::Store(s) => s.into(),
            RuntimeError::Write(s) if s.is_unavailable() => Self::unavailable(&s),
            RuntimeError::NoSuchTemplate(t) => Self::not_found(format!("no template `{t}`")),
            RuntimeError::Stopped => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping",
                "the server is shutting down",
            ),
            other => Self::internal(other),
        }
    }
}
