//! The node in a fleet: it records its heartbeat and load, and claims runs no live node
//! holds unless another live node is less loaded.

use crate::runtime::messages::{AdoptLease, Resume};
use actix::prelude::*;

use super::Node;

impl Node {
    /// Whether a live node is less loaded than this one (fleet mode; the others' loads are
    /// as of their last heartbeat, a quarter second ago at most): then new runs are left to
    /// the least loaded to claim.
    pub(super) fn others_less_loaded(&self) -> bool {
        let mine = self.coordinators.len() as i64;
        self.others.iter().any(|&l| l < mine)
    }

    /// Fleet: records this node's heartbeat and load, then, unless another live node is less
    /// loaded, claims runs no live process holds (up to the gap to the next least-loaded
    /// node, at least one) and executes them.
    pub(super) fn fleet_tick(&mut self, ctx: &mut Context<Self>) {
        if self.stopping || self.claiming {
            return;
        }
        self.claiming = true;
        let store = self.shared.store.clone();
        let me = self.shared.holder.clone();
        let ttl = self.shared.options.lease_ttl.as_millis() as i64;
        let started = self.started_ms;
        let load = self.coordinators.len() as i64;
        let fut = async move {
            let live = store
                .node_heartbeat(&me, started, load, ttl, 10 * ttl)
                .await?;
            let others: Vec<i64> = live
                .iter()
                .filter(|n| n.id != me.id)
                .map(|n| n.load)
                .collect();
            let least_other = others.iter().copied().min();
            let claimed = match least_other {
                Some(l) if l < load => Vec::new(),
                Some(l) => {
                    store
                        .claim_open_runs(&me, (l - load + 1).clamp(8, 32), ttl)
                        .await?
                }
                None => store.claim_open_runs(&me, 32, ttl).await?,
            };
            Ok::<_, crate::store::StoreError>((others, claimed))
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.claiming = false;
            match res {
                Ok((others, claimed)) => {
                    act.others = others;
                    if !claimed.is_empty() {
                        tracing::info!(runs = claimed.len(), "claimed runs no live node held");
                    }
                    for (run, token) in claimed {
                        act.persistence.do_send(AdoptLease(run, token));
                        ctx.notify(Resume {
                            run,
                            granted: Some(token),
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "fleet heartbeat failed; will retry"),
            }
        }));
    }
}
