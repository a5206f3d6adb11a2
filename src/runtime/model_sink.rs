//! A task's link to its run: where its model calls report (events and usage rows go to the
//! run's coordinator, which gives events their place in the run's log and commits usage rows
//! with them; streamed text goes straight to live subscribers), and where a reasoning loop
//! commits its journal and finds the runtime's tools, agents and the run's MCP servers.

use super::messages::ModelActivity;
use crate::domain::event::payload::ModelDelta;
use crate::domain::{Correlation, Delta, EventData};
use crate::models::CallSink;
use crate::store::ModelCallRow;
use actix::prelude::*;

/// A task's link to its run and runtime.
pub(crate) struct TaskSink {
    pub coordinator: Recipient<ModelActivity>,
    pub corr: Correlation,
    pub index: usize,
    pub shared: std::sync::Arc<super::Shared>,
    /// The run's workspace (where its MCP servers run).
    pub workspace: std::path::PathBuf,
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
        self.shared.hub.wants_deltas(self.corr.run)
    }

    fn delta(&self, model: &str, text: &str) {
        self.shared.hub.publish_delta(Delta::new(
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

/// Journal rows go to the run's coordinator, which commits them with their events and
/// answers once they are committed.
impl crate::tools::RunLink for TaskSink {
    fn commit(
        &self,
        rows: crate::store::Batch,
        events: Vec<EventData>,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let (ack, rx) = tokio::sync::oneshot::channel();
        // A stopped coordinator drops `ack`: the loop then stops.
        self.coordinator.do_send(ModelActivity::Journal {
            corr: self.corr.clone(),
            index: self.index,
            rows: Box::new(rows),
            events,
            ack,
        });
        rx
    }

    fn suspend(&self, suspension: crate::tools::Suspension) -> tokio::sync::oneshot::Receiver<()> {
        let (ack, rx) = tokio::sync::oneshot::channel();
        self.coordinator.do_send(ModelActivity::Suspend {
            corr: self.corr.clone(),
            index: self.index,
            suspension,
            ack,
        });
        rx
    }

    fn store(&self) -> &crate::store::Store {
        &self.shared.store
    }

    fn tools(&self) -> &crate::tools::ToolRegistry {
        &self.shared.tools
    }

    fn agents(&self) -> &[crate::domain::AgentSpec] {
        &self.shared.agents
    }

    fn mcp(&self) -> std::sync::Arc<crate::mcp::RunServers> {
        self.shared.mcp.for_run(self.corr.run, &self.workspace)
    }
}
