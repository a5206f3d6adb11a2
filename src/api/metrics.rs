//! `GET /metrics` in the Prometheus text format: runs and tasks by status, the task-duration
//! histogram, queue depth and load per agent, model calls, tokens and cost by model, and HTTP
//! requests by route and status.

use super::error::ApiError;
use super::ApiState;
use crate::store::DURATION_BUCKETS;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// HTTP requests served, by route and status.
#[derive(Default)]
pub struct HttpCounts(Mutex<BTreeMap<(String, u16), u64>>);

/// Counts each request by its route pattern and response status.
pub async fn count(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let mut c = st.http.0.lock().unwrap_or_else(|p| p.into_inner());
    *c.entry((format!("{method} {route}"), resp.status().as_u16()))
        .or_default() += 1;
    resp
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: the operator's view of every project, for keys with the `admin` scope.
pub async fn metrics(
    State(st): State<ApiState>,
    axum::extract::Extension(caller): axum::extract::Extension<super::Caller>,
) -> Result<Response, ApiError> {
    if !caller.has(crate::store::Scope::Admin) {
        return Err(super::auth::missing_scope(
            crate::store::Scope::Admin,
            "`GET /metrics` (every project's runs, tasks and model cost)",
        ));
    }
    let s = st.rt.store().stats().await?;
    let q = st.rt.queue().await?;
    let mut out = String::new();
    for (name, help, rows) in [
        ("nofx_runs", "Runs in the store by status.", &s.runs),
        ("nofx_tasks", "Tasks that have moved, by status.", &s.tasks),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (status, count) in rows {
            let _ = writeln!(out, "{name}{{status=\"{}\"}} {count}", label(status));
        }
    }
    let _ = writeln!(
        out,
        "# HELP nofx_task_duration_seconds Duration of task attempts.\n# TYPE nofx_task_duration_seconds histogram"
    );
    for (b, c) in DURATION_BUCKETS.iter().zip(&s.duration_buckets) {
        let _ = writeln!(out, "nofx_task_duration_seconds_bucket{{le=\"{b}\"}} {c}");
    }
    let _ = writeln!(
        out,
        "nofx_task_duration_seconds_bucket{{le=\"+Inf\"}} {}\nnofx_task_duration_seconds_sum {}\nnofx_task_duration_seconds_count {}",
        s.duration_count, s.duration_sum, s.duration_count
    );
    let _ = writeln!(
        out,
        "# HELP nofx_queue_depth Tasks waiting for an agent.\n# TYPE nofx_queue_depth gauge\nnofx_queue_depth {}",
        q.waiting
    );
    let _ = writeln!(
        out,
        "# HELP nofx_agent_in_flight Tasks in flight per agent.\n# TYPE nofx_agent_in_flight gauge"
    );
    for a in &q.agents {
        let _ = writeln!(
            out,
            "nofx_agent_in_flight{{agent=\"{}\"}} {}",
            label(&a.id),
            a.in_flight
        );
    }
    let _ = writeln!(
        out,
        "# HELP nofx_agent_max_concurrency Task slots per agent.\n# TYPE nofx_agent_max_concurrency gauge"
    );
    for a in &q.agents {
        let _ = writeln!(
            out,
            "nofx_agent_max_concurrency{{agent=\"{}\"}} {}",
            label(&a.id),
            a.max_concurrency
        );
    }
    for (name, help, pick) in [
        ("nofx_model_calls_total", "Model calls by model.", 0usize),
        (
            "nofx_model_tokens_total",
            "Model tokens (input + output) by model.",
            1,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (model, calls, tokens, _) in &s.models {
            let v = if pick == 0 { calls } else { tokens };
            let _ = writeln!(out, "{name}{{model=\"{}\"}} {v}", label(model));
        }
    }
    let _ = writeln!(
        out,
        "# HELP nofx_model_cost_usd_total Model cost in USD by model.\n# TYPE nofx_model_cost_usd_total counter"
    );
    for (model, _, _, cost) in &s.models {
        let _ = writeln!(
            out,
            "nofx_model_cost_usd_total{{model=\"{}\"}} {}",
            label(model),
            *cost as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "# HELP nofx_http_requests_total HTTP requests by route and status.\n# TYPE nofx_http_requests_total counter"
    );
    let counts = st.http.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for ((route, status), n) in counts {
        let _ = writeln!(
            out,
            "nofx_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            label(&route)
        );
    }
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}
