//! `GET /runs/{id}/stream`: a run's events as Server-Sent Events. Each frame's `id` is the
//! event's `seq`, so `Last-Event-ID` (or `?after=SEQ`) resumes with no gap and no repeat;
//! `model.delta` frames carry no id; comments keep idle connections alive; the stream closes
//! after the run's last event.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::Params;
use super::runs::visible_run;
use super::ApiState;
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

/// How far before the last frame's time a resumed project stream starts reading again
/// (events are committed a little after their time is taken; repeats are dropped by the
/// client, gaps could not be).
const RESUME_MARGIN_MS: i64 = 5_000;

struct ProjectFollow {
    st: ApiState,
    project: String,
    rx: tokio::sync::broadcast::Receiver<crate::domain::Event>,
    backlog: std::collections::VecDeque<crate::domain::Event>,
    since: i64,
    last_at: i64,
    caught_up: bool,
    mine: std::collections::HashMap<crate::domain::RunId, bool>,
}

impl ProjectFollow {
    async fn is_mine(&mut self, run: crate::domain::RunId) -> bool {
        if let Some(m) = self.mine.get(&run) {
            return *m;
        }
        let m = self
            .st
            .rt
            .store()
            .run(run)
            .await
            .is_ok_and(|r| r.project == self.project);
        self.mine.insert(run, m);
        m
    }
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
    let state = ProjectFollow {
        rx: st.rt.hub().subscribe_all(),
        st,
        project: caller.project,
        backlog: Default::default(),
        since,
        last_at: since,
        caught_up: false,
        mine: Default::default(),
    };
    const PAGE: i64 = 500;
    let frames = futures::stream::unfold(state, |mut f| async move {
        loop {
            if let Some(e) = f.backlog.pop_front() {
                let at = e.at.timestamp_millis();
                f.last_at = f.last_at.max(at);
                let frame = Frame::default()
                    .id(at.to_string())
                    .event(e.kind.as_str())
                    .json_data(&e)
                    .unwrap_or_else(|_| Frame::default().comment("unencodable event"));
                return Some((Ok(frame), f));
            }
            if !f.caught_up {
                match f
                    .st
                    .rt
                    .store()
                    .project_events(&f.project, f.since, PAGE)
                    .await
                {
                    Ok(evs) => {
                        let full = evs.len() as i64 == PAGE;
                        if let Some(last) = evs.last() {
                            let at = last.at.timestamp_millis();
                            // Inclusive reads repeat the last instant; move on when a whole
                            // page sits on one instant.
                            f.since = if at == f.since { at + 1 } else { at };
                        }
                        f.caught_up = !full;
                        f.backlog.extend(evs);
                        continue;
                    }
                    Err(e) => {
                        let frame = Frame::default().event("error").data(e.to_string());
                        return Some((Ok(frame), f));
                    }
                }
            }
            match f.rx.recv().await {
                Ok(e) => {
                    if f.is_mine(e.run_id).await {
                        f.backlog.push_back(e);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Missed some: read them from the store.
                    f.caught_up = false;
                    f.since = f.last_at - RESUME_MARGIN_MS;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(frames).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}
