//! Node: the root actor of a runtime. It creates runs and their coordinators, claims and
//! renews the leases of the runs it executes (heartbeat), picks up commands other processes
//! left for its runs (cancel), and on shutdown interrupts every run so it stays resumable.

use super::gate::GateActor;
use super::messages::{
    Abandon, ActiveRuns, AdoptLease, Cancel, CancelRun, Cancelled, ClaimLease, Close, Interrupt,
    Persist, RecheckWaits, ReleaseLease, RenewLeases, Resume, Resumed, RunEnded, Shutdown, Submit,
    TakeLatencies, Wake, WriteBatch,
};
use super::persistence::Persistence;
use super::run::{Coordinator, Setup, Start};
use super::supervisor::Supervisor;
use super::workspace::workspace_of;
use super::{RuntimeError, Shared};
use crate::domain::event::EventType;
use crate::domain::graph::{self, ValidatedPlan};
use crate::domain::plan::PlanSource;
use crate::domain::{Event, RunId, RunStatus};
use crate::store::{Batch, Claim, RunRecord, TaskRow};
use actix::prelude::*;
use serde_json::json;
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
            graph: Arc::new(graph.graph),
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
        let addr = Coordinator::launch(setup);
        self.coordinators.insert(record.id, addr);
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
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
            for (_, c) in self.coordinators.drain() {
                c.do_send(Abandon);
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
                                        c.do_send(Abandon);
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

    fn poll_commands(&mut self, ctx: &mut Context<Self>) {
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
                            match c.kind.as_str() {
                                "cancel" => addr.do_send(CancelRun {
                                    reason: c.reason.clone().unwrap_or_else(|| "cancelled".into()),
                                }),
                                "wake" => addr.do_send(RecheckWaits),
                                _ => {}
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

impl Node {
    /// Whether a live node is less loaded than this one (fleet mode; the others' loads are
    /// as of their last heartbeat, a quarter second ago at most): then new runs are left to
    /// the least loaded to claim.
    fn others_less_loaded(&self) -> bool {
        let mine = self.coordinators.len() as i64;
        self.others.iter().any(|&l| l < mine)
    }

    /// Fleet: records this node's heartbeat and load, then, unless another live node is less
    /// loaded, claims runs no live process holds (up to the gap to the next least-loaded
    /// node, at least one) and executes them.
    fn fleet_tick(&mut self, ctx: &mut Context<Self>) {
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
fn command(run: RunId, kind: &str, reason: Option<String>) -> Batch {
    let mut batch = Batch::default();
    batch.new_commands.push((run, kind.into(), reason));
    batch
}

fn new_run(
    msg: &Submit,
    shared: &Shared,
) -> Result<(RunRecord, Batch, Vec<TaskRow>), RuntimeError> {
    let (plan, corr) = (&msg.plan, &msg.corr);
    let id = msg.id.unwrap_or_default();
    let workspace = workspace_of(&shared.data_dir, id);
    std::fs::create_dir_all(&workspace).map_err(|source| RuntimeError::Io {
        path: workspace.display().to_string(),
        source,
    })?;
    let now = crate::domain::event::from_ms(crate::domain::time::now_ms());
    let record = RunRecord {
        id,
        name: plan.plan.name.clone(),
        status: RunStatus::Pending,
        reason: None,
        correlation_id: corr.clone(),
        plan: plan.plan.clone(),
        inputs: plan.inputs.clone(),
        workspace: workspace.display().to_string(),
        created_at: now.timestamp_millis(),
        started_at: None,
        finished_at: None,
        deadline_at: None,
        project: msg
            .project
            .clone()
            .unwrap_or_else(|| plan.plan.project().to_string()),
        lineage: msg.restore.as_ref().map(|r| r.lineage.clone()),
    };
    // Task rows are written as tasks start to move; until then the plan says they are pending.
    let mut batch = Batch::default();
    batch.events.push(Event {
        seq: 1,
        kind: EventType::RunCreated,
        at: now,
        run_id: id,
        task_id: None,
        correlation_id: corr.clone(),
        data: json!({"name": plan.plan.name, "tasks": plan.graph.len(), "inputs": plan.inputs}),
    });
    for (n, (kind, data)) in msg.prelude.iter().enumerate() {
        batch.events.push(Event {
            seq: 2 + n as i64,
            kind: *kind,
            at: now,
            run_id: id,
            task_id: None,
            correlation_id: corr.clone(),
            data: data.clone(),
        });
    }
    batch.new_runs.push(record.clone());
    batch.template_uses.extend(msg.template.clone());
    let mut restored = Vec::new();
    if let Some(r) = &msg.restore {
        restored = r
            .tasks
            .iter()
            .map(|t| TaskRow {
                run_id: id,
                ..t.clone()
            })
            .collect();
        batch.tasks.extend(restored.iter().cloned());
        batch
            .artifacts
            .extend(r.artifacts.iter().map(|a| crate::store::ArtifactRow {
                run_id: id,
                ..a.clone()
            }));
    }
    Ok((record, batch, restored))
}

impl Handler<WriteBatch> for Node {
    type Result = ResponseFuture<Result<(), RuntimeError>>;

    fn handle(&mut self, msg: WriteBatch, _: &mut Context<Self>) -> Self::Result {
        Box::pin(committed(&self.persistence, msg.0))
    }
}

impl Handler<Submit> for Node {
    type Result = ResponseActFuture<Self, Result<RunId, RuntimeError>>;

    fn handle(&mut self, msg: Submit, _: &mut Context<Self>) -> Self::Result {
        if self.stopping {
            return Box::pin(fut::ready(Err(RuntimeError::Stopped)));
        }
        if msg.no_commands {
            if let Some(what) = msg.plan.plan.command_user() {
                return Box::pin(fut::ready(Err(RuntimeError::Forbidden {
                    scope: "shell",
                    message: format!(
                        "{what} runs commands on the host; that needs an API key with the `shell` scope (nofx keys create --scope submit,shell)"
                    ),
                })));
            }
        }
        let (record, mut batch, restored) = match new_run(&msg, &self.shared) {
            Ok(x) => x,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let run = record.id;
        // In a fleet, a run is executed by the least-loaded live node: when another is less
        // loaded than this one, the run is stored for it to claim.
        let detach = msg.detach || (self.shared.options.fleet && self.others_less_loaded());
        if !detach {
            // The lease rides in the run's own transaction: no other node can claim the
            // run between its commit and its start here.
            let expires =
                crate::domain::time::now_ms() + self.shared.options.lease_ttl.as_millis() as i64;
            batch
                .new_leases
                .push((record.id, self.shared.holder.clone(), expires));
        }
        // Once committed, the new lease (token 1) is this process's: the persistence actor
        // fences the run's writes with it.
        let stored = committed(&self.persistence, batch);
        let last_seq = 1 + msg.prelude.len() as i64;
        Box::pin(
            async move {
                stored.await?;
                Ok::<_, RuntimeError>(!detach)
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                let execute = res?;
                if execute && !act.coordinators.contains_key(&run) {
                    act.launch(&record, msg.plan, last_seq, Start::Resume(restored), ctx);
                }
                Ok(run)
            }),
        )
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
    let plan = graph::validate(
        &PlanSource::from_plan(record.plan.clone()),
        &record.inputs,
        &shared.tools,
        &shared.agents,
    )
    .map_err(RuntimeError::Plan);
    Ok((record, rows, last_seq, plan))
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
                    let status = store.run(run).await?.status;
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
                        committed(&persistence, command(run, "cancel", Some(why))).await?;
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
        Box::pin(committed(&self.persistence, command(msg.0, "wake", None)))
    }
}

impl Handler<RunEnded> for Node {
    type Result = ();

    fn handle(&mut self, msg: RunEnded, _: &mut Context<Self>) {
        self.coordinators.remove(&msg.run);
        if let Some(l) = msg.latencies {
            if self.shared.options.record_latencies {
                self.latencies.insert(msg.run, l);
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
    type Result = Option<Vec<f32>>;

    fn handle(&mut self, msg: TakeLatencies, _: &mut Context<Self>) -> Self::Result {
        self.latencies.remove(&msg.0)
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
