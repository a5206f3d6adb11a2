//! Where a task's model calls report: events and usage rows go to the run's coordinator
//! (which gives events their place in the run's log and commits usage rows with them);
//! streamed text goes straight to live subscribers.

use super::hub::EventHub;
use super::messages::ModelActivity;
use crate::domain::{Correlation, Delta, EventType};
use crate::models::CallSink;
use crate::store::ModelCallRow;
use actix::prelude::*;
use serde_json::{json, Value};

/// A task's sink.
pub(crate) struct TaskSink {
    pub coordinator: Recipient<ModelActivity>,
    pub corr: Correlation,
    pub index: usize,
    pub hub: EventHub,
}

impl CallSink for TaskSink {
    fn event(&self, kind: EventType, data: Value) {
        self.coordinator.do_send(ModelActivity::Event {
            corr: self.corr.clone(),
            index: self.index,
            kind,
            data,
        });
    }

    fn usage(&self, row: ModelCallRow) {
        self.coordinator.do_send(ModelActivity::Usage {
            corr: self.corr.clone(),
            row,
        });
    }

    fn wants_stream(&self) -> bool {
        self.hub.wants_deltas(self.corr.run)
    }

    fn delta(&self, model: &str, text: &str) {
        self.hub.publish_delta(Delta {
            kind: EventType::ModelDelta,
            at: chrono::Utc::now(),
            run_id: self.corr.run,
            task_id: self.corr.task.clone(),
            correlation_id: self.corr.id.clone(),
            data: json!({"model": model, "text": text}),
        });
    }
}
