//! A run's life: it starts (or resumes: what was in flight runs again), may be stopped
//! (cancelled, failed by its timeout or a budget), interrupted (this process stops; the run
//! stays resumable) or abandoned (its lease was lost), takes automatic checkpoints, and ends
//! once no task is open.

use super::{After, Coordinator, Mode, Start};
use crate::domain::event::{payload, EventData};
use crate::domain::time::now_ms;
use crate::domain::{RunStatus, TaskStatus};
use crate::runtime::messages::{Abandon, CancelRun, Interrupt, Persist, Withdraw};
use crate::store::{Batch, RunUpdate};
use actix::prelude::*;
use std::time::Duration;

impl Coordinator {
    /// Stops the run: pending and waiting tasks are cancelled now, running ones are told to
    /// stop and are cancelled when their agent reports back.
    pub(super) fn stop_run(&mut self, status: RunStatus, reason: String, ctx: &mut Context<Self>) {
        if self.mode != Mode::Running {
            return;
        }
        tracing::info!(parent: &self.span, %status, %reason, "stopping run");
        self.mode = Mode::Stopping { status, reason };
        self.s.withdraw.do_send(Withdraw(self.s.run));
        self.deferred.clear();
        for i in 0..self.state.len() {
            let t = self.state.task(i);
            match t.status {
                // Decomposed: nothing of its own runs; it ends with its subtasks.
                TaskStatus::Running
                    if self.state.is_decomposed(i) || self.decomposing.contains(&i) =>
                {
                    self.cancel_task(i)
                }
                TaskStatus::Running => {
                    if let Some(c) = &t.cancel {
                        c.cancel();
                    }
                }
                s if !s.is_terminal() => self.cancel_task(i),
                _ => {}
            }
        }
        self.flush(ctx, None);
        self.maybe_finish(ctx);
    }

    pub(super) fn maybe_finish(&mut self, ctx: &mut Context<Self>) {
        if self.state.open() > 0 || matches!(self.mode, Mode::Finishing | Mode::Halted) {
            return;
        }
        let stopping = match std::mem::replace(&mut self.mode, Mode::Finishing) {
            Mode::Stopping { status, reason } => Some((status, reason)),
            _ => None,
        };
        let (status, reason) = self.state.outcome(stopping);
        let ended = payload::RunEnded {
            reason: reason.clone(),
            tasks: self.state.counts(),
        };
        self.emit(
            None,
            match status {
                RunStatus::Succeeded => EventData::RunSucceeded(ended),
                RunStatus::Cancelled => EventData::RunCancelled(ended),
                _ => EventData::RunFailed(ended),
            },
        );
        self.out.batch().run_updates.push(RunUpdate {
            id: self.s.run,
            status,
            reason,
            started_at: None,
            finished_at: Some(now_ms()),
            deadline_at: None,
        });
        tracing::info!(parent: &self.span, %status, "run ended");
        self.flush(ctx, Some(After::RunDone));
    }

    /// Checkpoints the run as committed now; tasks that became ready meanwhile wait until
    /// the workspace has been read, then go on (the row is written after).
    pub(super) fn auto_checkpoint(&mut self, description: String, ctx: &mut Context<Self>) {
        let shared = self.s.shared.clone();
        let run = self.s.run;
        let snap = async move {
            crate::runtime::checkpoints::snapshot(
                &shared.store,
                &shared.data_dir,
                run,
                Some(description),
            )
            .await
        };
        ctx.spawn(snap.into_actor(self).map(|res, act, ctx| {
            act.pausing = false;
            match res {
                Ok(row) => {
                    tracing::info!(parent: &act.span, checkpoint = %row.id, step = row.step, "checkpoint");
                    act.s.persistence.do_send(Persist {
                        batch: Batch {
                            checkpoints: vec![row],
                            ..Batch::default()
                        },
                        ack: None,
                    });
                }
                Err(e) => {
                    tracing::warn!(parent: &act.span, error = %e, "automatic checkpoint failed")
                }
            }
            act.pump_deferred(ctx);
        }));
    }

    fn start_run(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let resumed = self.s.status != RunStatus::Pending;
        let deadline = self
            .s
            .deadline_at
            .or_else(|| self.s.timeout.map(|t| now + t.as_millis() as i64));
        self.out.batch().run_updates.push(RunUpdate {
            id: self.s.run,
            status: RunStatus::Running,
            reason: None,
            started_at: Some(now),
            finished_at: None,
            deadline_at: deadline,
        });
        self.emit(
            None,
            EventData::RunStarted(payload::RunStarted {
                resumed,
                tasks: self.state.len(),
                cancel_only: false,
            }),
        );
        // Tasks that were ready, running or retrying when the last process stopped run again.
        let (again, fresh) = self.state.restart();
        // Decomposed tasks only: a start never walks every task for them.
        for i in self.state.decomposed() {
            if self.state.task(i).status == TaskStatus::Running {
                self.write_row(i);
                self.arm_parent_deadline(i, ctx);
            }
        }
        for &i in &again {
            self.write_row(i);
        }
        for i in again {
            self.dispatch(i, ctx);
        }
        for i in fresh {
            self.ready_or_defer(i, ctx);
        }
        if let Some(d) = deadline {
            let left = Duration::from_millis((d - now).max(0) as u64);
            ctx.run_later(left, |act, ctx| {
                act.stop_run(RunStatus::Failed, "timeout".into(), ctx);
            });
        }
        if self.has_waits {
            self.check_waits(ctx);
        }
        self.flush(ctx, None);
        self.maybe_finish(ctx);
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match std::mem::replace(&mut self.s.start, Start::Fresh) {
            Start::CancelOnly(_, reason) => {
                self.emit(
                    None,
                    EventData::RunStarted(payload::RunStarted {
                        resumed: true,
                        tasks: self.state.len(),
                        cancel_only: true,
                    }),
                );
                self.stop_run(RunStatus::Cancelled, reason, ctx);
            }
            _ => self.start_run(ctx),
        }
    }
}

impl Handler<CancelRun> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: CancelRun, ctx: &mut Context<Self>) {
        self.stop_run(RunStatus::Cancelled, msg.reason, ctx);
    }
}

impl Handler<Interrupt> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: Interrupt, ctx: &mut Context<Self>) {
        if matches!(self.mode, Mode::Halted | Mode::Finishing) {
            if let Some(d) = msg.0 {
                let _ = d.send(());
            }
            return;
        }
        self.halt();
        self.emit(
            None,
            EventData::RunInterrupted(payload::Reason {
                reason: "the process executing the run stopped; it goes on when resumed (`nofx resume`, or `Runtime::resume` in a program)"
                    .into(),
            }),
        );
        self.flush(ctx, Some(After::Interrupted(msg.0)));
    }
}

impl Handler<Abandon> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: Abandon, ctx: &mut Context<Self>) {
        tracing::warn!(parent: &self.span, why = msg.0, "stopping without writing; the run resumes wherever it is claimed next");
        self.halt();
        ctx.stop();
    }
}
