//! Node: the root actor of a runtime. It keeps the coordinators of the runs this process
//! executes, by run, and answers Submit (`new_run.rs`), Resume, Cancel, Wake and Shutdown; it
//! renews the leases of its runs and picks up commands other processes left for them
//! (`leases.rs`) and, in a fleet, claims runs no live node holds (`fleet.rs`). On shutdown it
//! interrupts every run so it stays resumable.

mod fleet;
mod leases;
mod new_run;

use super::gate::GateActor;
use super::messages::{
    ActiveRuns, Cancel, CancelRun, Cancelled, ClaimLease, Close, Interrupt, Persist, RecheckWaits,
    ReleaseLease, Resume, Resumed, RunEnded, Shutdown, TakeLatencies, Wake, WriteBatch,
};
use super::persistence::Persistence;
use super::run::{Coordinator, Setup, Start};
use super::supervisor::Supervisor;
use super::{RuntimeError, Shared};
use crate::domain::plan::PlanSource;
use crate::domain::plan::{self, ValidatedPlan};
use crate::domain::{RunId, RunStatus};
use crate::store::{Batch, Claim, CommandKind, RunRecord, TaskRow};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// The node actor.
pub struct Node {
    shared: Arc<Shared>,
    supervisor: Addr<Supervisor>,
    persistence: Addr<Persistence>,
    gates: Arc<HashMap<&'static str, Addr<GateActor>>>,
    coordinators: HashMap<RunId, Addr<Coordinator>>,
    latencies: HashMap<RunId, Vec<f32>>,
    /// Who asked for the latencies of a run still ending.
    latency_waiters: HashMap<RunId, oneshot::Sender<Vec<f32>>>,
    polling: bool,
    stopping: bool,
    /// A lease renewal is in flight.
    renewing: bool,
    /// When this process last renewed its leases (or, with none, took its first).
    renewed_at: std::time::Instant,
    /// Fleet: when this node started (ms), the loads of the other live nodes at the last
    /// heartbeat, and whether a claim is in flight.
    started_ms: i64,
    others: Vec<i64>,
    claiming: bool,
}

impl Node {
    /// A node over started actors.
    pub fn new(
        shared: Arc<Shared>,
        supervisor: Addr<Supervisor>,
        persistence: Addr<Persistence>,
        gates: HashMap<&'static str, Addr<GateActor>>,
    ) -> Self {
        Self {
            shared,
            supervisor,
            persistence,
            gates: Arc::new(gates),
            coordinators: HashMap::new(),
            latencies: HashMap::new(),
            latency_waiters: HashMap::new(),
            polling: false,
            stopping: false,
            renewing: false,
            renewed_at: std::time::Instant::now(),
            started_ms: crate::domain::time::now_ms(),
            others: Vec::new(),
            claiming: false,
        }
    }

    fn launch(
        &mut self,
        record: &RunRecord,
        graph: ValidatedPlan,
        last_seq: i64,
        start: Start,
        ctx: &mut Context<Self>,
    ) {
        let setup = Setup {
            shared: self.shared.clone(),
            run: record.id,
            corr: record.correlation_id.clone(),
            inputs: graph.inputs,
            workspace: record.workspace.clone().into(),
            last_seq,
            status: record.status,
            deadline_at: record.deadline_at,
            timeout: record.plan.timeout_s.map(Duration::from_secs_f64),
            start,
            delegate: self.supervisor.clone().recipient(),
            withdraw: self.supervisor.clone().recipient(),
            persistence: self.persistence.clone(),
            gates: self.gates.clone(),
            ended: ctx.address().recipient(),
            project: record.project.clone(),
            checkpoints: record
                .plan
                .checkpoints
                .unwrap_or(self.shared.options.checkpoints),
        };
        if self.coordinators.is_empty() {
            // Its lease was just claimed: that counts as renewed.
            self.renewed_at = std::time::Instant::now();
        }
        let addr = Coordinator::launch(setup, graph.graph);
        self.coordinators.insert(record.id, addr);
        self.shared.hub.set_local(record.id, true);
    }
}

impl Actor for Node {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let ttl = self.shared.options.lease_ttl;
        ctx.run_interval(ttl / 3, |act, ctx| act.heartbeat(ctx));
        ctx.run_interval(self.shared.options.command_poll, |act, ctx| {
            act.poll_commands(ctx)
        });
        if self.shared.options.fleet {
            self.fleet_tick(ctx);
            ctx.run_interval(self.shared.options.claim_every, |act, ctx| {
                act.fleet_tick(ctx)
            });
        }
    }
}

/// Queues `batch` with the persistence actor now; the future resolves once it is committed.
fn committed(
    persistence: &Addr<Persistence>,
    batch: Batch,
) -> impl std::future::Future<Output = Result<(), RuntimeError>> {
    let (tx, rx) = oneshot::channel();
    persistence.do_send(Persist {
        batch,
        ack: Some(tx),
    });
    async move {
        rx.await
            .map_err(|_| RuntimeError::Stopped)?
            .map_err(RuntimeError::Write)
    }
}

/// A batch leaving one command row for the process that executes `run`.
fn command(run: RunId, kind: CommandKind, reason: Option<String>) -> Batch {
    let mut batch = Batch::default();
    batch.new_commands.push((run, kind, reason));
    batch
}

impl Handler<WriteBatch> for Node {
    type Result = ResponseFuture<Result<(), RuntimeError>>;

    fn handle(&mut self, msg: WriteBatch, _: &mut Context<Self>) -> Self::Result {
        Box::pin(committed(&self.persistence, msg.0))
    }
}

async fn load_for_resume(
    shared: Arc<Shared>,
    run: RunId,
) -> Result<
    (
        RunRecord,
        Vec<TaskRow>,
        i64,
        Result<ValidatedPlan, RuntimeError>,
    ),
    RuntimeError,
> {
    let record = shared.store.run(run).await?;
    let rows = shared.store.tasks(run).await?;
    let last_seq = shared.store.last_seq(run).await?;
    let decompositions = shared.store.decompositions(run).await?;
    let plan = rebuild(&shared, &record, decompositions);
    Ok((record, rows, last_seq, plan))
}

/// A run's plan validated again, its graph grown by the decompositions it made so far.
pub(crate) fn rebuild(
    shared: &Shared,
    record: &RunRecord,
    decompositions: Vec<crate::store::DecompositionRow>,
) -> Result<ValidatedPlan, RuntimeError> {
    plan::validate(
        &PlanSource::from_plan(record.plan.clone()),
        &record.inputs,
        &shared.tools,
        &shared.agents,
    )
    .map_err(RuntimeError::Plan)
    .and_then(|mut p| {
        super::run::replay(&mut p.graph, decompositions)?;
        Ok(p)
    })
}

/// What the asynchronous part of a resume found.
enum Found {
    Finished(RunStatus),
    Here,
    Ready(Box<(RunRecord, Vec<TaskRow>, i64, ValidatedPlan)>),
}

impl Handler<Resume> for Node {
    type Result = ResponseActFuture<Self, Result<Resumed, RuntimeError>>;

    fn handle(&mut self, msg: Resume, _: &mut Context<Self>) -> Self::Result {
        let Resume { run, granted } = msg;
        if self.stopping {
            return Box::pin(fut::ready(Err(RuntimeError::Stopped)));
        }
        let persistence = self.persistence.clone();
        let shared = self.shared.clone();
        let here = self.coordinators.contains_key(&run);
        Box::pin(
            async move {
                // The run must exist before a lease row can point at it; one that has ended
                // (perhaps just now, here) is reported as such.
                let record = shared.store.run(run).await?;
                if record.status.is_terminal() {
                    if granted.is_some() {
                        let _ = persistence.send(ReleaseLease(run)).await;
                    }
                    return Ok(Found::Finished(record.status));
                }
                if here {
                    return Ok(Found::Here);
                }
                // A lease the fleet claimed for this process is kept, not claimed again.
                if granted.is_none() {
                    match persistence
                        .send(ClaimLease(run))
                        .await
                        .map_err(|_| RuntimeError::Stopped)??
                    {
                        Claim::Held(info) => return Err(RuntimeError::LeaseHeld { run, info }),
                        Claim::Granted { .. } => {}
                    }
                }
                let loaded = load_for_resume(shared, run)
                    .await
                    .and_then(|(r, rows, seq, plan)| Ok((r, rows, seq, plan?)));
                match loaded {
                    Ok((r, ..)) if r.status.is_terminal() => {
                        let _ = persistence.send(ReleaseLease(run)).await;
                        Ok(Found::Finished(r.status))
                    }
                    Ok(found) => Ok(Found::Ready(Box::new(found))),
                    Err(e) => {
                        let _ = persistence.send(ReleaseLease(run)).await;
                        Err(e)
                    }
                }
            }
            .into_actor(self)
            .map(move |res, act, ctx| match res? {
                Found::Finished(status) => Ok(Resumed::Finished(status)),
                Found::Here => Ok(Resumed::AlreadyRunning),
                Found::Ready(_) if act.coordinators.contains_key(&run) => {
                    Ok(Resumed::AlreadyRunning)
                }
                Found::Ready(found) => {
                    let (record, rows, last_seq, plan) = *found;
                    // A pending run may have rows already: the tasks it was restored with.
                    act.launch(&record, plan, last_seq, Start::Resume(rows), ctx);
                    Ok(Resumed::Started)
                }
            }),
        )
    }
}

impl Handler<Cancel> for Node {
    type Result = ResponseActFuture<Self, Result<Cancelled, RuntimeError>>;

    fn handle(&mut self, msg: Cancel, _: &mut Context<Self>) -> Self::Result {
        let Cancel { run, reason } = msg;
        if let Some(addr) = self.coordinators.get(&run).cloned() {
            // Its coordinator may be committing the end already: the store says.
            let store = self.shared.store.clone();
            return Box::pin(
                async move {
                    let status = store.run_status(run).await?.0;
                    if status.is_terminal() {
                        return Ok(Cancelled::Finished(status));
                    }
                    addr.do_send(CancelRun { reason });
                    Ok(Cancelled::Stopping)
                }
                .into_actor(self),
            );
        }
        let persistence = self.persistence.clone();
        let shared = self.shared.clone();
        let why = reason.clone();
        type Loaded = (
            RunRecord,
            Vec<TaskRow>,
            i64,
            Result<ValidatedPlan, RuntimeError>,
        );
        Box::pin(
            async move {
                let record = shared.store.run(run).await?;
                if record.status.is_terminal() {
                    return Ok::<Result<Loaded, Cancelled>, RuntimeError>(Err(
                        Cancelled::Finished(record.status),
                    ));
                }
                match persistence
                    .send(ClaimLease(run))
                    .await
                    .map_err(|_| RuntimeError::Stopped)??
                {
                    Claim::Held(info) => {
                        // A live process executes it: leave it a command and let it stop the run.
                        committed(&persistence, command(run, CommandKind::Cancel, Some(why)))
                            .await?;
                        Ok(Err(Cancelled::Requested(info)))
                    }
                    Claim::Granted { .. } => {
                        let loaded = load_for_resume(shared, run).await;
                        if loaded.is_err() {
                            let _ = persistence.send(ReleaseLease(run)).await;
                        }
                        Ok(Ok(loaded?))
                    }
                }
            }
            .into_actor(self)
            .map(move |res, act, ctx| match res? {
                Err(done) => Ok(done),
                Ok((record, rows, last_seq, plan)) => {
                    if record.status.is_terminal() {
                        act.persistence.do_send(ReleaseLease(run));
                        return Ok(Cancelled::Finished(record.status));
                    }
                    let plan = match plan {
                        Ok(p) => p,
                        Err(e) => {
                            act.persistence.do_send(ReleaseLease(run));
                            return Err(e);
                        }
                    };
                    act.launch(
                        &record,
                        plan,
                        last_seq,
                        Start::CancelOnly(rows, reason),
                        ctx,
                    );
                    Ok(Cancelled::Stopping)
                }
            }),
        )
    }
}

impl Handler<Wake> for Node {
    type Result = ResponseFuture<Result<(), RuntimeError>>;

    fn handle(&mut self, msg: Wake, _: &mut Context<Self>) -> Self::Result {
        if let Some(addr) = self.coordinators.get(&msg.0) {
            addr.do_send(RecheckWaits);
            return Box::pin(async { Ok(()) });
        }
        // Elsewhere or nowhere: the owner picks the command up; a run nobody executes reads
        // its waits when it is resumed.
        Box::pin(committed(
            &self.persistence,
            command(msg.0, CommandKind::Wake, None),
        ))
    }
}

impl Handler<RunEnded> for Node {
    type Result = ();

    fn handle(&mut self, msg: RunEnded, _: &mut Context<Self>) {
        self.coordinators.remove(&msg.run);
        self.shared.mcp.end_run(msg.run);
        self.shared.hub.set_local(msg.run, false);
        let waiter = self.latency_waiters.remove(&msg.run);
        if let Some(l) = msg.latencies {
            if self.shared.options.record_latencies {
                match waiter {
                    Some(w) => {
                        let _ = w.send(l);
                    }
                    None => {
                        self.latencies.insert(msg.run, l);
                    }
                }
            }
        }
        if let Some(e) = msg.error {
            tracing::error!(run = %msg.run, error = %e, "run stopped on a store error");
        }
        // While stopping, `Shutdown` releases the leases of the runs it interrupted.
        if !self.stopping {
            self.persistence.do_send(ReleaseLease(msg.run));
        }
    }
}

impl Handler<ActiveRuns> for Node {
    type Result = Vec<RunId>;

    fn handle(&mut self, _: ActiveRuns, _: &mut Context<Self>) -> Self::Result {
        self.coordinators.keys().copied().collect()
    }
}

impl Handler<TakeLatencies> for Node {
    type Result = ResponseFuture<Option<Vec<f32>>>;

    fn handle(&mut self, msg: TakeLatencies, _: &mut Context<Self>) -> Self::Result {
        let run = msg.0;
        if let Some(l) = self.latencies.remove(&run) {
            return Box::pin(async move { Some(l) });
        }
        // A run whose end was published may not have reported to the node yet.
        if !self.shared.options.record_latencies || !self.coordinators.contains_key(&run) {
            return Box::pin(async { None });
        }
        let (tx, rx) = oneshot::channel();
        self.latency_waiters.insert(run, tx);
        Box::pin(async move { rx.await.ok() })
    }
}

impl Handler<Shutdown> for Node {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        let mut waits = Vec::new();
        let runs: Vec<RunId> = self.coordinators.keys().copied().collect();
        for addr in self.coordinators.values() {
            let (tx, rx) = oneshot::channel();
            addr.do_send(Interrupt(Some(tx)));
            waits.push(rx);
        }
        let persistence = self.persistence.clone();
        let store = self.shared.store.clone();
        let fleet = self.shared.options.fleet;
        let holder = self.shared.holder.clone();
        Box::pin(
            async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(15), futures::future::join_all(waits))
                        .await;
                for run in runs {
                    let _ = persistence.send(ReleaseLease(run)).await;
                }
                if fleet {
                    if let Err(e) = store.remove_node(&holder).await {
                        tracing::warn!(error = %e, "could not remove this node's row; it ages out");
                    }
                }
                // In order: what is queued commits, lease operations in flight finish, then
                // every connection is returned while the actor system still runs.
                let (tx, rx) = oneshot::channel();
                persistence.do_send(Close(tx));
                let _ = rx.await;
            }
            .into_actor(self)
            .map(|_, _, _| {
                System::current().stop();
            }),
        )
    }
}
