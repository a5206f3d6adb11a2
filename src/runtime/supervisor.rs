//! Supervisor: scores agents for each ready task and delegates it to the best one with a free
//! slot and rate budget. Work beyond the limits waits here, in order, and is re-scored when a
//! slot frees or a rate limit lifts; it is never dropped. It never runs tasks (agents do) and
//! never writes to the store (the persistence actor does).

use super::agent::{AgentActor, RunTask};
use super::coordinator::Coordinator;
use super::dispatch::{Dispatcher, Waiting};
use super::scoring::TaskNeeds;
use crate::domain::{AgentSpec, Correlation, Priority, RunId};
use crate::tools::{Tool, ToolEnv};
use actix::prelude::*;
use governor::clock::DefaultClock;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A ready task handed to the supervisor by its run's coordinator.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Delegate {
    /// Run, task and correlation id.
    pub corr: Correlation,
    /// Index of the task in its plan.
    pub index: usize,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// The tool to run.
    pub tool: Arc<dyn Tool>,
    /// Inputs with every reference resolved.
    pub inputs: Value,
    /// Deadline of the attempt.
    pub timeout: Option<Duration>,
    /// Cancelled on run cancel or shutdown.
    pub cancel: CancellationToken,
    /// The run workspace.
    pub workspace: PathBuf,
    /// Stable across attempts of this task in this run.
    pub idempotency_key: String,
    /// Priority.
    pub priority: Priority,
    /// What scoring needs.
    pub needs: TaskNeeds,
    /// Where results go.
    pub coordinator: Addr<Coordinator>,
    /// Models, bound to this task (the agent adds itself).
    pub models: crate::tools::ModelAccess,
}

/// An agent finished an attempt; its slot is free.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SlotFreed(pub usize);

/// Drops every waiting task of a run (cancel, shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Withdraw(pub RunId);

/// Asks for the queue's state (health checks, `agents ls`).
#[derive(Message)]
#[rtype(result = "QueueReport")]
pub struct QueueStats;

/// The queue's state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueReport {
    /// Tasks waiting for an agent.
    pub waiting: usize,
    /// Tasks in flight on all agents.
    pub in_flight: u32,
    /// Per agent: id, tasks in flight, max_concurrency.
    pub agents: Vec<AgentLoad>,
}

/// One agent's load.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentLoad {
    /// Agent id.
    pub id: String,
    /// Tasks in flight.
    pub in_flight: u32,
    /// Its limit.
    pub max_concurrency: u32,
}

/// The supervisor actor.
pub struct Supervisor {
    dispatcher: Dispatcher<DefaultClock, Delegate>,
    agents: Vec<Addr<AgentActor>>,
    wake: Option<SpawnHandle>,
}

impl Supervisor {
    /// Starts the supervisor and one agent actor per spec; `env` builds the tool services
    /// (which may need the supervisor's address).
    pub fn launch(specs: Vec<AgentSpec>, env: impl FnOnce(Addr<Self>) -> ToolEnv) -> Addr<Self> {
        Supervisor::create(move |ctx| {
            let me = ctx.address();
            let env = env(me.clone());
            let agents = specs
                .iter()
                .map(|s| AgentActor::new(s.clone(), me.clone(), env.clone()).start())
                .collect();
            Supervisor {
                dispatcher: Dispatcher::new(specs, DefaultClock::default()),
                agents,
                wake: None,
            }
        })
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        while let Some(p) = self.dispatcher.place() {
            let agent = p.agent;
            let msg = RunTask {
                delegate: p.task.payload,
                agent,
                candidates: p.candidates,
            };
            if let Err(e) = self.agents[agent].try_send(msg) {
                // The slot accounting keeps an agent's mailbox below its capacity, so this
                // does not happen; if it does, the task waits again rather than being lost.
                tracing::warn!(agent, "agent mailbox refused a task; it waits again");
                self.dispatcher.release(agent);
                let back = match e {
                    SendError::Full(m) | SendError::Closed(m) => m,
                };
                let needs = back.delegate.needs.clone();
                self.dispatcher.enqueue(Waiting {
                    run: back.delegate.corr.run,
                    priority: back.delegate.priority,
                    needs,
                    payload: back.delegate,
                });
                break;
            }
        }
        if let Some(wait) = self.dispatcher.rate_wait() {
            if let Some(h) = self.wake.take() {
                ctx.cancel_future(h);
            }
            self.wake = Some(
                ctx.run_later(wait.max(Duration::from_millis(1)), |act, ctx| {
                    act.wake = None;
                    act.pump(ctx);
                }),
            );
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;
}

impl Handler<Delegate> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Delegate, ctx: &mut Context<Self>) {
        self.dispatcher.enqueue(Waiting {
            run: msg.corr.run,
            priority: msg.priority,
            needs: msg.needs.clone(),
            payload: msg,
        });
        self.pump(ctx);
    }
}

impl Handler<SlotFreed> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SlotFreed, ctx: &mut Context<Self>) {
        self.dispatcher.release(msg.0);
        self.pump(ctx);
    }
}

impl Handler<Withdraw> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Withdraw, _: &mut Context<Self>) {
        for w in self.dispatcher.withdraw(msg.0) {
            w.payload.cancel.cancel();
        }
    }
}

impl Handler<QueueStats> for Supervisor {
    type Result = MessageResult<QueueStats>;

    fn handle(&mut self, _: QueueStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(QueueReport {
            waiting: self.dispatcher.waiting(),
            in_flight: self.dispatcher.in_flight(),
            agents: self
                .dispatcher
                .agents()
                .map(|(s, n)| AgentLoad {
                    id: s.id.clone(),
                    in_flight: n,
                    max_concurrency: s.max_concurrency,
                })
                .collect(),
        })
    }
}
