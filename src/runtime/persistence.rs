//! Persistence actor: the only writer to the store. Writes from every run queue here and are
//! committed as a group: everything queued while a commit is in flight goes into the next
//! transaction, one multi-row statement per table. A write's acknowledgement is sent only
//! after its transaction commits; committed events are then published to subscribers.

use super::hub::EventHub;
use super::messages::{AdoptLease, ClaimLease, Close, Persist, ReleaseLease, RenewLeases};
use crate::domain::RunId;
use crate::store::{Batch, Claim, Fences, LeaseHolder, Store, StoreError};
use actix::prelude::*;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Rows committed in one transaction at most (more waits for the next).
const MAX_ROWS: usize = 8192;
/// How long closing the store waits for connections still in use.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Attempts of a failing transaction before its writers are told.
const ATTEMPTS: u32 = 3;

/// The persistence actor.
pub struct Persistence {
    store: Store,
    hub: EventHub,
    holder: LeaseHolder,
    lease_ttl_ms: i64,
    queue: VecDeque<Persist>,
    /// Told once the store is closed.
    closers: Vec<oneshot::Sender<()>>,
    /// `Close` was asked for; `closed` once the connections are returned.
    closing: bool,
    closed: bool,
    /// Lease operations in flight.
    inflight: usize,
    busy: bool,
    /// Fencing tokens of the leases this process was granted.
    tokens: HashMap<RunId, i64>,
}

impl Persistence {
    /// A writer to `store` that publishes to `hub` and holds leases as `holder`.
    pub fn new(store: Store, hub: EventHub, holder: LeaseHolder, lease_ttl_ms: i64) -> Self {
        Self {
            store,
            hub,
            holder,
            lease_ttl_ms,
            queue: VecDeque::new(),
            closers: Vec::new(),
            closing: false,
            closed: false,
            inflight: 0,
            busy: false,
            tokens: HashMap::new(),
        }
    }

    fn commit_next(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        if self.queue.is_empty() {
            self.close_when_idle(ctx);
            return;
        }
        let mut batch = Batch::default();
        let mut acks = Vec::new();
        while let Some(p) = self.queue.front() {
            if !batch.is_empty() && batch.len() + p.batch.len() > MAX_ROWS {
                break;
            }
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            let runs = if self.tokens.is_empty() {
                HashSet::new()
            } else {
                p.batch.runs_touched()
            };
            batch.append(p.batch);
            if let Some(a) = p.ack {
                acks.push((a, runs));
            }
        }
        self.busy = true;
        let store = self.store.clone();
        let hub = self.hub.clone();
        let me = self.holder.id.clone();
        let fences = Fences {
            holder: self.holder.id.clone(),
            tokens: self.tokens.clone(),
        };
        let outage = std::time::Duration::from_millis(self.lease_ttl_ms.max(0) as u64);
        let fut = async move {
            let mut stale: HashSet<RunId> = HashSet::new();
            let result = commit_with_retries(&store, &mut batch, &fences, &mut stale, outage)
                .await
                .map_err(Arc::new);
            // New runs' leases (token 1) committed for this process are its own now.
            let mut granted = Vec::new();
            if result.is_ok() {
                hub.publish(&batch.events);
                granted = batch
                    .new_leases
                    .iter()
                    .filter(|(_, h, _)| h.id == me)
                    .map(|(run, ..)| *run)
                    .collect();
            } else if let Err(e) = &result {
                tracing::error!(error = %e, rows = batch.len(), "group commit failed; its runs stop");
            }
            for run in &stale {
                tracing::warn!(run = %run, "lease taken over by another process; late writes dropped");
            }
            for (a, runs) in acks {
                let fenced = stale.iter().find(|r| runs.contains(r));
                let _ = a.send(match fenced {
                    Some(r) => Err(Arc::new(StoreError::Fenced(r.to_string()))),
                    None => result.clone(),
                });
            }
            (stale, granted)
        };
        ctx.spawn(fut.into_actor(self).map(|(stale, granted), act, ctx| {
            for run in granted {
                act.tokens.insert(run, 1);
            }
            for run in stale {
                act.tokens.remove(&run);
            }
            act.busy = false;
            act.commit_next(ctx);
        }));
    }
}

/// Commits `batch`, trying a failed transaction again (it wrote nothing): up to [`ATTEMPTS`]
/// times for a refusal, and for as long as `outage` while the store cannot be reached (a
/// restart, lost connections, a full disk). Past half a lease's TTL without a renewal the
/// node stops its runs' tasks anyway, and a run another process took over meanwhile is
/// fenced when the store answers again; so waiting up to the TTL loses nothing and spares
/// the runs a stop and a resume.
async fn commit_with_retries(
    store: &Store,
    batch: &mut Batch,
    fences: &Fences,
    stale: &mut HashSet<RunId>,
    outage: std::time::Duration,
) -> Result<(), StoreError> {
    let mut attempt = 0;
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        attempt += 1;
        // A failed transaction wrote nothing, so the same batch (less the rows of runs
        // found fenced) is tried again.
        let e = match store.write_fenced(batch, fences, stale).await {
            Ok(()) => {
                if let Some(t) = down_since {
                    tracing::warn!(
                        seconds = t.elapsed().as_secs_f64(),
                        rows = batch.len(),
                        "the store answers again; the held writes are committed"
                    );
                }
                return Ok(());
            }
            Err(e) => e,
        };
        let pause = if e.is_unavailable() {
            let since = *down_since.get_or_insert_with(|| {
                tracing::warn!(error = %e, rows = batch.len(), outage_s = outage.as_secs_f64(),
                    "the store is unavailable; holding the writes and trying again");
                std::time::Instant::now()
            });
            if since.elapsed() >= outage {
                return Err(e);
            }
            // 50 ms doubling to 1 s: a restarted server is found within a second.
            std::time::Duration::from_millis(50 << attempt.min(5)).min(outage - since.elapsed())
        } else {
            tracing::warn!(attempt, error = %e, "group commit failed");
            if attempt >= ATTEMPTS {
                return Err(e);
            }
            std::time::Duration::from_millis(50 * u64::from(attempt))
        };
        tokio::time::sleep(pause).await;
    }
}

impl Persistence {
    /// Closes the store once `Close` was asked for and nothing is queued or in flight.
    fn close_when_idle(&mut self, ctx: &mut Context<Self>) {
        if !self.closing || self.closed || self.busy || self.inflight > 0 || !self.queue.is_empty()
        {
            return;
        }
        self.closed = true;
        let store = self.store.clone();
        ctx.spawn(
            async move {
                // A connection someone holds and never returns must not stop the shutdown.
                if tokio::time::timeout(CLOSE_WAIT, store.close())
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        seconds = CLOSE_WAIT.as_secs(),
                        "store connections still in use at shutdown; stopping without them"
                    );
                }
            }
            .into_actor(self)
            .map(|(), act, _| {
                for c in act.closers.drain(..) {
                    let _ = c.send(());
                }
            }),
        );
    }

    /// Runs a lease operation, counted so that `Close` waits for it; after `Close` it is not
    /// started and `refused` is the answer.
    fn lease_op<T: 'static>(
        &mut self,
        op: impl std::future::Future<Output = T> + 'static,
        refused: T,
    ) -> ResponseActFuture<Self, T> {
        if self.closing {
            return Box::pin(fut::ready(refused));
        }
        self.inflight += 1;
        Box::pin(op.into_actor(self).map(|res, act, ctx| {
            act.inflight -= 1;
            act.close_when_idle(ctx);
            res
        }))
    }
}

impl Actor for Persistence {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<Persist> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: Persist, ctx: &mut Context<Self>) {
        if self.closed {
            if let Some(a) = msg.ack {
                let _ = a.send(Err(Arc::new(StoreError::Closed)));
            }
            return;
        }
        self.queue.push_back(msg);
        self.commit_next(ctx);
    }
}

impl Handler<Close> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        self.closers.push(msg.0);
        if self.closed && self.closers.len() == 1 {
            // Already closed and told: answer this late caller too.
            for c in self.closers.drain(..) {
                let _ = c.send(());
            }
            return;
        }
        self.closing = true;
        self.commit_next(ctx);
    }
}

impl Handler<ClaimLease> for Persistence {
    type Result = ResponseActFuture<Self, Result<Claim, StoreError>>;

    fn handle(&mut self, msg: ClaimLease, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let me = self.holder.clone();
        let ttl = self.lease_ttl_ms;
        let run = msg.0;
        Box::pin(
            self.lease_op(
                async move { store.claim_lease(run, &me, ttl).await },
                Err(StoreError::Closed),
            )
            .map(move |res, act, _| {
                if let Ok(Claim::Granted { token }) = &res {
                    act.tokens.insert(run, *token);
                }
                res
            }),
        )
    }
}

impl Handler<RenewLeases> for Persistence {
    type Result = ResponseActFuture<Self, Result<Vec<RunId>, StoreError>>;

    fn handle(&mut self, _: RenewLeases, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let me = self.holder.clone();
        let ttl = self.lease_ttl_ms;
        self.lease_op(
            async move { store.renew_leases(&me, ttl).await },
            Err(StoreError::Closed),
        )
    }
}

impl Handler<ReleaseLease> for Persistence {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: ReleaseLease, _: &mut Context<Self>) -> Self::Result {
        self.tokens.remove(&msg.0);
        let store = self.store.clone();
        let me = self.holder.clone();
        self.lease_op(
            async move {
                if let Err(e) = store.release_lease(msg.0, &me).await {
                    tracing::warn!(run = %msg.0, error = %e, "could not release lease; it will expire");
                }
            },
            (),
        )
    }
}

impl Handler<AdoptLease> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: AdoptLease, _: &mut Context<Self>) {
        self.tokens.insert(msg.0, msg.1);
    }
}
