//! A new run: its rows (run, events, restored tasks and artifacts, the lease) built from a
//! validated plan and committed in one transaction, then executed here unless detached.

use crate::domain::event::{payload, EventData};
use crate::domain::{PendingEvent, RunId, RunStatus};
use crate::runtime::messages::Submit;
use crate::runtime::run::Start;
use crate::runtime::workspace::workspace_of;
use crate::runtime::{RuntimeError, Shared};
use crate::store::{Batch, RunRecord, TaskRow};
use actix::prelude::*;

use super::{committed, Node};

fn new_run(
    msg: &Submit,
    shared: &Shared,
) -> Result<(RunRecord, Batch, Vec<TaskRow>), RuntimeError> {
    let (plan, corr) = (&msg.plan, &msg.corr);
    let id = msg.id.unwrap_or_default();
    let workspace = match &msg.workspace {
        // The caller's directory, as it really is (symlinks resolved).
        Some(dir) => std::fs::canonicalize(dir)
            .and_then(|d| {
                if d.is_dir() {
                    Ok(d)
                } else {
                    Err(std::io::Error::other("not a directory"))
                }
            })
            .map_err(|source| RuntimeError::Io {
                path: dir.display().to_string(),
                source,
            })?,
        None => {
            let workspace = workspace_of(&shared.data_dir, id);
            std::fs::create_dir_all(&workspace).map_err(|source| RuntimeError::Io {
                path: workspace.display().to_string(),
                source,
            })?;
            workspace
        }
    };
    let now = crate::domain::time::now_ms();
    let record = RunRecord {
        id,
        name: plan.plan.name.clone(),
        status: RunStatus::Pending,
        reason: None,
        correlation_id: corr.clone(),
        plan: plan.plan.clone(),
        inputs: plan.inputs.clone(),
        workspace: workspace.display().to_string(),
        created_at: now,
        started_at: None,
        finished_at: None,
        deadline_at: None,
        project: msg
            .project
            .clone()
            .unwrap_or_else(|| plan.plan.project().to_string()),
        lineage: msg.restore.as_ref().map(|r| r.lineage.clone()).or_else(|| {
            msg.parent.map(|p| crate::store::Lineage {
                parent_run_id: p,
                checkpoint_id: None,
                forked_at: None,
            })
        }),
    };
    // Task rows are written as tasks start to move; until then the plan says they are pending.
    let mut batch = Batch::default();
    let created = EventData::RunCreated(payload::RunCreated {
        name: plan.plan.name.clone(),
        tasks: plan.graph.len(),
        inputs: plan.inputs.clone(),
    });
    for (n, data) in std::iter::once(created)
        .chain(msg.prelude.iter().cloned())
        .enumerate()
    {
        batch.events.push(PendingEvent::new(
            1 + n as i64,
            now,
            id,
            None,
            corr.clone(),
            data,
        ));
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
        batch
            .decompositions
            .extend(r.decompositions.iter().cloned());
    }
    Ok((record, batch, restored))
}

impl Handler<Submit> for Node {
    type Result = ResponseActFuture<Self, Result<RunId, RuntimeError>>;

    fn handle(&mut self, msg: Submit, _: &mut Context<Self>) -> Self::Result {
        if self.stopping {
            return Box::pin(fut::ready(Err(RuntimeError::Stopped)));
        }
        if msg.no_commands {
            let agents = &self.shared.agents;
            let user = msg
                .plan
                .plan
                .command_user()
                .or_else(|| crate::runtime::check::agent_command_user(&msg.plan.plan, agents));
            if let Some(what) = user {
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
