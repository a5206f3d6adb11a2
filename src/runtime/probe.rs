//! What `test:healthcheck` learns about this runtime: a store round trip, a round trip
//! through the supervisor's mailbox with its backlog, and which model providers exist.

use super::messages::QueueStats;
use super::supervisor::Supervisor;
use crate::domain::AgentSpec;
use crate::store::Store;
use crate::tools::{Probe, ProbeReport};
use actix::Addr;
use futures::future::BoxFuture;
use serde_json::json;

pub(crate) struct RuntimeProbe {
    store: Store,
    supervisor: Addr<Supervisor>,
    agents: Vec<AgentSpec>,
}

impl RuntimeProbe {
    pub(crate) fn new(store: Store, supervisor: Addr<Supervisor>, agents: Vec<AgentSpec>) -> Self {
        Self {
            store,
            supervisor,
            agents,
        }
    }
}

impl Probe for RuntimeProbe {
    fn database(&self) -> BoxFuture<'_, ProbeReport> {
        Box::pin(async move {
            match self.store.ping().await {
                Ok(()) => ProbeReport {
                    ok: true,
                    detail: json!({"backend": self.store.backend()}),
                },
                Err(e) => ProbeReport {
                    ok: false,
                    detail: json!({"backend": self.store.backend(), "error": e.to_string()}),
                },
            }
        })
    }

    fn queue(&self) -> BoxFuture<'_, ProbeReport> {
        Box::pin(async move {
            match self.supervisor.send(QueueStats).await {
                Ok(r) => ProbeReport {
                    ok: true,
                    detail: json!(r),
                },
                Err(e) => ProbeReport {
                    ok: false,
                    detail: json!({"error": format!("supervisor mailbox: {e}")}),
                },
            }
        })
    }

    fn models(&self) -> BoxFuture<'_, ProbeReport> {
        Box::pin(async move {
            // No model provider is configured in this runtime; say so, and fail only when an
            // agent names a model that nothing could serve.
            let wanting: Vec<_> = self
                .agents
                .iter()
                .filter_map(|a| a.model.as_ref().map(|m| json!({"agent": a.id, "model": m})))
                .collect();
            if wanting.is_empty() {
                ProbeReport {
                    ok: true,
                    detail: json!({"providers": [], "note": "no model providers configured; no agent names a model"}),
                }
            } else {
                ProbeReport {
                    ok: false,
                    detail: json!({"providers": [], "unserved": wanting, "error": "agents name models but no model provider is configured"}),
                }
            }
        })
    }
}
