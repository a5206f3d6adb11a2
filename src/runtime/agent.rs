//! Agent actors: each runs the tasks the supervisor delegates to it, at most
//! `max_concurrency` at once (its mailbox is bounded to that). Results go back to the
//! coordinator and the freed slot to the supervisor with `do_send`, so a result never waits
//! on a full mailbox and no send cycle can deadlock. Tools run on the runtime's tool threads
//! (`pool.rs`), not on the actor thread, except those that say they are quick
//! ([`crate::tools::Tool::inline`]).

use super::messages::{AttemptError, RunTask, SlotFreed, TaskAttempted, TaskStarted};
use crate::domain::time::now_ms;
use crate::domain::{AgentSpec, FailureKind};
use crate::tools::{ToolContext, ToolEnv, ToolError};
use actix::prelude::*;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use tracing::Instrument;

/// An agent actor.
pub struct AgentActor {
    spec: AgentSpec,
    supervisor: Recipient<SlotFreed>,
    env: ToolEnv,
    /// Where its tools run (the runtime's tool threads).
    pool: tokio::runtime::Handle,
}

impl AgentActor {
    /// An agent for `spec`, reporting freed slots to `supervisor`, running tools on `pool`
    /// with `env`.
    pub fn new(
        spec: AgentSpec,
        supervisor: Recipient<SlotFreed>,
        env: ToolEnv,
        pool: tokio::runtime::Handle,
    ) -> Self {
        Self {
            spec,
            supervisor,
            env,
            pool,
        }
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.spec.max_concurrency as usize + 1);
    }
}

impl Handler<RunTask> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: RunTask, ctx: &mut Context<Self>) {
        let RunTask {
            delegate: d,
            agent,
            candidates,
        } = msg;
        let agent_id = self.spec.id.clone();
        let models = d.models.clone().for_agent(&self.spec);
        d.reply.started.do_send(TaskStarted {
            corr: d.corr.clone(),
            index: d.index,
            attempt: d.attempt,
            agent: agent_id.clone(),
            candidates,
        });
        let supervisor = self.supervisor.clone();
        let env = self.env.clone();
        let pool = self.pool.clone();
        let span = d.corr.span("task");
        let corr = d.corr.clone();
        let tool_ctx = ToolContext {
            inputs: d.inputs,
            workspace: d.workspace,
            corr: d.corr,
            attempt: d.attempt,
            idempotency_key: d.idempotency_key,
            cancel: d.cancel.clone(),
            env,
            models,
            link: d.link,
        };
        let (tool, timeout, cancel, reply, index, attempt) = (
            d.tool,
            d.timeout,
            d.cancel,
            d.reply.attempted,
            d.index,
            d.attempt,
        );
        let fut = async move {
            let started = now_ms();
            tracing::debug!(agent = %agent_id, tool = tool.name(), attempt, "attempt started");
            let result = if cancel.is_cancelled() {
                Err(AttemptError::from(ToolError::Cancelled))
            } else {
                // The tool runs on the tool threads: blocking there never stalls the actors.
                // A panic, in `run` itself or in its future, fails the attempt; it never
                // takes the agent or the runtime down.
                let name = tool.name().to_string();
                let panicked = |panic: Box<dyn std::any::Any + Send>| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "no message".into());
                    AttemptError::new(
                        FailureKind::Panic,
                        format!("tool `{name}` panicked: {what}"),
                    )
                };
                let limit = async {
                    match timeout {
                        Some(t) => tokio::time::sleep(t).await,
                        None => std::future::pending::<()>().await,
                    }
                };
                let timed_out = || {
                    let secs = timeout.map(|t| t.as_secs_f64()).unwrap_or_default();
                    AttemptError::new(FailureKind::Timeout, format!("timed out after {secs}s"))
                };
                if tool.inline() {
                    // A quick tool runs here: no hop to a tool thread and back.
                    let job = std::panic::catch_unwind(AssertUnwindSafe(|| tool.run(tool_ctx)));
                    match job {
                        Err(panic) => Err(panicked(panic)),
                        Ok(job) => tokio::select! {
                            r = AssertUnwindSafe(job).catch_unwind() => match r {
                                Ok(r) => r.map_err(AttemptError::from),
                                Err(panic) => Err(panicked(panic)),
                            },
                            _ = cancel.cancelled() => Err(AttemptError::from(ToolError::Cancelled)),
                            _ = limit => Err(timed_out()),
                        },
                    }
                } else {
                    let job = tool.clone();
                    let mut job = pool.spawn(async move { job.run(tool_ctx).await });
                    tokio::select! {
                        r = &mut job => match r {
                            Ok(r) => r.map_err(AttemptError::from),
                            Err(e) if e.is_panic() => Err(panicked(e.into_panic())),
                            // The tool threads stopped (the runtime is shutting down).
                            Err(_) => Err(AttemptError::from(ToolError::Cancelled)),
                        },
                        _ = cancel.cancelled() => {
                            job.abort();
                            Err(AttemptError::from(ToolError::Cancelled))
                        }
                        _ = limit => {
                            job.abort();
                            Err(timed_out())
                        }
                    }
                }
            };
            // Wall-clock milliseconds, so that a metrics row's run ([at - duration_ms, at))
            // lies within the agent's slot: one attempt's end is never after the next one's
            // start on the same slot.
            let ended_at = now_ms();
            supervisor.do_send(SlotFreed(agent));
            reply.do_send(TaskAttempted {
                corr,
                index,
                attempt,
                duration_ms: (ended_at - started).max(0),
                ended_at,
                result,
            });
        }
        .instrument(span);
        ctx.spawn(fut.into_actor(self));
    }
}
