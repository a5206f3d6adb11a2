//! `GET /runs/{id}/stream`: a run's events as Server-Sent Events. Each frame's `id` is the
//! event's `seq`, so `Last-Event-ID` (or `?after=SEQ`) resumes with no gap and no repeat;
//! `model.delta` frames carry no id; comments keep idle connections alive; the stream closes
//! after the run's last event (or when the server shuts down). `GET /runs/stream`: the run-level events of every run of the
//! key's project, whichever process executes it. Both follow through `runtime::follow`.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::Params;
use super::runs::visible_run;
use super::ApiState;
use crate::runtime::follow::RESUME_MARGIN_MS;
use axum::extract::{Extension, Path, State};
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
    after: Option<String>,
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
    Params(q): Params<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Frame, Infallible>>>, ApiError> {
    let r = visible_run(&st, &caller, &id).await?;
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .ok_or_else(|| ApiError::bad_request("`Last-Event-ID` must be an event seq"))?,
        None => ApiError::whole("after", &q.after)?.unwrap_or(0),
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
    let closing = st.closing.clone();
    let frames = futures::stream::select(events, deltas)
        .take_until(async move { closing.cancelled().await })
        .take_while(|i| std::future::ready(!matches!(i, Item::End)))
        .filter_map(|i| {
            std::future::ready(match i {
                Item::Frame(f) => Some(Ok(f)),
                Item::End => None,
            })
        });
    Ok(Sse::new(frames).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}

/// `GET /runs/stream`: run-level changes (created, started, ended, each finished task) of
/// every run of the key's project. A frame's `id` is its event's time in ms; `Last-Event-ID`
/// resumes a little before it, so nothing is missed and a frame may repeat (each carries
/// `runId` and `seq` to drop repeats by).
pub async fn project_stream(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Frame, Infallible>>>, ApiError> {
    let now = crate::domain::time::now_ms();
    let since = match headers.get("last-event-id") {
        Some(v) => {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::bad_request("`Last-Event-ID` must be a time in ms"))?
                - RESUME_MARGIN_MS
        }
        None => now - RESUME_MARGIN_MS,
    };
    let events = crate::runtime::follow::project_events(
        st.rt.store().clone(),
        Some(st.rt.hub().clone()),
        caller.project,
        since,
    );
    let closing = st.closing.clone();
    let frames = events
        .take_until(async move { closing.cancelled().await })
        .map(|item| {
            Ok(match item {
                Ok(e) => Frame::default()
                    .id(e.at.timestamp_millis().to_string())
                    .event(e.kind.as_str())
                    .json_data(&e)
                    .unwrap_or_else(|_| Frame::default().comment("unencodable event")),
                Err(err) => Frame::default().event("error").data(err.to_string()),
            })
        });
    Ok(Sse::new(frames).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}
