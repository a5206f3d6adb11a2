//! The HTTP API of `nofx serve` (axum): runs, events, keys-based access per project, JSON
//! errors, correlation ids. One process runs the runtime and the API.

mod approvals;
mod artifacts;
mod auth;
mod checkpoints;
mod error;
mod extract;
mod graph;
mod info;
mod metrics;
pub mod openapi;
mod prps;
mod questions;
mod runs;
mod session;
mod stream;
mod task;
mod templates;
mod ui;

pub use auth::{Caller, CORRELATION_HEADER};
pub use error::ApiError;

use crate::runtime::Runtime;
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;

/// Requests per second each key may make (bursts up to the same number).
pub type KeyLimiter = governor::DefaultKeyedRateLimiter<String>;

/// Shared state of every handler.
#[derive(Clone)]
pub struct ApiState {
    /// The runtime.
    pub rt: Runtime,
    /// Per-key request rate.
    pub limiter: std::sync::Arc<KeyLimiter>,
    /// Requests with an unknown or revoked key, per client address.
    pub bad_keys: std::sync::Arc<KeyLimiter>,
    /// HTTP requests served, for `/metrics`.
    pub http: std::sync::Arc<metrics::HttpCounts>,
    /// Cancelled when the server begins to shut down: open event streams end then, so the
    /// requests in flight can finish.
    pub closing: tokio_util::sync::CancellationToken,
    /// Run graphs laid out for drawing, by shape.
    pub(crate) layouts: std::sync::Arc<graph::Layouts>,
}

/// Settings of the API.
#[derive(Debug, Clone, Copy)]
pub struct ApiOptions {
    /// Requests per second one key may make (and its burst).
    pub requests_per_second: std::num::NonZeroU32,
    /// Whether the dashboard is served at `/ui/` (and `/` leads to it).
    pub ui: bool,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            requests_per_second: std::num::NonZeroU32::new(50).unwrap_or(std::num::NonZeroU32::MIN),
            ui: true,
        }
    }
}

/// Requests with a bad key one client address may make: 5 a second, bursts of 10; past it,
/// 429 instead of 401.
const BAD_KEY_QUOTA: governor::Quota =
    governor::Quota::per_second(std::num::NonZeroU32::new(5).expect("5 is not zero"))
        .allow_burst(std::num::NonZeroU32::new(10).expect("10 is not zero"));

/// Largest request body accepted (413 above it).
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// The API's routes.
pub fn router(rt: Runtime, opts: ApiOptions) -> Router {
    routes(rt, opts, tokio_util::sync::CancellationToken::new())
}

fn routes(rt: Runtime, opts: ApiOptions, closing: tokio_util::sync::CancellationToken) -> Router {
    let quota = governor::Quota::per_second(opts.requests_per_second);
    let st = ApiState {
        rt,
        limiter: std::sync::Arc::new(governor::RateLimiter::keyed(quota)),
        bad_keys: std::sync::Arc::new(governor::RateLimiter::keyed(BAD_KEY_QUOTA)),
        http: std::sync::Arc::default(),
        closing,
        layouts: std::sync::Arc::default(),
    };
    let authed = Router::new()
        .route("/runs", post(runs::create).get(runs::list))
        .route("/runs/stream", get(stream::project_stream))
        .route("/runs/{id}", get(runs::get))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/runs/{id}/events", get(runs::events))
        .route("/runs/{id}/graph", get(graph::get))
        .route("/runs/{id}/stream", get(stream::run_stream))
        .route(
            "/runs/{id}/checkpoints",
            get(checkpoints::list).post(checkpoints::create),
        )
        .route("/checkpoints/{id}/restore", post(checkpoints::restore))
        .route("/runs/{id}/fork", post(checkpoints::fork))
        .route("/runs/{id}/tasks/{task}/approval", post(approvals::decide))
        .route("/approvals", get(approvals::open))
        .route("/runs/{id}/tasks/{task}", get(task::get))
        .route("/runs/{id}/tasks/{task}/transcript", get(runs::transcript))
        .route("/runs/{id}/questions", get(questions::of_run))
        .route("/runs/{id}/questions/{q}/answer", post(questions::answer))
        .route("/questions", get(questions::of_project))
        .route("/gather", post(questions::gather))
        .route("/prps", post(prps::create))
        .route("/prps/{id}", get(prps::get))
        .route("/prps/{id}/execute", post(prps::execute))
        .route("/runs/{id}/report", get(prps::report))
        .route("/runs/{id}/artifacts", get(artifacts::list))
        .route("/runs/{id}/artifacts/{*name}", get(artifacts::get))
        .route("/templates", get(templates::list).post(templates::create))
        .route("/templates/{id}", get(templates::get))
        .route("/templates/{id}/instantiate", post(templates::instantiate))
        .route("/agents", get(info::agents))
        .route("/analytics/usage", get(info::usage))
        .route("/metrics", get(metrics::metrics))
        .route("/session", get(session::get).delete(session::delete))
        .route_layer(axum::middleware::from_fn_with_state(
            st.clone(),
            auth::require_key,
        ));
    let app = if opts.ui { ui::routes() } else { Router::new() };
    app.route("/health", get(health))
        .route("/ready", get(info::ready))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .route("/session", post(session::create))
        .merge(authed)
        .route_layer(axum::middleware::from_fn_with_state(
            st.clone(),
            metrics::count,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(auth::correlation))
        .layer(axum::middleware::from_fn(ui::headers))
        .with_state(st)
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "`{method} {}` is not an operation (see /openapi.json)",
            uri.path()
        ),
    )
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint `{}`", uri.path()))
}

/// Serves the API on `listener` until `shutdown` resolves; then stops taking requests, ends
/// the open event streams and lets requests in flight finish.
///
/// # Errors
/// When the server fails.
///
/// # Cancel safety
/// Dropping the future stops serving at once.
pub async fn serve(
    rt: Runtime,
    opts: ApiOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let closing = tokio_util::sync::CancellationToken::new();
    let app = routes(rt, opts, closing.clone());
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        closing.cancel();
    })
    .await
}
