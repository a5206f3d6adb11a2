//! Event fan-out: after the persistence actor commits events, it publishes them here; each
//! run has a broadcast channel created on first subscription. Subscribers that fall behind
//! re-read what they missed from the store, so no subscriber loses an event.

use crate::domain::{Event, RunId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

const CAPACITY: usize = 4096;

/// Per-run broadcast channels of committed events.
#[derive(Clone, Default)]
pub struct EventHub {
    runs: Arc<Mutex<HashMap<RunId, broadcast::Sender<Event>>>>,
}

impl EventHub {
    /// Receives every event of `run` committed from now on.
    pub fn subscribe(&self, run: RunId) -> broadcast::Receiver<Event> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.entry(run)
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Drops the channel of `run` when nobody listens to it any more.
    pub fn forget_if_unused(&self, run: RunId) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if runs.get(&run).is_some_and(|tx| tx.receiver_count() == 0) {
            runs.remove(&run);
        }
    }

    /// Publishes committed events (in commit order); channels nobody listens to are dropped.
    pub fn publish(&self, events: &[Event]) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if runs.is_empty() {
            return;
        }
        for e in events {
            if let Some(tx) = runs.get(&e.run_id) {
                // After the last event of an execution the channel is dropped; receivers still
                // get what it holds.
                if tx.send(e.clone()).is_err() || e.kind.ends_run() {
                    runs.remove(&e.run_id);
                }
            }
        }
    }
}
