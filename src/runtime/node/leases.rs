//! The node's leases and commands: every third of the TTL it renews the leases of the runs it
//! executes (stopping their tasks when it could not within half the TTL); it polls the command
//! rows other processes left for its runs (cancel, wake).

use crate::domain::RunId;
use crate::runtime::messages::{Abandon, CancelRun, Persist, RecheckWaits, RenewLeases};
use crate::store::{Batch, CommandKind};
use actix::prelude::*;

use super::Node;

impl Node {
    pub(super) fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.coordinators.is_empty() || self.stopping {
            return;
        }
        // Past half the TTL without a renewal, another process may soon take these runs
        // over: stop their tasks now, so no task ever runs in two places at once.
        let ttl = self.shared.options.lease_ttl;
        let since = self.renewed_at.elapsed();
        if since > ttl / 2 {
            tracing::error!(
                runs = self.coordinators.len(),
                seconds = since.as_secs_f64(),
                "leases not renewed within half their TTL: stopping these runs' tasks; they resume wherever they are claimed next"
            );
            for (run, c) in self.coordinators.drain() {
                self.shared.hub.set_local(run, false);
                c.do_send(Abandon(
                    "its lease could not be renewed within half its TTL",
                ));
            }
            return;
        }
        if self.renewing || self.stopping {
            return;
        }
        self.renewing = true;
        let before: Vec<RunId> = self.coordinators.keys().copied().collect();
        let asked = std::time::Instant::now();
        ctx.spawn(
            self.persistence
                .send(RenewLeases)
                .into_actor(self)
                .map(move |res, act, _| {
                    act.renewing = false;
                    match res {
                        Ok(Ok(held)) => {
                            act.renewed_at = asked;
                            for run in before {
                                if !held.contains(&run) {
                                    if let Some(c) = act.coordinators.remove(&run) {
                                        act.shared.hub.set_local(run, false);
                                        c.do_send(Abandon(
                                            "its lease was taken over by another process",
                                        ));
                                    }
                                }
                            }
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "lease renewal failed; will retry")
                        }
                        Err(_) => {}
                    }
                }),
        );
    }

    pub(super) fn poll_commands(&mut self, ctx: &mut Context<Self>) {
        if self.coordinators.is_empty() || self.polling || self.stopping {
            return;
        }
        self.polling = true;
        let store = self.shared.store.clone();
        let holder = self.shared.holder.id.clone();
        ctx.spawn(
            async move { store.open_commands(&holder).await }
                .into_actor(self)
                .map(|res, act, _| {
                    act.polling = false;
                    let cmds = match res {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(error = %e, "reading commands failed; will retry");
                            return;
                        }
                    };
                    let mut handled = Batch::default();
                    for c in cmds {
                        if let Some(addr) = act.coordinators.get(&c.run_id) {
                            match c.kind {
                                Some(CommandKind::Cancel) => addr.do_send(CancelRun {
                                    reason: c.reason.clone().unwrap_or_else(|| "cancelled".into()),
                                }),
                                Some(CommandKind::Wake) => addr.do_send(RecheckWaits),
                                None => {}
                            }
                        }
                        handled.handled_commands.push(c.id);
                    }
                    if !handled.is_empty() {
                        act.persistence.do_send(Persist {
                            batch: handled,
                            ack: None,
                        });
                    }
                }),
        );
    }
}
