//! The tools of a PRP's run (`domain/prp.rs` compiles a PRP to a plan that uses them):
//!
//! - `prp:step` does one step. Before its first attempt the workspace is snapshotted (the
//!   manifest committed before anything changes); a later attempt, or one after a crash,
//!   starts from that snapshot again. It runs the step's tool, agent or codegen (an agent or
//!   a model gets the PRP's context, the step, excerpts of the example files, earlier steps'
//!   outputs and, on a retry, what the failed gate said), then compares the workspace with
//!   the snapshot: a changed protected path fails the step (`integrity`, not retried) and
//!   puts the snapshot back, whatever its gates would say. Its outputs say which files
//!   changed. The gates are the task's, checked by the gate actors afterwards.
//! - `prp:check` is the task the pre- and postconditions (its gates) check; after the steps
//!   it reports what the run changed.
//! - `prp:rollback` runs only when one of those failed: it reports a failed condition and
//!   undoes steps by the policy (`step`: the failed one; `all`: every step that ran, last
//!   first, ending with the workspace as before the first; `none`), each step's rollback
//!   command first, then its snapshot. Each undone step is committed with its event, so a
//!   rollback resumed after a crash undoes every step once.
//! - `prp:generate` (`generate.rs`) has a model write a PRP from requirements.

pub(crate) mod generate;

use super::agent::cut;
use super::shell::{command_vars, exit_code, run_command, Ended};
use super::{Tool, ToolContext, ToolError, ToolOutput};
use crate::domain::event::payload;
use crate::domain::prp::{Rollback, RollbackPolicy, POST_TASK, PRE_TASK};
use crate::domain::time::now_ms;
use crate::domain::{EventData, EventType, TaskStatus};
use crate::snapshot::{self, Changes, Skip};
use crate::store::{Batch, SnapshotRow};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Most bytes of one example file shown to a model.
const EXAMPLE_BYTES: usize = 4 * 1024;
/// Most bytes of every example file together.
const EXAMPLES_BYTES: usize = 16 * 1024;
/// Most bytes of an earlier step's outputs shown to a model.
const EARLIER_BYTES: usize = 2 * 1024;
/// Most bytes of what a failed gate said, shown to a retry.
const FEEDBACK_BYTES: usize = 6 * 1024;

fn io(e: impl std::fmt::Display) -> ToolError {
    ToolError::Io(e.to_string())
}

/// What snapshots leave out besides what git ignores: the data directory.
fn skip_of(ctx: &ToolContext) -> Skip {
    Skip::dirs(
        ctx.env
            .blobs
            .root()
            .parent()
            .map(std::path::Path::to_path_buf),
    )
}

fn task_of(ctx: &ToolContext) -> String {
    ctx.corr
        .task
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Commits rows and events through the run; fails when the run stopped meanwhile.
async fn commit(ctx: &ToolContext, rows: Batch, events: Vec<EventData>) -> Result<(), ToolError> {
    ctx.link
        .0
        .commit(rows, events)
        .await
        .map_err(|_| ToolError::Cancelled)
}

/// The workspace snapshot taken before task `task`, if any.
async fn snapshot_of(ctx: &ToolContext, task: &str) -> Result<Option<SnapshotRow>, ToolError> {
    Ok(ctx
        .link
        .0
        .store()
        .snapshots(ctx.corr.run)
        .await
        .map_err(io)?
        .into_iter()
        .find(|s| s.task_id == task))
}

/// Whether `rel` names an existing file inside `base` (links followed, never out of it).
pub(crate) fn file_inside(base: &std::path::Path, rel: &str) -> Result<(), String> {
    super::workspace::existing_file(base, rel, "file").map(|_| ())
}

/// What a step does.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Work {
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    inputs: Map<String, Value>,
    #[serde(default)]
    agent: Option<crate::domain::prp::AgentStep>,
    #[serde(default)]
    codegen: Option<crate::domain::prp::CodegenStep>,
}

#[derive(Debug, Deserialize)]
struct Example {
    file: String,
    why: String,
}

/// The inputs of `prp:step`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepInput {
    step: String,
    description: String,
    work: Work,
    #[serde(default)]
    context: String,
    #[serde(default)]
    examples: Vec<Example>,
    #[serde(default)]
    earlier: Vec<String>,
    #[serde(default)]
    protected: Vec<String>,
}

/// The protected globs as one matcher.
fn protected_set(globs: &[String]) -> Result<globset::GlobSet, ToolError> {
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        let glob = globset::GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|e| ToolError::InvalidInput(format!("protected `{g}`: {e}")))?;
        b.add(glob);
        // A directory protects what is below it.
        if !g.contains('*') {
            if let Ok(below) = globset::Glob::new(&format!("{}/**", g.trim_end_matches('/'))) {
                b.add(below);
            }
        }
    }
    b.build()
        .map_err(|e| ToolError::InvalidInput(e.to_string()))
}

/// What the failed attempt before this one was told by its gates (or why it failed).
async fn feedback(ctx: &ToolContext, task: &str) -> Result<Option<String>, ToolError> {
    if ctx.attempt < 2 {
        return Ok(None);
    }
    let before = ctx.attempt - 1;
    let events = ctx
        .link
        .0
        .store()
        .task_events(ctx.corr.run, task)
        .await
        .map_err(io)?;
    let mut out = String::new();
    for e in &events {
        let same = e.data.get("attempt").and_then(Value::as_u64) == Some(u64::from(before));
        if !same {
            continue;
        }
        match e.kind {
            EventType::GateFailed => {
                let d = &e.data;
                out.push_str(&format!(
                    "Gate #{} ({}) failed: {}\n",
                    d["gate"],
                    d["kind"].as_str().unwrap_or_default(),
                    d["reason"].as_str().unwrap_or_default()
                ));
                if let Some(code) = d["detail"].get("exit_code") {
                    out.push_str(&format!("Exit code: {code}\n"));
                }
                if let Some(tail) = d["detail"].get("output_tail").and_then(Value::as_str) {
                    out.push_str(tail);
                }
                if let Some(reasons) = d["detail"].get("reasons").and_then(Value::as_array) {
                    for r in reasons.iter().filter_map(Value::as_str) {
                        out.push_str(&format!("- {r}\n"));
                    }
                }
            }
            EventType::TaskRetrying if out.is_empty() => {
                out.push_str(&format!(
                    "The attempt failed: {}\n",
                    e.data["error"].as_str().unwrap_or_default()
                ));
            }
            _ => {}
        }
    }
    Ok((!out.is_empty()).then(|| cut(&out, FEEDBACK_BYTES)))
}

/// The prompt of an agent or codegen step.
async fn prompt(
    ctx: &ToolContext,
    input: &StepInput,
    own: &str,
    feedback: Option<&str>,
) -> Result<String, ToolError> {
    let mut out = input.context.clone();
    let mut budget = EXAMPLES_BYTES;
    if !input.examples.is_empty() {
        out.push_str("\n## Examples\n");
    }
    let root = std::fs::canonicalize(&ctx.workspace).map_err(io)?;
    for ex in &input.examples {
        out.push_str(&format!("\n### {} ({})\n", ex.file, ex.why));
        let path = root.join(&ex.file);
        // Only files inside the workspace are read (a link that leaves it is not followed).
        let inside = std::fs::canonicalize(&path).is_ok_and(|p| p.starts_with(&root));
        match (inside, tokio::fs::read(&path).await) {
            (true, Ok(bytes)) if budget > 0 => {
                let text = String::from_utf8_lossy(&bytes);
                let shown = cut(&text, EXAMPLE_BYTES.min(budget));
                budget = budget.saturating_sub(shown.len());
                out.push_str(&format!("```\n{shown}\n```\n"));
            }
            (true, Ok(_)) => out.push_str("(not shown: the examples' size limit is reached)\n"),
            _ => out.push_str("(the file is not in the workspace)\n"),
        }
    }
    if !input.earlier.is_empty() {
        let rows = ctx.link.0.store().tasks(ctx.corr.run).await.map_err(io)?;
        out.push_str("\n## Earlier steps' outputs\n");
        for id in &input.earlier {
            let outputs = rows
                .iter()
                .find(|r| r.task_id.as_str() == id)
                .and_then(|r| r.outputs.clone())
                .unwrap_or(Value::Null);
            out.push_str(&format!(
                "- {id}: {}\n",
                cut(&outputs.to_string(), EARLIER_BYTES)
            ));
        }
    }
    out.push_str(&format!(
        "\n## Your step: {}\n{}\n\n{own}\n",
        input.step, input.description
    ));
    if let Some(f) = feedback {
        out.push_str(&format!(
            "\n## The last attempt failed its gates\nThe workspace is back as it was before the step. What the gates said:\n{f}\nFix this.\n"
        ));
    }
    Ok(out)
}

/// What a step changed since its snapshot; when that touches a protected path, the snapshot
/// is put back at once and committed with `prp.integrity_violation` and
/// `prp.step.rolled_back` (the step's snapshot row marked), and the paths are returned.
async fn guard(
    ctx: &ToolContext,
    step: &str,
    snap: &SnapshotRow,
    protected: &globset::GlobSet,
) -> Result<(Changes, Option<Vec<String>>), ToolError> {
    let skip = skip_of(ctx);
    let now = snapshot::scan(&ctx.workspace, &skip).await.map_err(io)?;
    let changes = snapshot::diff(&snap.manifest, &now);
    let violated: Vec<String> = changes
        .paths()
        .filter(|p| protected.is_match(p))
        .map(str::to_string)
        .collect();
    if violated.is_empty() {
        return Ok((changes, None));
    }
    let done = snapshot::restore(&ctx.workspace, &snap.manifest, &skip, &ctx.env.blobs)
        .await
        .map_err(io)?;
    let rows = Batch {
        snapshots: vec![SnapshotRow {
            rolled_back_at: Some(now_ms()),
            rollback: Some(json!({"cause": "integrity", "paths": violated})),
            ..snap.clone()
        }],
        ..Batch::default()
    };
    let events = vec![
        EventData::PrpIntegrityViolation(payload::PrpIntegrityViolation {
            step: step.to_string(),
            paths: violated.clone(),
        }),
        EventData::PrpStepRolledBack(payload::PrpStepRolledBack {
            step: step.to_string(),
            cause: "integrity".into(),
            command: None,
            restored: true,
            written: done.written,
            removed: done.removed,
        }),
    ];
    commit(ctx, rows, events).await?;
    Ok((changes, Some(violated)))
}

/// `prp:step`.
pub(crate) struct PrpStep;

impl Tool for PrpStep {
    fn name(&self) -> &str {
        crate::domain::prp::STEP_TOOL
    }

    fn description(&self) -> &str {
        "One step of a PRP: snapshots the workspace, runs the step's tool, agent or codegen, and fails it when it changed a protected path."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["step", "description", "work"],
            "properties": {
                "step": {"type": "string"},
                "description": {"type": "string"},
                "work": {"type": "object"},
                "context": {"type": "string"},
                "examples": {"type": "array"},
                "earlier": {"type": "array", "items": {"type": "string"}},
                "protected": {"type": "array", "items": {"type": "string"}}
            }
        })
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let input: StepInput = serde_json::from_value(ctx.inputs.clone())
                .map_err(|e| ToolError::InvalidInput(e.to_string()))?;
            let protected = protected_set(&input.protected)?;
            let task = task_of(&ctx);
            let skip = skip_of(&ctx);
            let link = ctx.link.0.clone();
            let blobs = ctx.env.blobs.clone();
            // The snapshot is committed before the step may change anything; an attempt after
            // a failed one (or a crash) starts from it again, unless it resumes an agent's
            // loop, whose journal holds what it did.
            let snap = match snapshot_of(&ctx, &task).await? {
                Some(s) => {
                    let resumes = input.work.agent.is_some()
                        && link
                            .store()
                            .agent_loops(ctx.corr.run, &task)
                            .await
                            .map_err(io)?
                            .iter()
                            .any(|l| l.status == crate::store::LoopStatus::Running);
                    if !resumes {
                        snapshot::restore(&ctx.workspace, &s.manifest, &skip, &blobs)
                            .await
                            .map_err(io)?;
                    }
                    s
                }
                None => {
                    let manifest = snapshot::take(&ctx.workspace, &skip, &blobs)
                        .await
                        .map_err(io)?;
                    let row = SnapshotRow {
                        run_id: ctx.corr.run,
                        task_id: task.clone(),
                        taken_at: now_ms(),
                        manifest,
                        rolled_back_at: None,
                        rollback: None,
                    };
                    let rows = Batch {
                        snapshots: vec![row.clone()],
                        ..Batch::default()
                    };
                    commit(&ctx, rows, Vec::new()).await?;
                    row
                }
            };
            let said = feedback(&ctx, &task).await?;
            let (tool, inputs) = match (&input.work.tool, &input.work.agent, &input.work.codegen) {
                (Some(t), _, _) => (t.clone(), Value::Object(input.work.inputs.clone())),
                (None, Some(a), _) => {
                    let mut m = Map::new();
                    m.insert(
                        "prompt".into(),
                        json!(prompt(&ctx, &input, &a.prompt, said.as_deref()).await?),
                    );
                    if let Some(t) = &a.tools {
                        m.insert("tools".into(), json!(t));
                    }
                    ("agent".to_string(), Value::Object(m))
                }
                (None, None, Some(c)) => {
                    let own = c
                        .prompt
                        .clone()
                        .unwrap_or_else(|| "Write the files the step needs.".into());
                    let mut m = Map::new();
                    m.insert(
                        "prompt".into(),
                        json!(prompt(&ctx, &input, &own, said.as_deref()).await?),
                    );
                    if let Some(d) = &c.dir {
                        m.insert("dir".into(), json!(d));
                    }
                    ("codegen".to_string(), Value::Object(m))
                }
                _ => {
                    return Err(ToolError::InvalidInput(
                        "the step names no tool, agent or codegen".into(),
                    ))
                }
            };
            let inner = link
                .tools()
                .get(&tool)
                .ok_or_else(|| ToolError::InvalidInput(format!("unknown tool `{tool}`")))?;
            if let Some((pointer, message)) = link
                .tools()
                .input_errors(&tool, &inputs)
                .and_then(|p| p.into_iter().next())
            {
                return Err(ToolError::InvalidInput(format!(
                    "inputs of tool `{tool}` are invalid at `{pointer}`: {message}"
                )));
            }
            let mut inner_ctx = ctx.clone();
            inner_ctx.inputs = inputs;
            let result = inner.run(inner_ctx).await;
            if matches!(
                result,
                Err(ToolError::Waiting(_)) | Err(ToolError::Cancelled)
            ) {
                // Paused for a person (checked once it ends) or stopped.
                return result;
            }
            let (changes, violated) = guard(&ctx, &input.step, &snap, &protected).await?;
            if let Some(paths) = violated {
                return Err(ToolError::Integrity(format!(
                    "step `{}` changed protected {} {}; the step was rolled back",
                    input.step,
                    if paths.len() == 1 { "path" } else { "paths" },
                    paths
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let changed = serde_json::to_value(&changes).unwrap_or(Value::Null);
            match result {
                Ok(mut out) => {
                    out.outputs.insert("changed".into(), changed);
                    Ok(out)
                }
                Err(ToolError::Failed {
                    message,
                    mut outputs,
                    artifacts,
                }) => {
                    outputs.insert("changed".into(), changed);
                    Err(ToolError::Failed {
                        message,
                        outputs,
                        artifacts,
                    })
                }
                Err(e) => Err(e),
            }
        })
    }
}

/// `prp:check`.
pub(crate) struct PrpCheck;

impl Tool for PrpCheck {
    fn name(&self) -> &str {
        crate::domain::prp::CHECK_TOOL
    }

    fn description(&self) -> &str {
        "The task a PRP's pre- or postconditions check; after the steps it reports what the run changed."
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["phase"],
            "properties": {
                "phase": {"enum": ["pre", "post"]},
                "first": {"type": ["string", "null"]},
                "success_criteria": {"type": "array", "items": {"type": "string"}}
            }
        })
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let skip = skip_of(&ctx);
            let now = snapshot::scan(&ctx.workspace, &skip).await.map_err(io)?;
            let mut out = ToolOutput::default();
            let phase = ctx.inputs["phase"].as_str().unwrap_or("pre").to_string();
            let files = now
                .values()
                .filter(|e| !matches!(e, snapshot::Entry::Dir))
                .count();
            out.outputs.insert("phase".into(), json!(phase));
            out.outputs.insert("files".into(), json!(files));
            if let Some(first) = ctx.inputs.get("first").and_then(Value::as_str) {
                let changes = match snapshot_of(&ctx, first).await? {
                    Some(s) => snapshot::diff(&s.manifest, &now),
                    None => Changes::default(),
                };
                out.outputs.insert(
                    "changed".into(),
                    serde_json::to_value(changes).unwrap_or(Value::Null),
                );
            }
            if let Some(c) = ctx.inputs.get("success_criteria") {
                out.outputs.insert("success_criteria".into(), c.clone());
            }
            Ok(out)
        })
    }
}

#[derive(Debug, Deserialize)]
struct Undo {
    step: String,
    #[serde(default)]
    rollback: Rollback,
}

#[derive(Debug, Deserialize)]
struct RollbackInput {
    policy: RollbackPolicy,
    steps: Vec<Undo>,
    #[serde(default)]
    protected: Vec<String>,
}

/// `prp:rollback`.
pub(crate) struct PrpRollback;

impl PrpRollback {
    /// Runs a step's rollback command: `{argv, exit_code, output_tail}`.
    async fn command(ctx: &ToolContext, argv: &[String]) -> Value {
        let vars = command_vars(&ctx.corr, ctx.attempt);
        match run_command(argv, &vars, &ctx.workspace, &ctx.env, &ctx.cancel).await {
            Err(e) => json!({"argv": argv, "exit_code": null, "error": e.to_string()}),
            Ok(done) => {
                let code = match done.ended {
                    Ended::Exited(status) => json!(exit_code(&status)),
                    Ended::Cancelled => Value::Null,
                };
                let tail = format!("{}{}", done.stdout.tail, done.stderr.tail);
                json!({"argv": argv, "exit_code": code, "output_tail": cut(&tail, 2048)})
            }
        }
    }
}

impl Tool for PrpRollback {
    fn name(&self) -> &str {
        crate::domain::prp::ROLLBACK_TOOL
    }

    fn description(&self) -> &str {
        "Undoes a failed PRP's steps by its rollback policy, each step once."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["policy", "steps"],
            "properties": {
                "policy": {"enum": ["step", "all", "none"]},
                "steps": {"type": "array"},
                "prp": {"type": "object"}
            }
        })
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let input: RollbackInput = {
                let mut v = ctx.inputs.clone();
                if let Some(o) = v.as_object_mut() {
                    o.remove("prp");
                }
                serde_json::from_value(v).map_err(|e| ToolError::InvalidInput(e.to_string()))?
            };
            let store = ctx.link.0.store();
            let run = ctx.corr.run;
            let me = task_of(&ctx);
            let rows: HashMap<String, crate::store::TaskRow> = store
                .tasks(run)
                .await
                .map_err(io)?
                .into_iter()
                .map(|r| (r.task_id.to_string(), r))
                .collect();
            let said: Vec<EventType> = store
                .task_events(run, &me)
                .await
                .map_err(io)?
                .into_iter()
                .map(|e| e.kind)
                .collect();
            let failed = |id: &str| rows.get(id).is_some_and(|r| r.status == TaskStatus::Failed);
            let mut out = ToolOutput::default();
            out.outputs.insert("policy".into(), json!(input.policy));
            // A failed condition is announced once.
            for (task, kind) in [
                (PRE_TASK, EventType::PrpPreconditionFailed),
                (POST_TASK, EventType::PrpPostconditionFailed),
            ] {
                if failed(task) && !said.contains(&kind) {
                    let data = payload::PrpConditionFailed {
                        task: task.to_string(),
                        reason: rows[task].error.clone().unwrap_or_default(),
                    };
                    let event = if task == PRE_TASK {
                        EventData::PrpPreconditionFailed(data)
                    } else {
                        EventData::PrpPostconditionFailed(data)
                    };
                    commit(&ctx, Batch::default(), vec![event]).await?;
                }
            }
            let failed_step = input
                .steps
                .iter()
                .find(|s| failed(&s.step))
                .map(|s| s.step.clone());
            out.outputs.insert("failed_step".into(), json!(failed_step));
            let mut snaps: HashMap<String, SnapshotRow> = store
                .snapshots(run)
                .await
                .map_err(io)?
                .into_iter()
                .map(|s| (s.task_id.clone(), s))
                .collect();
            // A step that failed before its own check (a timeout, a crash, a gate that wrote)
            // is checked here: a protected path it changed is put back whatever the policy.
            if let Some(step) = &failed_step {
                if let Some(snap) = snaps.get_mut(step).filter(|s| s.rolled_back_at.is_none()) {
                    let protected = protected_set(&input.protected)?;
                    if guard(&ctx, step, snap, &protected).await?.1.is_some() {
                        snap.rolled_back_at = Some(now_ms());
                    }
                }
            }
            let undo: Vec<&Undo> = match input.policy {
                RollbackPolicy::None => Vec::new(),
                RollbackPolicy::Step => input
                    .steps
                    .iter()
                    .filter(|s| Some(&s.step) == failed_step.as_ref())
                    .collect(),
                RollbackPolicy::All => input.steps.iter().rev().collect(),
            };

            let skip = skip_of(&ctx);
            let blobs = ctx.env.blobs.clone();
            let mut undone = Vec::new();
            let mut command_failures = Vec::new();
            for u in &undo {
                // A step that never ran has nothing to undo; one undone before a crash (or by
                // its integrity check) is not undone again.
                let Some(snap) = snaps.get(&u.step) else {
                    continue;
                };
                if snap.rolled_back_at.is_some() {
                    continue;
                }
                let command = match u.rollback.command() {
                    Some(argv) => {
                        let result = Self::command(&ctx, argv).await;
                        if result["exit_code"] != json!(0) {
                            command_failures.push(format!(
                                "the rollback command of step `{}` failed: {}",
                                u.step, result
                            ));
                        }
                        Some(result)
                    }
                    None => None,
                };
                let restored = u.rollback.restores();
                let done = if restored {
                    snapshot::restore(&ctx.workspace, &snap.manifest, &skip, &blobs)
                        .await
                        .map_err(io)?
                } else {
                    snapshot::Restored::default()
                };
                let cause = if Some(&u.step) == failed_step.as_ref() {
                    "failed"
                } else {
                    "rollback_all"
                };
                let record = json!({"cause": cause, "command": command, "restored": restored});
                let rows = Batch {
                    snapshots: vec![SnapshotRow {
                        rolled_back_at: Some(now_ms()),
                        rollback: Some(record),
                        ..snap.clone()
                    }],
                    ..Batch::default()
                };
                let event = EventData::PrpStepRolledBack(payload::PrpStepRolledBack {
                    step: u.step.clone(),
                    cause: cause.into(),
                    command,
                    restored,
                    written: done.written,
                    removed: done.removed,
                });
                commit(&ctx, rows, vec![event]).await?;
                undone.push(u.step.clone());
            }
            // `all` ends with the workspace as before the first step, whatever each step's
            // own rollback restored.
            if input.policy == RollbackPolicy::All {
                let first = input.steps.iter().find_map(|s| snaps.get(&s.step));
                if let Some(first) = first {
                    snapshot::restore(&ctx.workspace, &first.manifest, &skip, &blobs)
                        .await
                        .map_err(io)?;
                }
            }
            out.outputs.insert("rolled_back".into(), json!(undone));
            if !command_failures.is_empty() {
                return Err(ToolError::Failed {
                    message: command_failures.join("; "),
                    outputs: out.outputs,
                    artifacts: Vec::new(),
                });
            }
            Ok(out)
        })
    }
}
