//! The one event follower of a run: every event from a sequence number on, in order and
//! without gaps, read from the store first, then live. Live events come from this process's
//! hub while it executes the run; a run executed by another process (or read without a
//! runtime) is followed by reading the store again every `POLL`. `RunHandle::subscribe`,
//! `GET /runs/{id}/stream` and `nofx runs events -f` all follow runs through here.

use super::hub::EventHub;
use super::RuntimeError;
use crate::domain::{Event, EventType, RunId};
use crate::store::Store;
use futures::stream::{self, Stream};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

/// How often the store is read again for the events of a run this process does not execute.
pub const POLL: Duration = Duration::from_millis(200);

/// How long a follower of a run executed here waits for a live event before it reads the
/// store anyway (the run may have left this process without an event, e.g. its lease lost).
const QUIET: Duration = Duration::from_secs(5);

struct Follow {
    store: Store,
    hub: Option<EventHub>,
    run: RunId,
    rx: Option<broadcast::Receiver<Event>>,
    last: i64,
    /// Events to yield, each marked live (from the hub) or not (from the store).
    backlog: VecDeque<(Event, bool)>,
    done: bool,
    /// Whether the run's status was read once after catching up (a run that ended before
    /// the subscription publishes nothing more).
    checked_end: bool,
    /// The run had ended when its status was read: once caught up, the stream ends.
    ended: bool,
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.rx = None;
        if let Some(hub) = &self.hub {
            hub.forget_if_unused(self.run);
        }
    }
}

/// Every event of `run` after `after`, then live ones as they are committed; ends after the
/// event that ends the run, or after a `run.interrupted` published live here (this process,
/// which executed the run, is stopping). With `hub`, live events of a run this process
/// executes arrive as they commit; otherwise (another process executes it, or no runtime
/// runs here) the store is read every [`POLL`].
pub fn run_events(
    store: Store,
    hub: Option<EventHub>,
    run: RunId,
    after: i64,
) -> impl Stream<Item = Result<Event, RuntimeError>> + Send + 'static {
    let rx = hub.as_ref().map(|h| h.subscribe(run));
    let state = Follow {
        store,
        hub,
        run,
        rx,
        last: after.max(0),
        backlog: VecDeque::new(),
        done: false,
        checked_end: false,
        ended: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            if let Some((e, live)) = st.backlog.pop_front() {
                if e.seq <= st.last {
                    continue;
                }
                st.last = e.seq;
                // An interruption in the history is followed by a resume; a live one means
                // the runtime executing the run is stopping.
                st.done = e.kind.is_terminal() || (live && e.kind == EventType::RunInterrupted);
                return Some((Ok(e), st));
            }
            // Catch up from the store first (events committed before subscribing, missed
            // after falling behind, or committed by another process), then wait.
            match st.store.events(st.run, st.last, 1000).await {
                Err(e) => {
                    st.done = true;
                    return Some((Err(RuntimeError::Store(e)), st));
                }
                Ok(evs) if !evs.is_empty() => {
                    st.backlog.extend(evs.into_iter().map(|e| (e, false)));
                    continue;
                }
                Ok(_) if st.ended => return None,
                Ok(_) => {}
            }
            if !st.checked_end {
                st.checked_end = true;
                match st.store.run(st.run).await {
                    Ok(r) if r.status.is_terminal() => {
                        // Read once more: its last events may have landed meanwhile.
                        st.ended = true;
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        st.done = true;
                        return Some((Err(RuntimeError::Store(e)), st));
                    }
                }
            }
            // Not executed here: the store is read again soon; a live event that arrives
            // meanwhile (the run was resumed here) cuts the wait short.
            let local = st.hub.as_ref().is_some_and(|h| h.is_local(st.run));
            let wait = if local { QUIET } else { POLL };
            let received = match st.rx.as_mut() {
                Some(rx) => tokio::select! {
                    r = rx.recv() => Some(r),
                    _ = tokio::time::sleep(wait) => None,
                },
                None => {
                    tokio::time::sleep(POLL).await;
                    None
                }
            };
            match received {
                Some(Ok(e)) if e.seq == st.last + 1 => st.backlog.push_back((e, true)),
                // Out of order means some were missed: the store has them.
                Some(Ok(_)) | Some(Err(RecvError::Lagged(_))) | None => {}
                Some(Err(RecvError::Closed)) => {
                    st.done = true;
                    return Some((Err(RuntimeError::Stopped), st));
                }
            }
        }
    })
}
