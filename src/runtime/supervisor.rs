//! Supervisor: scores agents for each ready task and delegates it to the best one with a free
//! slot and rate budget. Work beyond the limits waits here, in order, and is re-scored when a
//! slot frees or a rate limit lifts; it is never dropped. It never runs tasks (agents do) and
//! never writes to the store (the persistence actor does).

use super::agent::AgentActor;
use super::dispatch::{Dispatcher, Waiting};
use super::messages::{AgentLoad, Delegate, QueueReport, QueueStats, RunTask, SlotFreed, Withdraw};
use crate::domain::AgentSpec;
use crate::tools::ToolEnv;
use actix::prelude::*;
use governor::clock::DefaultClock;
use std::time::Duration;

/// The supervisor actor.
pub struct Supervisor {
    dispatcher: Dispatcher<DefaultClock, Delegate>,
    agents: Vec<Addr<AgentActor>>,
    wake: Option<SpawnHandle>,
}

impl Supervisor {
    /// Starts the supervisor and one agent actor per spec; `env` builds the tool services
    /// (which may need the supervisor's address).
    pub fn launch(
        specs: Vec<AgentSpec>,
        pool: tokio::runtime::Handle,
        env: impl FnOnce(Addr<Self>) -> ToolEnv,
    ) -> Addr<Self> {
        Supervisor::create(move |ctx| {
            let me = ctx.address();
            let env = env(me.clone());
            let agents = specs
                .iter()
                .map(|s| {
                    AgentActor::new(s.clone(), me.clone().recipient(), env.clone(), pool.clone())
                        .start()
                })
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
