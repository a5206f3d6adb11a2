//! Event fan-out: after the persistence actor commits events, it publishes them here; each
//! run has a broadcast channel created on first subscription. Subscribers that fall behind
//! re-read what they missed from the store, so no subscriber loses an event. Streamed model
//! text (`model.delta`) has channels of its own: it is never stored, so a subscriber that
//! falls behind simply misses some.

use crate::domain::{Delta, Event, PendingEvent, RunId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

const CAPACITY: usize = 4096;

/// Per-run broadcast channels of committed events, and one channel of every run's
/// run-level events (for project-wide streams).
#[derive(Clone)]
pub struct EventHub {
    runs: Arc<Mutex<HashMap<RunId, broadcast::Sender<Event>>>>,
    /// Per run, a channel of only the event that ends its execution (what waiting for the
    /// end listens to: it is not woken by every event of the run).
    ends: Arc<Mutex<HashMap<RunId, broadcast::Sender<Event>>>>,
    deltas: Arc<Mutex<HashMap<RunId, broadcast::Sender<Delta>>>>,
    all: broadcast::Sender<Event>,
    /// Runs this process executes: their events are published here as they commit.
    local: Arc<Mutex<std::collections::HashSet<RunId>>>,
    /// Runs whose execution here was interrupted (the runtime stopped before they ended).
    interrupted: Arc<Mutex<std::collections::HashSet<RunId>>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            runs: Arc::default(),
            ends: Arc::default(),
            deltas: Arc::default(),
            all: broadcast::channel(CAPACITY).0,
            local: Arc::default(),
            interrupted: Arc::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EventHub {
    /// Marks `run` as executed by this process (its events are published here) or not.
    pub(crate) fn set_local(&self, run: RunId, local: bool) {
        let mut l = lock(&self.local);
        if local {
            l.insert(run);
        } else {
            l.remove(&run);
        }
    }

    /// Whether this process executes `run`.
    pub(crate) fn is_local(&self, run: RunId) -> bool {
        lock(&self.local).contains(&run)
    }

    /// Whether this process stopped executing `run` before it ended.
    pub(crate) fn was_interrupted(&self, run: RunId) -> bool {
        lock(&self.interrupted).contains(&run)
    }

    /// Receives every event of `run` committed from now on.
    pub fn subscribe(&self, run: RunId) -> broadcast::Receiver<Event> {
        let mut runs = lock(&self.runs);
        runs.entry(run)
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Receives the event that ends the execution of `run` here (its end, or its
    /// interruption), once it commits.
    pub fn subscribe_end(&self, run: RunId) -> broadcast::Receiver<Event> {
        lock(&self.ends)
            .entry(run)
            .or_insert_with(|| broadcast::channel(1).0)
            .subscribe()
    }

    /// Receives the run-level events ([`crate::domain::EventType::RUN_LEVEL`]) of every run committed
    /// from now on.
    #[cfg(feature = "server")]
    pub fn subscribe_all(&self) -> broadcast::Receiver<Event> {
        self.all.subscribe()
    }

    /// Receives streamed model text of `run` from now on, until the run's execution ends.
    pub fn subscribe_deltas(&self, run: RunId) -> broadcast::Receiver<Delta> {
        lock(&self.deltas)
            .entry(run)
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Whether anyone listens to streamed model text of `run`.
    pub fn wants_deltas(&self, run: RunId) -> bool {
        lock(&self.deltas)
            .get(&run)
            .is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Publishes streamed model text (never stored).
    pub fn publish_delta(&self, d: Delta) {
        let mut deltas = lock(&self.deltas);
        if let Some(tx) = deltas.get(&d.run_id) {
            let run = d.run_id;
            if tx.send(d).is_err() {
                deltas.remove(&run);
            }
        }
    }

    /// Drops the channel of `run` when nobody listens to it any more.
    pub fn forget_if_unused(&self, run: RunId) {
        let mut runs = lock(&self.runs);
        if runs.get(&run).is_some_and(|tx| tx.receiver_count() == 0) {
            runs.remove(&run);
        }
        drop(runs);
        let mut ends = lock(&self.ends);
        if ends.get(&run).is_some_and(|tx| tx.receiver_count() == 0) {
            ends.remove(&run);
        }
        drop(ends);
        let mut deltas = lock(&self.deltas);
        if deltas.get(&run).is_some_and(|tx| tx.receiver_count() == 0) {
            deltas.remove(&run);
        }
    }

    /// Publishes committed events (in commit order); channels nobody listens to are dropped.
    /// An event is made from its row only for a channel someone listens to.
    pub(crate) fn publish(&self, events: &[PendingEvent]) {
        if self.all.receiver_count() > 0 {
            for e in events {
                if e.kind().is_run_level() {
                    let _ = self.all.send(e.event());
                }
            }
        }
        let ended: Vec<RunId> = events
            .iter()
            .filter(|e| e.kind().ends_run())
            .map(|e| e.run_id)
            .collect();
        if !ended.is_empty() {
            let mut interrupted = lock(&self.interrupted);
            for e in events {
                if e.kind() == crate::domain::EventType::RunInterrupted {
                    interrupted.insert(e.run_id);
                }
            }
            drop(interrupted);
            // Deltas end with the execution: their subscribers see the channel close.
            let mut deltas = lock(&self.deltas);
            for r in &ended {
                deltas.remove(r);
            }
            drop(deltas);
            let mut ends = lock(&self.ends);
            if !ends.is_empty() {
                for e in events.iter().filter(|e| e.kind().ends_run()) {
                    if let Some(tx) = ends.remove(&e.run_id) {
                        let _ = tx.send(e.event());
                    }
                }
            }
        }
        let mut runs = lock(&self.runs);
        if runs.is_empty() {
            return;
        }
        for e in events {
            if let Some(tx) = runs.get(&e.run_id) {
                // After the last event of an execution the channel is dropped; receivers still
                // get what it holds.
                if tx.receiver_count() == 0 || tx.send(e.event()).is_err() || e.kind().ends_run() {
                    runs.remove(&e.run_id);
                }
            }
        }
    }
}
