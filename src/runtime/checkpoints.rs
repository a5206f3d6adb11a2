//! Checkpoints, restore and fork: a run's progress saved as a row, and new runs that start
//! from one (restored tasks are not run again; the workspace is rebuilt from the manifest,
//! `workspace.rs`).

use super::messages;
use super::runtime::submission;
use super::workspace::{manifest_of, rebuild, workspace_of};
use super::{RunHandle, Runtime, RuntimeError, SubmitOptions};
use crate::domain::event::{payload, EventData};
use crate::domain::plan::ValidatedPlan;
use crate::domain::plan::{Format, Plan, PlanSource};
use crate::domain::reference::{references_in, Reference};
use crate::domain::{CheckpointId, RunId, TaskKey, TaskStatus};
use crate::store::{
    ArtifactRow, Blobs, CheckpointRow, DecompositionRow, Lineage, RunRecord, TaskRow,
};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What a fork changes: where it starts, a JSON merge patch on the plan, input values.
#[derive(Debug, Clone, Default)]
pub struct Fork {
    /// The task the fork starts at: it and everything downstream of it run again.
    pub at: String,
    /// A JSON merge patch (RFC 7386) on the plan. `tasks` may be an object keyed by task id
    /// (merged into those tasks; `null` removes one, a new key adds one) or a list (replaces
    /// the tasks).
    pub patch: Option<Value>,
    /// Input values over the parent run's.
    pub inputs: Map<String, Value>,
}

/// What a checkpoint kept of a task: its outputs and agent.
type Kept = (Option<Value>, Option<String>);

/// Tasks of the checkpoint, by id.
fn checkpoint_tasks(cp: &CheckpointRow) -> HashMap<String, Kept> {
    cp.tasks
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            let id = t.get("id")?.as_str()?.to_string();
            let outputs = t.get("outputs").filter(|v| !v.is_null()).cloned();
            let agent = t.get("agent").and_then(Value::as_str).map(str::to_string);
            Some((id, (outputs, agent)))
        })
        .collect()
}

/// Applies a merge patch to a plan, with `tasks` addressable as an object keyed by id.
fn patch_plan(plan: &Plan, patch: &Value) -> Result<Value, RuntimeError> {
    if !patch.is_object() {
        return Err(RuntimeError::BadFork(
            "the patch must be a JSON object (a merge patch on the plan)".into(),
        ));
    }
    let mut doc = serde_json::to_value(plan).map_err(|e| RuntimeError::BadFork(e.to_string()))?;
    let keyed = patch.get("tasks").is_some_and(Value::is_object);
    if keyed {
        let tasks: Map<String, Value> = plan
            .tasks
            .iter()
            .map(|t| {
                let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.remove("id");
                }
                (t.id.clone(), v)
            })
            .collect();
        doc["tasks"] = Value::Object(tasks);
    }
    json_patch::merge(&mut doc, patch);
    if keyed {
        let tasks = doc
            .get_mut("tasks")
            .and_then(Value::as_object_mut)
            .map(std::mem::take)
            .unwrap_or_default();
        let mut list = Vec::with_capacity(tasks.len());
        for (id, mut t) in tasks {
            let Some(o) = t.as_object_mut() else {
                return Err(RuntimeError::BadFork(format!(
                    "the patch's task `{id}` must be an object (or null to remove it)"
                )));
            };
            if let Some(other) = o.get("id").filter(|v| v.as_str() != Some(id.as_str())) {
                return Err(RuntimeError::BadFork(format!(
                    "the patch's task `{id}` has a different id {other}"
                )));
            }
            let mut with_id = Map::new();
            with_id.insert("id".into(), Value::String(id));
            with_id.extend(std::mem::take(o));
            list.push(Value::Object(with_id));
        }
        doc["tasks"] = Value::Array(list);
    }
    Ok(doc)
}

/// The input names a task's spec refers to.
fn input_refs(spec: &Value) -> HashSet<String> {
    references_in(spec)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, r)| match r {
            Reference::Input(name) => Some(name),
            _ => None,
        })
        .collect()
}

/// What a run has done now, as a checkpoint row (not yet written): its succeeded tasks
/// with their committed outputs, its artifacts, and a manifest of its workspace whose files
/// are stored content-addressed.
pub(crate) async fn snapshot(
    store: &crate::store::Store,
    data_dir: &Path,
    run: RunId,
    description: Option<String>,
) -> Result<CheckpointRow, RuntimeError> {
    let record = store.run(run).await?;
    // Rows come in graph order: the plan's tasks, then subtasks as they joined.
    let tasks: Vec<Value> = store
        .tasks(run)
        .await?
        .into_iter()
        .filter(|t| t.status == TaskStatus::Succeeded)
        .map(|t| json!({"id": t.task_id, "outputs": t.outputs, "agent": t.agent, "attempts": t.attempt}))
        .collect();
    let decompositions: Vec<Value> = store
        .decompositions(run)
        .await?
        .iter()
        .map(crate::store::DecompositionRow::to_json)
        .collect();
    let artifacts: Vec<Value> = store
        .artifacts(run)
        .await?
        .into_iter()
        .map(|a| json!({"task": a.task_id, "name": a.name, "sha256": a.hash, "size": a.size}))
        .collect();
    let blobs = Blobs::new(data_dir.join("artifacts"));
    let manifest = manifest_of(Path::new(&record.workspace), &blobs).await?;
    Ok(CheckpointRow {
        id: CheckpointId::new(),
        run_id: run,
        description,
        step: tasks.len() as i64,
        tasks: Value::Array(tasks),
        artifacts: Value::Array(artifacts),
        manifest: Value::Object(manifest),
        decompositions: Value::Array(decompositions),
        created_at: crate::domain::time::now_ms(),
    })
}

impl Runtime {
    /// Checkpoints a run: its succeeded tasks with their outputs (as committed), its
    /// artifacts, and a manifest of its workspace whose files are kept content-addressed.
    /// Returns the stored checkpoint.
    ///
    /// # Errors
    /// Unknown run; a workspace file that cannot be read or stored; store failures.
    ///
    /// # Cancel safety
    /// If dropped before the row is committed, file copies may remain without a checkpoint
    /// (content-addressed, so harmless).
    pub async fn checkpoint(
        &self,
        run: RunId,
        description: Option<String>,
    ) -> Result<CheckpointRow, RuntimeError> {
        let row = snapshot(self.store(), self.data_dir(), run, description).await?;
        self.write(crate::store::Batch {
            checkpoints: vec![row.clone()],
            ..Default::default()
        })
        .await?;
        Ok(row)
    }

    /// Starts a new run from a checkpoint: the checkpoint's tasks are succeeded in it
    /// (`restoredFrom` = the checkpoint) without running, their artifacts are shared by
    /// hash, its workspace is rebuilt from the manifest before anything runs, and the rest
    /// of the parent's plan runs. `opts` as for [`Runtime::submit_opts`] (the project is
    /// the parent's unless given).
    ///
    /// # Errors
    /// Unknown checkpoint; a plan that no longer validates (tools or agents changed); a
    /// manifest file gone from the artifact store; store failures.
    ///
    /// # Cancel safety
    /// As `submit`; if dropped before the run is committed, a rebuilt workspace may remain
    /// without a run.
    pub async fn restore(
        &self,
        checkpoint: &str,
        opts: SubmitOptions,
    ) -> Result<RunHandle, RuntimeError> {
        let cp = self.store().checkpoint(checkpoint).await?;
        let parent = self.store().run(cp.run_id).await?;
        let src = PlanSource::from_plan(parent.plan.clone());
        let mut plan = self
            .validate(&src, &parent.inputs)
            .map_err(RuntimeError::Plan)?;
        let mut done = checkpoint_tasks(&cp);
        let kept = arrange(&mut plan, &cp, &mut done, None);
        self.branch(&parent, &cp, (plan, kept), done, None, opts)
            .await
    }

    /// Forks a run at task `fork.at`: the plan (with `fork.patch` applied) is validated;
    /// the fork point, every task whose spec or referenced inputs changed, every task that
    /// had not succeeded, and everything downstream of those run again; the parent's other
    /// succeeded tasks are restored. A checkpoint of the parent, taken now, records what
    /// the fork starts from.
    ///
    /// # Errors
    /// Unknown run or task; a patch that is not an object or leaves an invalid plan (every
    /// problem listed); the rest as [`Runtime::restore`].
    ///
    /// # Cancel safety
    /// As [`Runtime::restore`].
    pub async fn fork(
        &self,
        run: RunId,
        fork: Fork,
        opts: SubmitOptions,
    ) -> Result<RunHandle, RuntimeError> {
        let parent = self.store().run(run).await?;
        // A subtask (`PARENT.CHILD`) is a fork point too.
        if !self.store().has_task(&parent, &fork.at).await? {
            let ids: Vec<&str> = parent.plan.tasks.iter().map(|t| t.id.as_str()).collect();
            return Err(RuntimeError::BadFork(format!(
                "run {run} has no task `{}` (its tasks: {})",
                fork.at,
                ids.join(", ")
            )));
        }
        let src = match &fork.patch {
            None => PlanSource::from_plan(parent.plan.clone()),
            Some(patch) => {
                let doc = patch_plan(&parent.plan, patch)?;
                let text = serde_json::to_string_pretty(&doc)
                    .map_err(|e| RuntimeError::BadFork(e.to_string()))?;
                let mut src = PlanSource::parse(&text, Format::Json, Some("the patched plan"))
                    .map_err(|e| {
                        RuntimeError::BadFork(format!("the patch leaves no valid plan: {e}"))
                    })?;
                // Lines of a text made here would point nowhere the caller can look: problems
                // name their task instead.
                src.task_lines = vec![None; src.plan.tasks.len()];
                src
            }
        };
        // Inputs: the parent's values, except those it took from a default the patch
        // changed (the new default applies), then the caller's.
        let mut inputs = Map::new();
        for (name, spec) in &src.plan.inputs {
            let Some(value) = parent.inputs.get(name) else {
                continue;
            };
            let old_default = parent
                .plan
                .inputs
                .get(name)
                .and_then(|s| s.default.as_ref());
            let defaulted = old_default == Some(value) && spec.default.as_ref() != old_default;
            if !defaulted {
                inputs.insert(name.clone(), value.clone());
            }
        }
        inputs.extend(fork.inputs.clone());
        let mut plan = self.validate(&src, &inputs).map_err(RuntimeError::Plan)?;
        let cp = self
            .checkpoint(run, Some(format!("fork at {}", fork.at)))
            .await?;
        let mut done = checkpoint_tasks(&cp);
        let old: HashMap<&str, Value> = parent
            .plan
            .tasks
            .iter()
            .map(|t| {
                (
                    t.id.as_str(),
                    serde_json::to_value(t).unwrap_or(Value::Null),
                )
            })
            .collect();
        // Tasks of the plan whose spec or referenced inputs changed.
        let changed: HashSet<String> = plan
            .plan
            .tasks
            .iter()
            .filter(|t| {
                let spec = serde_json::to_value(t).unwrap_or(Value::Null);
                let inputs_changed = input_refs(&spec)
                    .iter()
                    .any(|name| parent.inputs.get(name) != plan.inputs.get(name));
                old.get(t.id.as_str()) != Some(&spec) || inputs_changed
            })
            .map(|t| t.id.clone())
            .collect();
        let kept = arrange(&mut plan, &cp, &mut done, Some((&fork.at, &changed)));
        self.branch(&parent, &cp, (plan, kept), done, Some(fork.at), opts)
            .await
    }

    /// Stores and (unless detached) starts a run of `plan` from checkpoint `cp`, with the
    /// tasks in `keep` (from the checkpoint) restored.
    async fn branch(
        &self,
        parent: &RunRecord,
        cp: &CheckpointRow,
        (plan, decompositions): (ValidatedPlan, Vec<DecompositionRow>),
        keep: HashMap<String, Kept>,
        forked_at: Option<String>,
        opts: SubmitOptions,
    ) -> Result<RunHandle, RuntimeError> {
        let id = opts.id.unwrap_or_default();
        let now = crate::domain::time::now_ms();
        let decompositions: Vec<DecompositionRow> = decompositions
            .into_iter()
            .map(|d| DecompositionRow {
                run_id: id,
                created_at: now,
                ..d
            })
            .collect();
        let mut tasks = Vec::new();
        let (mut restored, mut rerun) = (Vec::new(), Vec::new());
        for (i, t) in plan.graph.tasks().iter().enumerate() {
            if plan.graph.is_replaced(i) {
                continue;
            }
            match keep.get(t.key.as_str()) {
                Some((outputs, agent)) => {
                    restored.push(t.key.to_string());
                    tasks.push(TaskRow {
                        run_id: id,
                        task_id: t.key.clone(),
                        idx: i as i64,
                        tool: t.tool.clone(),
                        status: TaskStatus::Succeeded,
                        attempt: 0,
                        agent: agent.clone(),
                        outputs: outputs.clone(),
                        error: None,
                        started_at: None,
                        finished_at: None,
                        restored_from: Some(cp.id.clone()),
                    });
                }
                None => rerun.push(t.key.to_string()),
            }
        }
        let artifacts: Vec<ArtifactRow> = cp
            .artifacts
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|a| {
                let task = a.get("task")?.as_str()?;
                restored.iter().any(|r| r == task).then(|| ArtifactRow {
                    run_id: id,
                    task_id: TaskKey::from_trusted(task.to_string()),
                    name: a.get("name").and_then(Value::as_str).unwrap_or("").into(),
                    hash: a.get("sha256").and_then(Value::as_str).unwrap_or("").into(),
                    size: a.get("size").and_then(Value::as_i64).unwrap_or(0),
                    created_at: now,
                })
            })
            .collect();
        let workspace: PathBuf = workspace_of(self.data_dir(), id);
        let empty = Map::new();
        let manifest = cp.manifest.as_object().unwrap_or(&empty);
        let blobs = Blobs::new(self.data_dir().join("artifacts"));
        if let Err(e) = rebuild(&workspace, manifest, &blobs).await {
            if let Some(dir) = workspace.parent() {
                let _ = tokio::fs::remove_dir_all(dir).await;
            }
            return Err(e);
        }
        let lineage = Lineage {
            parent_run_id: parent.id,
            checkpoint_id: Some(cp.id.clone()),
            forked_at: forked_at.clone(),
        };
        let prelude = vec![EventData::RunRestored(payload::RunRestored {
            parent_run_id: parent.id,
            checkpoint_id: cp.id.clone(),
            forked_at: forked_at.clone(),
            restored,
            rerun,
            files: manifest.len(),
        })];
        let opts = SubmitOptions {
            id: Some(id),
            project: Some(opts.project.unwrap_or_else(|| parent.project.clone())),
            template: None,
            ..opts
        };
        let submit = messages::Submit {
            prelude,
            restore: Some(messages::Restore {
                lineage,
                tasks,
                artifacts,
                decompositions,
            }),
            ..submission(plan, opts)
        };
        match self.create(submit).await {
            Ok(handle) => Ok(handle),
            Err(e) => {
                // Nothing was committed: the rebuilt workspace belongs to no run.
                if matches!(e, RuntimeError::Write(_)) {
                    if let Some(dir) = workspace.parent() {
                        let _ = tokio::fs::remove_dir_all(dir).await;
                    }
                }
                Err(e)
            }
        }
    }
}

/// Lays out a run that starts from checkpoint `cp`: its graph (`plan`'s) gets the
/// checkpoint's decompositions that still apply; `done` (the checkpoint's succeeded tasks)
/// loses every task that runs again. What runs again: what had not succeeded, and with a
/// fork, its point and the plan tasks whose spec or inputs changed (`changed`), then
/// everything downstream of those and every decomposed task above them (it merges again).
/// A decomposed task that runs again for its own sake (the fork point, a change, an
/// upstream task) decomposes again: its sub-plan is dropped; one that runs again only for
/// a subtask keeps its sub-plan. Returns the decompositions kept, in graph order.
fn arrange(
    plan: &mut ValidatedPlan,
    cp: &CheckpointRow,
    done: &mut HashMap<String, Kept>,
    fork: Option<(&str, &HashSet<String>)>,
) -> Vec<DecompositionRow> {
    let rows: Vec<DecompositionRow> = cp
        .decompositions
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| DecompositionRow::from_json(cp.run_id, v).ok())
        .collect();
    // Every decomposition that still fits the plan, on a scratch graph.
    let mut g = plan.graph.clone();
    let mut fits = Vec::new();
    for r in rows {
        if let Some(p) = g.index_of(r.task_id.as_str()) {
            if g.append(p, r.subtasks.clone(), &r.replaced).is_ok() {
                fits.push(r);
            }
        }
    }
    let n = g.len();
    let own = |key: &str| fork.is_some_and(|(at, changed)| at == key || changed.contains(key));
    let mut again: Vec<bool> = (0..n)
        .map(|i| {
            let key = g.task(i).key.as_str();
            !g.is_replaced(i) && (!done.contains_key(key) || own(key))
        })
        .collect();
    // Downstream through dependencies, up to the decomposed task of a subtask that runs
    // again (each pass is linear in the tasks and their edges).
    loop {
        let mut moved = false;
        for i in 0..n {
            if g.is_replaced(i) {
                continue;
            }
            if !again[i] && g.task(i).deps.iter().any(|&d| again[d]) {
                again[i] = true;
                moved = true;
            }
            if again[i] {
                if let Some(p) = g.task(i).parent {
                    if !again[p] {
                        again[p] = true;
                        moved = true;
                    }
                }
            }
        }
        if !moved {
            break;
        }
    }
    let fresh: HashSet<usize> = (0..n)
        .filter(|&p| {
            g.rounds(p) > 0
                && again[p]
                && (own(g.task(p).key.as_str()) || g.task(p).deps.iter().any(|&d| again[d]))
        })
        .collect();
    // Under a task that decomposes again nothing of its old sub-plan stays.
    let dropped = |i: usize| g.ancestry(i).skip(1).any(|a| fresh.contains(&a));
    for (i, &a) in again.iter().enumerate() {
        if a || dropped(i) {
            done.remove(g.task(i).key.as_str());
        }
    }
    let mut kept = Vec::new();
    for mut r in fits {
        let Some(p) = plan.graph.index_of(r.task_id.as_str()) else {
            continue;
        };
        let gp = g.index_of(r.task_id.as_str()).unwrap_or(p);
        if fresh.contains(&gp) || dropped(gp) {
            continue;
        }
        r.first_idx = plan.graph.len() as i64;
        if plan
            .graph
            .append(p, r.subtasks.clone(), &r.replaced)
            .is_ok()
        {
            kept.push(r);
        }
    }
    kept
}
