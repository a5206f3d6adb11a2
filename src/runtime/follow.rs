//! The event followers: store first, then live. A run's follower yields every event from a
//! sequence number on, in order and without gaps; a project's follower yields the run-level
//! events of all its runs from a time on. Live events come from this process's hub for the
//! runs it executes; runs executed by another process (or followed without a runtime) are
//! followed by reading the store again every [`POLL`] (a project's every
//! [`PROJECT_POLL`]). `RunHandle::subscribe`, `GET /runs/{id}/stream`, `GET /runs/stream` and
//! `nofx runs events -f` all follow through here.

use super::hub::EventHub;
use super::RuntimeError;
use crate::domain::{Event, EventType, RunId};
use crate::store::Store;
use futures::stream::{self, Stream};
use std::collections::VecDeque;
#[cfg(feature = "server")]
use std::collections::{HashMap, HashSet};
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

/// The next live event, or `None` once `wait` has passed without one (with no hub to listen
/// to, `None` after `wait`).
async fn live_or_timeout(
    rx: Option<&mut broadcast::Receiver<Event>>,
    wait: Duration,
) -> Option<Result<Event, RecvError>> {
    match rx {
        Some(rx) => tokio::time::timeout(wait, rx.recv()).await.ok(),
        None => {
            tokio::time::sleep(wait).await;
            None
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
                match st.store.run_status(st.run).await {
                    Ok((status, _)) if status.is_terminal() => {
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
            let received = live_or_timeout(st.rx.as_mut(), wait).await;
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

#[cfg(feature = "server")]
/// How often a project's follower reads the store for the runs other processes execute.
pub const PROJECT_POLL: Duration = Duration::from_secs(1);

#[cfg(feature = "server")]
/// How far before a time a project's follower starts reading (events are committed a little
/// after their time is taken): a repeat can be dropped by `runId` and `seq`, a gap could not
/// be found.
pub const RESUME_MARGIN_MS: i64 = 5_000;

#[cfg(feature = "server")]
/// Events read from the store per query.
const PAGE: i64 = 500;

#[cfg(feature = "server")]
struct ProjectFollow {
    store: Store,
    hub: Option<EventHub>,
    project: String,
    rx: Option<broadcast::Receiver<Event>>,
    backlog: VecDeque<Event>,
    /// Where the time-ordered catch-up reads next.
    since: i64,
    caught_up: bool,
    /// The latest event time yielded.
    last_at: i64,
    /// The time the stream starts at: nothing earlier is yielded.
    start: i64,
    /// When the store was last read for runs executed elsewhere (or the stream began).
    checked_at: i64,
    /// The highest sequence number yielded per run: what comes again is dropped.
    yielded: HashMap<RunId, i64>,
    /// Whether each run seen belongs to the project.
    mine: HashMap<RunId, bool>,
    /// Runs whose last event was yielded.
    ended: HashSet<RunId>,
    /// Runs other processes execute, by the last sequence number read of each; a run leaves
    /// once its last event is read.
    remote: HashMap<RunId, i64>,
}

#[cfg(feature = "server")]
impl ProjectFollow {
    async fn is_mine(&mut self, run: RunId) -> bool {
        if let Some(m) = self.mine.get(&run) {
            return *m;
        }
        let m = self
            .store
            .run(run)
            .await
            .is_ok_and(|r| r.project == self.project);
        self.mine.insert(run, m);
        m
    }

    /// Reads what the project's runs executed elsewhere committed since the last read.
    async fn poll_remote(&mut self) -> Result<(), RuntimeError> {
        let local = |run: &RunId| self.hub.as_ref().is_some_and(|h| h.is_local(*run));
        // A run that starts to be executed elsewhere has what it committed since the last
        // check read (with a margin for commits that land after their time).
        let from = self.checked_at - RESUME_MARGIN_MS;
        self.checked_at = crate::domain::time::now_ms();
        let live = self.store.live_project_runs(&self.project, from).await?;
        let mut fresh = Vec::new();
        for run in live {
            if !local(&run) && !self.remote.contains_key(&run) && !self.ended.contains(&run) {
                fresh.push(run);
            }
        }
        for run in fresh {
            let seq = self.store.seq_before(run, from).await?;
            self.remote.insert(run, seq);
            self.mine.insert(run, true);
        }
        let runs: Vec<(RunId, i64)> = self.remote.iter().map(|(r, s)| (*r, *s)).collect();
        for (run, mut after) in runs {
            let mut ended = false;
            loop {
                let evs = self.store.events(run, after, PAGE).await?;
                let n = evs.len() as i64;
                for e in evs {
                    after = e.seq;
                    ended |= e.kind.is_terminal();
                    if e.kind.is_run_level() && e.at.timestamp_millis() >= self.start {
                        self.backlog.push_back(e);
                    }
                }
                if n < PAGE {
                    break;
                }
            }
            if ended || local(&run) {
                self.remote.remove(&run);
            } else {
                self.remote.insert(run, after);
            }
        }
        Ok(())
    }
}

#[cfg(feature = "server")]
/// The run-level events ([`EventType::RUN_LEVEL`]) of `project`'s runs at or after `since`
/// (ms), then live ones as they commit, whichever process executes each run; never ends on
/// its own. Events come in time order per catch-up and in commit order live; each event is
/// yielded once.
pub fn project_events(
    store: Store,
    hub: Option<EventHub>,
    project: String,
    since: i64,
) -> impl Stream<Item = Result<Event, RuntimeError>> + Send + 'static {
    let rx = hub.as_ref().map(|h| h.subscribe_all());
    let state = ProjectFollow {
        store,
        hub,
        project,
        rx,
        backlog: VecDeque::new(),
        since,
        caught_up: false,
        last_at: since,
        start: since,
        checked_at: crate::domain::time::now_ms(),
        yielded: HashMap::new(),
        mine: HashMap::new(),
        remote: HashMap::new(),
        ended: HashSet::new(),
    };
    stream::unfold(state, |mut f| async move {
        loop {
            if let Some(e) = f.backlog.pop_front() {
                let last = f.yielded.entry(e.run_id).or_insert(0);
                if e.seq <= *last {
                    continue;
                }
                *last = e.seq;
                if e.kind.is_terminal() {
                    f.ended.insert(e.run_id);
                }
                f.last_at = f.last_at.max(e.at.timestamp_millis());
                return Some((Ok(e), f));
            }
            if !f.caught_up {
                match f.store.project_events(&f.project, f.since, PAGE).await {
                    Ok(evs) => {
                        if let Some(last) = evs.last() {
                            let at = last.at.timestamp_millis();
                            // Inclusive reads repeat the last instant; move on when a whole
                            // page sits on one instant.
                            f.since = if at == f.since { at + 1 } else { at };
                        }
                        f.caught_up = (evs.len() as i64) < PAGE;
                        f.backlog.extend(evs);
                        continue;
                    }
                    Err(e) => {
                        // Said once per wait, then read again.
                        tokio::time::sleep(PROJECT_POLL).await;
                        return Some((Err(RuntimeError::Store(e)), f));
                    }
                }
            }
            let received = live_or_timeout(f.rx.as_mut(), PROJECT_POLL).await;
            match received {
                Some(Ok(e)) => {
                    if f.is_mine(e.run_id).await {
                        f.backlog.push_back(e);
                    }
                }
                Some(Err(RecvError::Lagged(_))) => {
                    // Missed some: read them from the store.
                    f.caught_up = false;
                    f.since = f.last_at - RESUME_MARGIN_MS;
                }
                Some(Err(RecvError::Closed)) => return None,
                None => {
                    if let Err(e) = f.poll_remote().await {
                        return Some((Err(e), f));
                    }
                }
            }
        }
    })
}
