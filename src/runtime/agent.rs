//! Agent actors: each runs the tasks the supervisor delegates to it, at most
//! `max_concurrency` at once (its mailbox is bounded to that). Results go back to the
//! coordinator and the freed slot to the supervisor with `do_send`, so a result never waits
//! on a full mailbox and no send cycle can deadlock.

use super::messages::{AttemptError, RunTask, SlotFreed, TaskAttempted, TaskStarted};
use crate::domain::{AgentSpec, FailureKind};
use crate::tools::{ToolContext, ToolEnv, ToolError};
use actix::prelude::*;
use futures::FutureExt;
use std::time::Instant;
use tracing::Instrument;

/// An agent actor.
pub struct AgentActor {
    spec: AgentSpec,
    supervisor: Recipient<SlotFreed>,
    env: ToolEnv,
}

impl AgentActor {
    /// An agent for `spec`, reporting freed slots to `supervisor`, giving tools `env`.
    pub fn new(spec: AgentSpec, supervisor: Recipient<SlotFreed>, env: ToolEnv) -> Self {
        Self {
            spec,
            supervisor,
            env,
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
        let models = d.models.clone().for_agent(&agent_id, self.spec.role);
        d.reply.started.do_send(TaskStarted {
            corr: d.corr.clone(),
            index: d.index,
            attempt: d.attempt,
            agent: agent_id.clone(),
            candidates,
        });
        let supervisor = self.supervisor.clone();
        let env = self.env.clone();
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
            let started = Instant::now();
            tracing::debug!(agent = %agent_id, tool = tool.name(), attempt, "attempt started");
            let result = if cancel.is_cancelled() {
                Err(AttemptError::from(ToolError::Cancelled))
            } else {
                // A tool that panics fails its attempt; it never takes the runtime down.
                let run = std::panic::AssertUnwindSafe(tool.run(tool_ctx)).catch_unwind();
                tokio::select! {
                    r = run => match r {
                        Ok(r) => r.map_err(AttemptError::from),
                        Err(panic) => {
                            let what = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "no message".into());
                            Err(AttemptError::new(FailureKind::Panic, format!("tool `{}` panicked: {what}", tool.name())))
                        }
                    },
                    _ = cancel.cancelled() => Err(AttemptError::from(ToolError::Cancelled)),
                    _ = async {
                        match timeout {
                            Some(t) => tokio::time::sleep(t).await,
                            None => std::future::pending::<()>().await,
                        }
                    } => {
                        let secs = timeout.map(|t| t.as_secs_f64()).unwrap_or_default();
                        Err(AttemptError::new(FailureKind::Timeout, format!("timed out after {secs}s")))
                    }
                }
            };
            let duration_ms = started.elapsed().as_millis() as i64;
            supervisor.do_send(SlotFreed(agent));
            reply.do_send(TaskAttempted {
                corr,
                index,
                attempt,
                duration_ms,
                result,
            });
        }
        .instrument(span);
        ctx.spawn(fut.into_actor(self));
    }
}
