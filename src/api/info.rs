//! Service information: agents with their live load, usage analytics of the key's project,
//! readiness.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::Params;
use super::ApiState;
use crate::store::GroupBy;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// `GET /agents`: every agent with its limits and live load, and the queue.
pub async fn agents(State(st): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let q = st.rt.queue().await?;
    let agents: Vec<Value> = st
        .rt
        .agents()
        .iter()
        .map(|a| {
            let load = q.agents.iter().find(|l| l.id == a.id);
            json!({
                "id": a.id,
                "role": a.role,
                "capabilities": a.capabilities,
                "maxConcurrency": a.max_concurrency,
                "rate": a.rate,
                "inFlight": load.map_or(0, |l| l.in_flight),
            })
        })
        .collect();
    Ok(Json(
        json!({"agents": agents, "queued": q.waiting, "inFlight": q.in_flight}),
    ))
}

/// Query of `GET /analytics/usage`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    group_by: Option<String>,
}

fn date(param: &str, s: &str) -> Result<i64, ApiError> {
    crate::store::parse_date(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "`{param}` must be a date (YYYY-MM-DD) or an RFC 3339 time, got `{s}`"
        ))
        .with("parameter", json!(param))
    })
}

/// `GET /analytics/usage?startDate=&endDate=&groupBy=hour|day|week`: the document
/// `nofx usage --json` prints, for the key's project.
pub async fn usage(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Params(q): Params<UsageQuery>,
) -> Result<Response, ApiError> {
    let now = crate::domain::time::now_ms();
    let until = match &q.end_date {
        Some(s) => date("endDate", s)?,
        None => now,
    };
    let since = match &q.start_date {
        Some(s) => date("startDate", s)?,
        None => until - 7 * 86_400_000,
    };
    let group = match q.group_by.as_deref().unwrap_or("day") {
        "hour" => GroupBy::Hour,
        "day" => GroupBy::Day,
        "week" => GroupBy::Week,
        other => {
            return Err(ApiError::bad_request(format!(
                "`groupBy` must be hour, day or week, got `{other}`"
            ))
            .with("parameter", json!("groupBy")))
        }
    };
    if until <= since {
        return Err(ApiError::bad_request(format!(
            "`endDate` ({}) must be after `startDate` ({})",
            crate::domain::time::rfc3339(until),
            crate::domain::time::rfc3339(since)
        ))
        .with("parameter", json!("endDate")));
    }
    let report = st
        .rt
        .store()
        .usage(since, until, group, Some(&caller.project))
        .await?;
    Ok(Json(report).into_response())
}

/// `GET /ready`: 200 when the store answers, else 503.
pub async fn ready(State(st): State<ApiState>) -> Response {
    match st.rt.store().last_seq(crate::domain::RunId::new()).await {
        Ok(_) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the store does not answer",
            )
            .into_response()
        }
    }
}
