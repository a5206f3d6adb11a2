//! `GET /runs/{id}/stream`: a run's events as Server-Sent Events. Each frame's `id` is the
//! event's `seq`, so `Last-Event-ID` (or `?after=SEQ`) resumes with no gap and no repeat;
//! `model.delta` frames carry no id; comments keep idle connections alive; the stream closes
//! after the run's last event.

use super::auth::Caller;
use super::error::ApiError;
use super::runs::visible_run;
use super::ApiState;
use axum::extract::{Extension, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as Frame, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;

/// How often an idle stream gets a keep-alive comment.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// Query of the stream.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    after: Option<i64>,
}

enum Item {
    Frame(Frame),
    End,
}

/// `GET /runs/{id}/stream`.
pub async fn run_stream(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Frame, Infallible>>>, ApiError> {
    let Query(q) = q.map_err(|r| ApiError::rejected(r.status(), r.body_text()))?;
    let r = visible_run(&st, &caller, &id).await?;
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .ok_or_else(|| ApiError::bad_request("`Last-Event-ID` must be an event seq"))?,
        None => q.after.unwrap_or(0),
    };
    let handle = st.rt.run(r.id).await?;
    let events = handle
        .subscribe_after(after)
        .map(|e| match e {
            Ok(e) => Item::Frame(
                Frame::default()
                    .id(e.seq.to_string())
                    .event(e.kind.as_str())
                    .json_data(&e)
                    .unwrap_or_else(|_| Frame::default().comment("unencodable event")),
            ),
            Err(err) => Item::Frame(Frame::default().event("error").data(err.to_string())),
        })
        .chain(futures::stream::once(async { Item::End }));
    let deltas = handle.deltas().map(|d| {
        Item::Frame(
            Frame::default()
                .event("model.delta")
                .json_data(&d)
                .unwrap_or_else(|_| Frame::default().comment("unencodable delta")),
        )
    });
    let frames = futures::stream::select(events, deltas)
        .take_while(|i| std::future::ready(!matches!(i, Item::End)))
        .filter_map(|i| {
            std::future::ready(match i {
                Item::Frame(f) => Some(Ok(f)),
                Item::End => None,
            })
        });
    Ok(Sse::new(frames).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}
