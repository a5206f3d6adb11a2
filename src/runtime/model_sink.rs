//! Where a task's model calls report: events and usage rows go to the run's coordinator
//! (which gives events their place in the run's log and commits usage rows with them);
//! streamed text goes straight to live subscribers.

use super::hub::EventHub;
use super::messages::ModelActivity;
use crate::domain::event::payload::ModelDelta;
use crate::domain::{Correlation, Delta, EventData};
use crate::models::CallSink;
use crate::store::ModelCallRow;
use actix::prelude::*;

/// A task's sink.
pub(crate) struct TaskSink {
    pub coordinator: Recipient<ModelActivity>,
    pub corr: Correlation,
    pub index: usize,
    pub hub: EventHub,
}

impl CallSink for TaskSink {
    fn event(&self, data: EventData) {
        self.coordinator.do_send(ModelActivity::Event {
            corr: self.corr.clone(),
            index: self.index,
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
        self.hub.publish_delta(Delta::new(
            self.corr.run,
            self.corr.task.clone(),
            self.corr.id.clone(),
            ModelDelta {
                model: model.to_string(),
                text: text.to_string(),
            },
        ));
    }
}

/// Where a task's reasoning loop commits its journal: its run's coordinator, which commits
/// the rows with their events and answers once they are committed.
pub(crate) struct TaskJournal {
    pub coordinator: Recipient<ModelActivity>,
    pub corr: Correlation,
    pub index: usize,
}

impl crate::tools::JournalWrite for TaskJournal {
    fn commit(
        &self,
        rows: crate::store::Batch,
        events: Vec<EventData>,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let (ack, rx) = tokio::sync::oneshot::channel();
        // A stopped coordinator drops `ack`: the loop then stops as interrupted.
        self.coordinator.do_send(ModelActivity::Journal {
            corr: self.corr.clone(),
            index: self.index,
            rows,
            events,
            ack,
        });
        rx
    }
}
